# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""boto3 clients for the modules that call AWS (options: doc fragment gpuops.cluster.aws).

One place that turns the module's AWS options into a boto3 session, so every module gets the
same environment fallbacks, the same retry policy and the same error when boto3 is missing.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import traceback

try:
    import boto3
    import botocore.config
    import botocore.exceptions

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

# Options of the aws doc fragment, for a module's argument_spec.
AWS_ARGUMENT_SPEC = dict(
    region=dict(type="str", aliases=["aws_region"]),
    endpoint_url=dict(type="str", aliases=["aws_endpoint_url"]),
    access_key=dict(type="str", aliases=["aws_access_key_id"], no_log=False),
    secret_key=dict(type="str", aliases=["aws_secret_access_key"], no_log=True),
    session_token=dict(type="str", aliases=["aws_session_token"], no_log=True),
    profile=dict(type="str", aliases=["aws_profile"]),
)
AWS_MUTUALLY_EXCLUSIVE = [("profile", "access_key"), ("profile", "secret_key")]

# Adaptive retries absorb throttling (DescribeInstanceTypes and the Pricing API throttle hard).
RETRY_CONFIG = dict(retries={"max_attempts": 5, "mode": "adaptive"}, connect_timeout=10, read_timeout=30)


class AwsSettingsError(Exception):
    """A connection setting that cannot work; the message names the option."""


def _first(*values):
    for value in values:
        if value:
            return value
    return None


def connection_settings(params, environ=None):
    """The resolved connection settings (no secrets in what callers log: see redacted())."""
    environ = os.environ if environ is None else environ
    settings = dict(
        region=_first(params.get("region"), environ.get("AWS_REGION"), environ.get("AWS_DEFAULT_REGION")),
        endpoint_url=_first(params.get("endpoint_url"), environ.get("AWS_ENDPOINT_URL")),
        access_key=_first(params.get("access_key"), environ.get("AWS_ACCESS_KEY_ID")),
        secret_key=_first(params.get("secret_key"), environ.get("AWS_SECRET_ACCESS_KEY")),
        session_token=_first(params.get("session_token"), environ.get("AWS_SESSION_TOKEN")),
        profile=params.get("profile"),
    )
    endpoint = settings["endpoint_url"]
    if endpoint and not (endpoint.startswith("https://") or endpoint.startswith("http://")):
        raise AwsSettingsError("endpoint_url must be an http:// or https:// URL, got %r" % endpoint)
    if bool(settings["access_key"]) != bool(settings["secret_key"]):
        raise AwsSettingsError("access_key and secret_key must be given together")
    return settings


def redacted(settings):
    """settings with the secrets replaced, for results and messages."""
    shown = dict(settings)
    for key in ("secret_key", "session_token"):
        if shown.get(key):
            shown[key] = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    return shown


class AwsClients(object):
    """boto3 clients for one set of connection settings, made once per service."""

    def __init__(self, settings):
        if not HAS_BOTO3:
            raise AwsSettingsError("boto3 is required")
        self.settings = settings
        self._clients = {}
        session_args = {}
        if settings.get("profile"):
            session_args["profile_name"] = settings["profile"]
        if settings.get("access_key"):
            session_args["aws_access_key_id"] = settings["access_key"]
            session_args["aws_secret_access_key"] = settings["secret_key"]
            if settings.get("session_token"):
                session_args["aws_session_token"] = settings["session_token"]
        if settings.get("region"):
            session_args["region_name"] = settings["region"]
        self.session = boto3.session.Session(**session_args)

    def client(self, service, region=None):
        key = (service, region)
        if key not in self._clients:
            kwargs = dict(config=botocore.config.Config(**RETRY_CONFIG))
            if self.settings.get("endpoint_url"):
                kwargs["endpoint_url"] = self.settings["endpoint_url"]
            if region:
                kwargs["region_name"] = region
            self._clients[key] = self.session.client(service, **kwargs)
        return self._clients[key]


def error_summary(error):
    """A one-line reason for a botocore error (code and message, never the request)."""
    if HAS_BOTO3 and isinstance(error, botocore.exceptions.ClientError):
        info = error.response.get("Error", {})
        return "%s: %s" % (info.get("Code", "ClientError"), info.get("Message", ""))
    return "%s: %s" % (type(error).__name__, error)
