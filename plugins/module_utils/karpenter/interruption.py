# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Karpenter's interruption handling on AWS: the SQS queue and the EventBridge rules feeding it.

As Karpenter's CloudFormation reference sets them up: one queue (messages kept 300 s, SSE on,
a policy letting EventBridge and SQS send to it) and four rules targeting it: spot interruption
warnings, rebalance recommendations, instance state changes and AWS Health scheduled changes.
Karpenter reads the queue named in its ``settings.interruptionQueue``. ``ensure`` creates what
is missing or different (nothing in check mode) and says what it changed.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import KarpenterPoolError, shown

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
TARGET_ID = "KarpenterInterruptionQueueTarget"
RULES = (
    ("ScheduledChangeRule", {"source": ["aws.health"], "detail-type": ["AWS Health Event"]}),
    ("SpotInterruptionRule", {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}),
    ("RebalanceRule", {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]}),
    ("InstanceStateChangeRule", {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]}),
)


def check_queue_name(name):
    if not isinstance(name, str) or not QUEUE_NAME.match(name) or len(name) > 64 - len("-InstanceStateChangeRule"):
        raise KarpenterPoolError(
            "interruption_queue: %s is not an SQS queue name usable for the rules; allowed: letters, digits, "
            "'-' and '_', at most 40 characters" % shown(name)
        )
    return name


def rule_name(queue, suffix):
    return "%s-%s" % (queue, suffix)


def _queue_policy(arn):
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "EC2InterruptionPolicy",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                }
            ],
        },
        sort_keys=True,
    )


def _missing(exc, *codes):
    code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
    return code in codes


def ensure(sqs, events, queue, check_mode):
    """(changed, info) after making the queue and rules exist as Karpenter expects."""
    changed = []
    try:
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    except Exception as exc:  # botocore ClientError
        if not _missing(exc, "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
        url = None
    if url is None:
        changed.append("queue %s" % queue)
        if check_mode:
            return True, {"name": queue, "url": None, "arn": None, "changes": changed + ["rules"]}
        url = sqs.create_queue(
            QueueName=queue, Attributes={"MessageRetentionPeriod": "300", "SqsManagedSseEnabled": "true"}
        )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy", "MessageRetentionPeriod"])[
        "Attributes"
    ]
    wanted_policy = _queue_policy(arn)
    current_policy = attributes.get("Policy")
    try:
        same_policy = current_policy is not None and json.loads(current_policy) == json.loads(wanted_policy)
    except ValueError:
        same_policy = False
    if not same_policy or attributes.get("MessageRetentionPeriod") != "300":
        changed.append("queue attributes")
        if not check_mode:
            sqs.set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": wanted_policy, "MessageRetentionPeriod": "300"}
            )
    rules = []
    for suffix, pattern in RULES:
        name = rule_name(queue, suffix)
        rules.append(name)
        try:
            current = events.describe_rule(Name=name)
            same = json.loads(current.get("EventPattern") or "{}") == pattern and current.get("State") == "ENABLED"
        except Exception as exc:
            if not _missing(exc, "ResourceNotFoundException"):
                raise
            same = False
        if not same:
            changed.append("rule %s" % name)
            if not check_mode:
                events.put_rule(Name=name, EventPattern=json.dumps(pattern, sort_keys=True), State="ENABLED")
        targets = []
        if same or not check_mode:
            targets = events.list_targets_by_rule(Rule=name).get("Targets") or []
        if not any(t.get("Id") == TARGET_ID and t.get("Arn") == arn for t in targets):
            changed.append("target of %s" % name)
            if not check_mode:
                events.put_targets(Rule=name, Targets=[{"Id": TARGET_ID, "Arn": arn}])
    return bool(changed), {"name": queue, "url": url, "arn": arn, "rules": rules, "changes": changed}
