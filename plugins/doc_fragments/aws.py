# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """AWS connection options shared by the modules that call AWS APIs through boto3
    (karpenter_pool, cost_snapshot). Names and environment fallbacks follow amazon.aws."""

    DOCUMENTATION = r"""
options:
  region:
    description:
      - The AWS region to call.
      - Falls back to E(AWS_REGION), then E(AWS_DEFAULT_REGION), then the boto3 configuration.
    type: str
    aliases: [aws_region]
  endpoint_url:
    description:
      - Use this URL instead of the service's public endpoint (a VPC endpoint, or a test server).
      - Falls back to E(AWS_ENDPOINT_URL).
    type: str
    aliases: [aws_endpoint_url]
  access_key:
    description:
      - AWS access key ID. Falls back to E(AWS_ACCESS_KEY_ID), then boto3's credential chain
        (profile, instance or pod identity).
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description:
      - AWS secret access key. Never logged or returned.
      - Falls back to E(AWS_SECRET_ACCESS_KEY), then boto3's credential chain.
    type: str
    aliases: [aws_secret_access_key]
  session_token:
    description:
      - AWS session token for temporary credentials. Never logged or returned.
      - Falls back to E(AWS_SESSION_TOKEN).
    type: str
    aliases: [aws_session_token]
  profile:
    description:
      - A named profile of the AWS shared configuration. Mutually exclusive with O(access_key).
    type: str
    aliases: [aws_profile]
requirements:
  - boto3 >= 1.28.0 (on the host that runs the module)
"""
