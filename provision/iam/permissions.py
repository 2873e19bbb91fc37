"""What AWS checks for each API call the toolkit makes, where that is more than ``<prefix>:<Operation>``.

One table each, so that the policy builder (provision/iam/policy.py) holds no
knowledge of its own about services; what belongs to one step's calls is
declared in that step's ``STEP`` (provision/registry.py) and joined here:

- ``OWN``: the call's own IAM action(s) where their name differs from the
  operation's (S3 above all; API Gateway is derived from botocore's model).
- ``BEYOND``: permissions AWS checks in addition, because of a parameter the
  toolkit passes (tags on create, a role passed, a VPC configuration that
  Lambda checks with the caller's permissions, a log delivery), each with the
  documentation that says so: each step's ``beyond``, and ``ACCOUNT_BEYOND``
  for the calls no step makes. ``resources`` names Service Authorization
  Reference resource types an action is checked on for that call where they
  are not its usual ones (``security-group-rule`` when a rule is tagged on
  creation, API Gateway's ``/tags``).
- ``NOT_NEEDED``: dependent actions the Service Authorization Reference names
  that the toolkit's use of the call does not trigger, each with why;
  ``tests/test_policy_reference.py`` fails on any other dependent action that
  the policy lacks.
- ``ONLY_WHEN``: recorded calls a config needs only with some setting (each
  step's ``only_when``, and deploy's caller check).

A call newly recorded in ``aws_calls.json`` gets ``<prefix>:<Operation>`` and
must then pass the reference test (the action exists, takes the resources
given, its dependent actions are granted): a new parameter that makes AWS
check more is added to the ``beyond`` of the step that makes the call.
"""
from __future__ import annotations

from typing import Callable

from ..registry import Beyond, OnlyWhen
from ..steps import STEPS

# (boto3 service, operation) -> the IAM action(s) AWS checks for the call itself.
OWN: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "ListObjectVersions"): ("s3:ListBucketVersions",),
    ("s3", "ListBuckets"): ("s3:ListAllMyBuckets",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "DeleteObjects"): ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    ("s3", "DeleteObject"): ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    ("s3", "PutBucketLifecycleConfiguration"): ("s3:PutLifecycleConfiguration",),
    ("s3", "GetBucketLifecycleConfiguration"): ("s3:GetLifecycleConfiguration",),
    ("s3", "DeleteBucketLifecycle"): ("s3:PutLifecycleConfiguration",),
    ("s3", "PutPublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "GetPublicAccessBlock"): ("s3:GetBucketPublicAccessBlock",),
    ("s3", "DeletePublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "PutBucketEncryption"): ("s3:PutEncryptionConfiguration",),
    ("s3", "GetBucketEncryption"): ("s3:GetEncryptionConfiguration",),
    ("s3", "DeleteBucketTagging"): ("s3:PutBucketTagging",),
    # Whoever may set the mail bucket's policy can grant itself any object action there; saying so openly
    # (parliament: RESOURCE_POLICY_PRIVILEGE_ESCALATION) adds no power that PutBucketPolicy does not give.
    ("s3", "PutBucketPolicy"): ("s3:PutBucketPolicy", "s3:PutObject"),
    ("cloudfront", "CreateDistributionWithTags"): ("cloudfront:CreateDistribution",),
    ("logs", "TagLogGroup"): ("logs:TagLogGroup", "logs:TagResource"),
    ("logs", "ListTagsLogGroup"): ("logs:ListTagsLogGroup", "logs:ListTagsForResource"),
    ("lambda", "Invoke"): ("lambda:InvokeFunction",),
}
PREFIXES = {"sesv2": "ses"}  # boto3 service name -> IAM prefix, where they differ
NO_PERMISSION_NEEDED = {("sts", "GetCallerIdentity")}  # AWS answers it for any caller


# What AWS checks beyond a call's own action for the calls no step makes (the lease table's); each step's
# own are in its STEP (provision/registry.py, ``beyond``).
ACCOUNT_BEYOND: tuple[Beyond, ...] = (
    Beyond("dynamodb", "CreateTable", ("dynamodb:TagResource",),
           "CreateTable with Tags is also authorized as dynamodb:TagResource (hashicorp/terraform-provider-aws#10943; "
           "DynamoDB developer guide, 'Tagging resources': tag on create needs dynamodb:TagResource): the lease table"),
)


def _distinct(rows) -> tuple[Beyond, ...]:
    found: list[Beyond] = []
    for row in rows:
        if row not in found:
            found.append(row)
    return tuple(found)


BEYOND: tuple[Beyond, ...] = _distinct((*ACCOUNT_BEYOND, *(row for step in STEPS for row in step.beyond)))

# (action, dependent action the Service Authorization Reference names) -> why the toolkit's use does not need it.
NOT_NEEDED: dict[tuple[str, str], str] = {
    ("sns:CreateTopic", "iam:PassRole"): "only to pass a delivery-status logging role (the *FeedbackRoleArn "
                                         "attributes); the toolkit sets none",
    ("sns:SetTopicAttributes", "iam:PassRole"): "only for the *FeedbackRoleArn attributes; the toolkit sets the "
                                                "topic's Policy only",
    ("ec2:AuthorizeSecurityGroupEgress", "ec2:CreateTags"): "only with TagSpecifications, which the egress call "
                                                            "does not pass",
    ("wafv2:PutLoggingConfiguration", "iam:CreateServiceLinkedRole"): "WAF creates its service-linked role for a "
                                                                      "Firehose destination only; ours is a "
                                                                      "CloudWatch Logs log group",
}


ONLY_WHEN: dict[tuple[str, str], OnlyWhen] = {
    ("iam", "SimulatePrincipalPolicy"): OnlyWhen(lambda cfg: cfg.stack.check_permissions,
                                                 "deploy simulates the caller's permissions first only with "
                                                 "[stack] check_permissions = true"),
    **{call: rule for step in STEPS for call, rule in step.only_when.items()},
}


def own_actions(service: str, operation: str, http_method: Callable[[str], str]) -> tuple[str, ...]:
    """The IAM action(s) AWS checks for the call itself; API Gateway's by HTTP method (``http_method``)."""
    if (service, operation) in OWN:
        return OWN[(service, operation)]
    if service in ("apigateway", "apigatewayv2"):  # both authorize as apigateway:<HTTP method>
        return (f"apigateway:{http_method(operation)}",)
    return (f"{PREFIXES.get(service, service)}:{operation}",)


def beyond(service: str, operation: str) -> tuple[Beyond, ...]:
    return tuple(b for b in BEYOND if (b.service, b.operation) == (service, operation))


def resource_types(action: str, service: str, operation: str) -> tuple[str, ...]:
    """The resource types the table names for this action in this call; () for the action's usual ones."""
    return tuple(t for b in beyond(service, operation) for t in b.resources.get(action, ()))


def needed(service: str, operation: str, config) -> bool:
    """Whether this config needs the recorded call at all."""
    if (service, operation) in NO_PERMISSION_NEEDED:
        return False
    rule = ONLY_WHEN.get((service, operation))
    return rule is None or rule.applies(config)
