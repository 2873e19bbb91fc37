"""What AWS checks for each API call the toolkit makes, where that is more than ``<prefix>:<Operation>``.

One table each, so that the policy builder (provision/iam/policy.py) holds no
knowledge of its own about services:

- ``OWN``: the call's own IAM action(s) where their name differs from the
  operation's (S3 above all; API Gateway is derived from botocore's model).
- ``BEYOND``: permissions AWS checks in addition, because of a parameter the
  toolkit passes (tags on create, a role passed, a VPC configuration that
  Lambda checks with the caller's permissions, a log delivery), each with the
  documentation that says so. ``resources`` names Service Authorization
  Reference resource types an action is checked on for that call where they
  are not its usual ones (``security-group-rule`` when a rule is tagged on
  creation, API Gateway's ``/tags``).
- ``NOT_NEEDED``: dependent actions the Service Authorization Reference names
  that the toolkit's use of the call does not trigger, each with why;
  ``tests/test_policy_reference.py`` fails on any other dependent action that
  the policy lacks.
- ``ONLY_WHEN``: recorded calls a config needs only with some setting.

A call newly recorded in ``aws_calls.json`` gets ``<prefix>:<Operation>`` and
must then pass the reference test (the action exists, takes the resources
given, its dependent actions are granted): a new parameter that makes AWS
check more is added to ``BEYOND``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..config import Config

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


@dataclass(frozen=True)
class Beyond:
    """Permissions AWS checks for one call beyond its own action."""
    service: str                     # boto3's name
    operation: str
    actions: tuple[str, ...]         # IAM actions checked too
    source: str                      # where AWS documents it
    # action -> the resource types (Service Authorization Reference names) AWS checks it on for this call,
    # where they are not the action's usual ones
    resources: dict[str, tuple[str, ...]] = field(default_factory=dict)


LAMBDA_VPC = ("Lambda developer guide, 'Giving Lambda functions access to a VPC' (configuration-vpc): to configure a "
              "function to connect to a VPC, the user needs ec2:DescribeSecurityGroups, ec2:DescribeSubnets, "
              "ec2:DescribeVpcs; Lambda checks them on CreateFunction and UpdateFunctionConfiguration")
APIGW_TAGS = ("API Gateway authorizes tags given at creation as apigateway:PUT on arn:aws:apigateway:<region>::/tags/"
              "<URL-encoded resource ARN> (the AccessDenied quoted in mattclay/aws-terminator#284; API Gateway "
              "developer guide, 'Using tags to control access to API Gateway REST API resources')")

BEYOND: tuple[Beyond, ...] = (
    Beyond("lambda", "GetFunction", ("lambda:ListTags",),
           "Lambda API reference, GetFunction: 'returns tag data only if you have explicit allow permissions for "
           "lambda:ListTags'; the function step decides ownership from those tags"),
    Beyond("lambda", "CreateFunction", ("lambda:TagResource", "iam:PassRole", "ec2:DescribeSecurityGroups",
                                        "ec2:DescribeSubnets", "ec2:DescribeVpcs"),
           "Service Authorization Reference, Lambda: CreateFunction depends on iam:PassRole; Lambda developer "
           "guide, 'Using tags on Lambda functions': tagging on create needs lambda:TagResource; " + LAMBDA_VPC),
    Beyond("lambda", "UpdateFunctionConfiguration", ("iam:PassRole", "ec2:DescribeSecurityGroups",
                                                     "ec2:DescribeSubnets", "ec2:DescribeVpcs"),
           "Lambda API reference, UpdateFunctionConfiguration passes Role (iam:PassRole); " + LAMBDA_VPC),
    Beyond("sns", "CreateTopic", ("sns:TagResource",),
           "SNS API reference, CreateTopic: 'To be able to tag a topic on creation, you must have the "
           "sns:CreateTopic and sns:TagResource permissions'"),
    Beyond("cloudwatch", "PutMetricAlarm", ("cloudwatch:TagResource",),
           "CloudWatch API reference, PutMetricAlarm (Tags): 'To be able to associate tags with the alarm when you "
           "create the alarm, you must have the cloudwatch:TagResource permission'"),
    Beyond("events", "PutRule", ("events:TagResource",),
           "EventBridge API reference, PutRule (Tags): 'If you are using ... Tags, you must have the "
           "events:TagResource permission' (EventBridge user guide, tag-on-create)"),
    Beyond("ec2", "CreateSecurityGroup", ("ec2:CreateTags",),
           "EC2 user guide, 'Grant permission to tag Amazon EC2 resources during creation': CreateTags with "
           "ec2:CreateAction = CreateSecurityGroup; Service Authorization Reference: dependent action"),
    Beyond("ec2", "AuthorizeSecurityGroupIngress", ("ec2:CreateTags",),
           "Service Authorization Reference, Amazon EC2, AuthorizeSecurityGroupIngress: 'Policies using the "
           "security-group-rule resource-level permission are only enforced when the API request includes "
           "TagSpecifications' (the toolkit tags its rule): the action and ec2:CreateTags on "
           "security-group-rule/*",
           resources={"ec2:AuthorizeSecurityGroupIngress": ("security-group", "security-group-rule"),
                      "ec2:CreateTags": ("security-group-rule",)}),
    Beyond("rds", "CreateDBProxy", ("iam:PassRole", "rds:AddTagsToResource"),
           "Service Authorization Reference, Amazon RDS: CreateDBProxy depends on iam:PassRole (the proxy's role); "
           "RDS user guide, 'Tagging Amazon RDS resources': tags given at creation need rds:AddTagsToResource"),
    Beyond("iam", "CreateRole", ("iam:TagRole",),
           "IAM user guide, 'Tagging IAM roles': to create a role with tags you need iam:CreateRole and iam:TagRole"),
    Beyond("iam", "CreatePolicy", ("iam:TagPolicy",),
           "IAM user guide, 'Tagging customer managed policies': to create a policy with tags you need "
           "iam:CreatePolicy and iam:TagPolicy"),
    Beyond("logs", "CreateLogGroup", ("logs:TagResource", "logs:TagLogGroup"),
           "CloudWatch Logs API reference, CreateLogGroup: 'To be able to tag a log group, you must have both the "
           "logs:TagResource and logs:TagLogGroup permissions'"),
    Beyond("wafv2", "CreateWebACL", ("wafv2:TagResource",),
           "AWS WAF developer guide, tagging: tags given at creation need wafv2:TagResource"),
    Beyond("wafv2", "CreateIPSet", ("wafv2:TagResource",),
           "AWS WAF developer guide, tagging: tags given at creation need wafv2:TagResource"),
    Beyond("acm", "RequestCertificate", ("acm:AddTagsToCertificate",),
           "ACM user guide, 'Tagging AWS Certificate Manager certificates': RequestCertificate with Tags needs "
           "acm:AddTagsToCertificate"),
    Beyond("dynamodb", "CreateTable", ("dynamodb:TagResource",),
           "CreateTable with Tags is also authorized as dynamodb:TagResource (hashicorp/terraform-provider-aws#10943; "
           "DynamoDB developer guide, 'Tagging resources': tag on create needs dynamodb:TagResource): the lease table"),
    Beyond("cloudfront", "CreateDistributionWithTags", ("cloudfront:TagResource",),
           "CloudFront API reference, CreateDistributionWithTags: authorized as cloudfront:CreateDistribution and "
           "cloudfront:TagResource (Service Authorization Reference has no action of that name)"),
    Beyond("wafv2", "PutLoggingConfiguration", ("logs:CreateLogDelivery", "logs:PutResourcePolicy",
                                                "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"),
           "AWS WAF developer guide, 'Sending web ACL traffic logs to an Amazon CloudWatch Logs log group': "
           "permissions required to enable logging"),
    Beyond("wafv2", "DeleteLoggingConfiguration", ("logs:DeleteLogDelivery",),
           "AWS WAF developer guide, logging permissions: disabling CloudWatch Logs delivery"),
    *(Beyond("apigateway", op, ("apigateway:PUT",), APIGW_TAGS, resources={"apigateway:PUT": ("Tags",)})
      for op in ("CreateRestApi", "CreateApiKey", "CreateUsagePlan", "CreateStage")),
    Beyond("apigateway", "UpdateAccount", ("iam:PassRole",),
           "API Gateway developer guide, 'Set up CloudWatch logging for REST APIs': setting the account's "
           "cloudwatchRoleArn passes that role to API Gateway (iam:PassRole)"),
    Beyond("logs", "PutDeliverySource", ("logs:TagResource", "cloudfront:AllowVendedLogDeliveryForResource"),
           "CloudFront developer guide, 'Configure standard logging (v2)', permissions: a CloudFront delivery "
           "source needs cloudfront:AllowVendedLogDeliveryForResource on the distribution; tags on create need "
           "logs:TagResource"),
    Beyond("logs", "PutDeliveryDestination", ("logs:TagResource",),
           "CloudWatch Logs API reference, PutDeliveryDestination: tags given at creation need logs:TagResource"),
    Beyond("logs", "CreateDelivery", ("logs:TagResource", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                                      "logs:DescribeLogGroups"),
           "CloudWatch Logs user guide, 'Logs sent to CloudWatch Logs' (V2 permissions): the delivery adds the "
           "log group to a log-delivery resource policy; tags on create need logs:TagResource"),
    Beyond("apigateway", "TagResource", ("apigateway:PATCH",),
           "TagResource is authorized as apigateway:PUT on /tags/<ARN> and apigateway:PATCH on the tagged resource "
           "(iann0036/iam-dataset#39, tested against AWS)", resources={"apigateway:PATCH": ("Stage",)}),
)

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


@dataclass(frozen=True)
class OnlyWhen:
    """A recorded call that a config needs only with some setting."""
    applies: Callable[["Config"], bool]  # config -> needed?
    why: str


ALERT_CREATES = ("the alerts step creates and updates its rule, topic and subscription only with [alerts]; "
                 "without it, it only finds and deletes them")
PROXY_CREATES = ("the RDS Proxy is made and given its target only with [database] proxy = true; without it, "
                 "the proxy step only finds and deletes one")
ONLY_WHEN: dict[tuple[str, str], OnlyWhen] = {
    **{call: OnlyWhen(lambda cfg: cfg.database.proxy, PROXY_CREATES)
       for call in (("rds", "CreateDBProxy"), ("rds", "RegisterDBProxyTargets"))},
    ("iam", "PutRolePolicy"): OnlyWhen(lambda cfg: cfg.database.auth == "iam",
                                       "the role's one inline policy (rds-db:connect) exists only with "
                                       "auth = \"iam\"; the grant lets its holder write any inline policy on the "
                                       "function's role, so it is left out where it is not needed"),
    ("iam", "SimulatePrincipalPolicy"): OnlyWhen(lambda cfg: cfg.stack.check_permissions,
                                                 "deploy simulates the caller's permissions first only with "
                                                 "[stack] check_permissions = true"),
    **{call: OnlyWhen(lambda cfg: cfg.alerts is not None, ALERT_CREATES)
       for call in (("sns", "CreateTopic"), ("sns", "SetTopicAttributes"), ("sns", "Subscribe"),
                    ("events", "PutRule"), ("events", "PutTargets"))},
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
