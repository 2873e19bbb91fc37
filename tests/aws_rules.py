"""AWS as it behaves, where the emulator is lenient: rules a test switches on.

moto accepts what AWS refuses (a VPC function right after its role is made,
reserved concurrency past the account's headroom, a second DeleteRestApi
within 30 s, ...). Each rule here makes moto answer as AWS does for one such
case, and names the AWS documentation or issue it comes from, so a fix cannot
regress silently and the next difference found is one more rule.
``docs/aws-vs-emulator.md`` lists them for readers of the project.

A rule sees every AWS call a test's code makes (any client, any session) and
either lets it through (``call.send()``), changes what comes back, or answers
in AWS's place (``aws_error``). Switch rules on with the ``aws_rules`` fixture:

    def test_x(aws_rules, ...):
        aws_rules(SOME_RULE)
"""
from __future__ import annotations

import fnmatch
import json
import math
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import quote

import boto3
from botocore.client import BaseClient
from moto.core.botocore_stubber import BotocoreStubber

from tests.support import TEST_TIME, aws_error


@dataclass
class Call:
    """One AWS call on its way to moto: ``send()`` passes it on and returns moto's answer."""
    service: str          # botocore's service name: "lambda", "apigateway", ...
    operation: str        # "CreateFunction"
    params: dict
    send: Callable[[], dict]
    client: Any


@dataclass
class Rule:
    """What AWS does that moto does not, for the calls ``applies`` picks."""
    name: str
    source: str                                   # AWS documentation or public issue
    applies: Callable[[Call], bool]
    answer: Callable[[Call], dict]                # call.send() to let moto answer
    seen: list[Call] = field(default_factory=list)  # the calls it applied to, for assertions


def fail_with(code: str, message: str, status: int = 400,
              headers: dict | None = None) -> Callable[[Call], dict]:
    """``answer`` that refuses the call as AWS would."""
    def answer(call: Call) -> dict:
        raise aws_error(call.operation, code, message, status, headers)
    return answer


def operation(service: str, *operations: str) -> Callable[[Call], bool]:
    """``applies`` for the named operations of one service."""
    return lambda call: call.service == service and call.operation in operations


def install(monkeypatch, rules: list[Rule]) -> None:
    """Route every boto3 call through the active rules, in order: each applicable rule answers, and its
    ``call.send()`` passes the call on to the next applicable rule, the last to moto."""
    original = BaseClient._make_api_call

    def through(start: int, client, operation_name: str, api_params: dict):
        for index in range(start, len(rules)):
            call = Call(service=client.meta.service_model.service_name, operation=operation_name,
                        params=api_params, client=client,
                        send=lambda after=index + 1: through(after, client, operation_name, api_params))
            if rules[index].applies(call):
                rules[index].seen.append(call)
                return rules[index].answer(call)
        return original(client, operation_name, api_params)

    def make_api_call(client, operation_name, api_params):
        if getattr(_BYPASS, "on", False):
            return original(client, operation_name, api_params)
        return through(0, client, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    monkeypatch.setattr(BotocoreStubber, "__call__", _unless_refused(BotocoreStubber.__call__))


REFUSED_BELOW_PARSER = "refused_by_an_aws_rule"


def _unless_refused(stubber_call):
    """moto's before-send handler, which does not act on a request a rule has answered below botocore's parser
    (``REFUSED_BELOW_PARSER`` set on it). botocore calls every before-send handler and keeps the first answer,
    so without this moto would carry out a call the rule refused (a throttled DeleteRestApi deleted the API,
    and the retry met moto's KeyError)."""
    def call(self, event_name: str, request, **kwargs):
        if getattr(request, REFUSED_BELOW_PARSER, False):
            return None
        return stubber_call(self, event_name, request, **kwargs)
    return call


_BYPASS = threading.local()


@contextmanager
def bypassing() -> Iterator[None]:
    """The rules' own reads of moto (a group's tags, the database's VPC) go straight to moto."""
    before = getattr(_BYPASS, "on", False)
    _BYPASS.on = True
    try:
        yield
    finally:
        _BYPASS.on = before


# --- the rules -----------------------------------------------------------------------------
# Each rule is built by a function taking what the test controls (a clock, a count), with the
# source of the AWS behaviour in its docstring and in Rule.source.


class Clock:
    """A test's time for rules that count it: given to the toolkit as ``ctx.sleep``, a sleep moves it on
    at once (and is recorded in ``slept``); ``advance`` moves it for whatever else happens between calls."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        TEST_TIME.passes(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        TEST_TIME.passes(seconds)


API_GATEWAY_QUOTAS_SOURCE = ("Amazon API Gateway quotas, 'API Gateway quotas for creating, deploying and managing an "
                             "API' (fixed, cannot be increased): https://docs.aws.amazon.com/apigateway/latest/"
                             "developerguide/limits.html")


def api_gateway_quota(clock: Clock, op: str, every: float, retry_after: bool = True) -> Rule:
    """API Gateway's fixed control-plane quota for ``op``: one call per ``every`` seconds per account
    (DeleteRestApi 30, UpdateUsagePlan 20, UpdateAccount 20, CreateDeployment 5, CreateRestApi 3; Amazon API
    Gateway quotas); a call sooner is refused with 429 TooManyRequestsException, with ``Retry-After`` (the
    API's ``retryAfterSeconds``) when ``retry_after``. moto has no such quota."""
    accepted: list[float] = []

    def answer(call: Call) -> dict:
        if accepted and clock.now - accepted[-1] < every:
            wait = math.ceil(every - (clock.now - accepted[-1]))
            raise aws_error(call.operation, "TooManyRequestsException", "Too Many Requests", 429,
                            {"retry-after": str(wait)} if retry_after else None)
        accepted.append(clock.now)
        return call.send()

    return Rule(f"{op}: one call per {every:g} s", API_GATEWAY_QUOTAS_SOURCE, operation("apigateway", op), answer)


def always_throttled(op: str) -> Rule:
    """An account whose quota for ``op`` other callers keep using up: every call is throttled (the bound)."""
    return Rule(f"{op}: always throttled", API_GATEWAY_QUOTAS_SOURCE, operation("apigateway", op),
                fail_with("TooManyRequestsException", "Too Many Requests", 429, {"retry-after": "30"}))


ENI_MESSAGE = ("The provided execution role does not have permissions to call CreateNetworkInterface on EC2")


def role_without_eni_permissions_yet(times: int = 1) -> Rule:
    """Right after CreateRole and AttachRolePolicy, a VPC CreateFunction fails for seconds with
    InvalidParameterValueException "The provided execution role does not have permissions to call
    CreateNetworkInterface on EC2", the role's policy not having propagated yet (aws-cdk#7998,
    serverless#2780). moto creates the function at once."""
    def answer(call: Call) -> dict:
        if len(rule.seen) <= times:
            raise aws_error(call.operation, "InvalidParameterValueException", ENI_MESSAGE)
        return call.send()

    rule = Rule("CreateFunction: the new role's EC2 permissions not propagated yet",
                "aws-cdk#7998; serverless#2780 (InvalidParameterValueException on a VPC function right after the "
                "role is made)", operation("lambda", "CreateFunction"), answer)
    return rule


INACTIVE_SOURCE = ("Lambda developer guide, 'Lambda function states' (Inactive: 'When you try to invoke a function "
                   "that is inactive, the invocation fails and Lambda sets the function to pending state') and "
                   "'Giving Lambda functions access to resources in a VPC' ('To reactivate an idle function, invoke "
                   "it'); Lambda API reference, ResourceNotReadyException")


def function_goes_inactive(name: str) -> Rule:
    """A function idle for weeks is Inactive (its network interfaces reclaimed) and stays so however long one
    waits; an invocation fails with ResourceNotReadyException (502) and sets it Pending; it is Active at the
    read after that. Updates are accepted while Inactive. moto's functions are Active for ever."""
    state = {"now": "Inactive"}

    def shown(config: dict) -> dict:
        if state["now"] == "Inactive":
            return {**config, "State": "Inactive", "StateReasonCode": "Idle",
                    "StateReason": "The function is idle and its VPC connection has been reclaimed."}
        if state["now"] == "Pending":
            state["now"] = "Active"
            return {**config, "State": "Pending", "StateReasonCode": "Restoring", "StateReason": "Restoring"}
        return config

    def answer(call: Call) -> dict:
        if call.operation == "Invoke":
            if state["now"] != "Inactive":
                return call.send()
            state["now"] = "Pending"
            raise aws_error("Invoke", "ResourceNotReadyException", "The function is inactive and its VPC "
                            "connection is no longer available. Wait for the VPC connection to reestablish and "
                            "try again.", 502)
        found = call.send()
        if call.operation == "GetFunction":
            return {**found, "Configuration": shown(found["Configuration"])}
        return shown(found)

    def applies(call: Call) -> bool:
        return (call.service == "lambda" and call.params.get("FunctionName") == name
                and call.operation in ("GetFunction", "GetFunctionConfiguration", "Invoke"))

    return Rule("a function idle for weeks is Inactive", INACTIVE_SOURCE, applies, answer)


CONCURRENCY_SOURCE = ("Lambda developer guide, 'Configuring reserved concurrency' (the unreserved minimum must "
                      "stay unreserved) and 'Lambda quotas'; 'decreases account's UnreservedConcurrentExecution "
                      "below its minimum value of [10]' on new accounts with a limit of 10 "
                      "(awslabs/fhir-works-on-aws-deployment#691, DataDog/datadog-serverless-functions#621)")


def account_concurrency(limit: int = 10, minimum: int = 10, reserved_elsewhere: int = 0) -> Rule:
    """GetAccountSettings as AWS answers it (moto: 404 "Not yet implemented") for an account with ``limit``
    concurrent executions, ``reserved_elsewhere`` of them reserved by other functions; PutFunctionConcurrency
    refused with InvalidParameterValueException when it would leave fewer than ``minimum`` unreserved (moto
    enforces nothing unless MOTO_LAMBDA_CONCURRENCY_QUOTA is set, and then a fixed minimum of 100)."""
    reserved: dict[str, int] = {}

    def unreserved() -> int:
        return limit - reserved_elsewhere - sum(reserved.values())

    def answer(call: Call) -> dict:
        name = call.params.get("FunctionName", "")
        if call.operation == "GetAccountSettings":
            return {"AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000,
                                     "CodeSizeZipped": 52428800, "ConcurrentExecutions": limit,
                                     "UnreservedConcurrentExecutions": unreserved()},
                    "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": len(reserved)}}
        if call.operation == "PutFunctionConcurrency":
            wanted = call.params["ReservedConcurrentExecutions"]
            if unreserved() + reserved.get(name, 0) - wanted < minimum:
                raise aws_error(call.operation, "InvalidParameterValueException",
                                "Specified ReservedConcurrentExecutions for function decreases account's "
                                f"UnreservedConcurrentExecution below its minimum value of [{minimum}].")
            found = call.send()
            reserved[name] = wanted
            return found
        found = call.send()  # DeleteFunctionConcurrency, DeleteFunction
        reserved.pop(name, None)
        return found

    return Rule(f"an account with {limit} concurrent executions", CONCURRENCY_SOURCE,
                operation("lambda", "GetAccountSettings", "PutFunctionConcurrency", "DeleteFunctionConcurrency",
                          "DeleteFunction"), answer)


SUBNETS_SOURCE = ("Lambda API reference, VpcConfig ('SubnetIds ... Maximum number of 16 items'); 'The provided "
                  "subnets contain availability zone Lambda doesn't support' (keboola/developer-portal#81, "
                  "us-east-1)")


def lambda_subnet_limits(unsupported_zones: frozenset[str] = frozenset({"use1-az3"})) -> Rule:
    """CreateFunction and UpdateFunctionConfiguration refuse more than 16 subnets (ValidationException) and
    subnets in zones Lambda does not run in (InvalidParameterValueException); moto takes any list."""
    def answer(call: Call) -> dict:
        subnet_ids = (call.params.get("VpcConfig") or {}).get("SubnetIds") or []
        if len(subnet_ids) > 16:
            raise aws_error(call.operation, "ValidationException",
                            f"1 validation error detected: Value '{subnet_ids}' at 'vpcConfig.subnetIds' failed to "
                            "satisfy constraint: Member must have length less than or equal to 16")
        if subnet_ids:
            ec2 = boto3.client("ec2", region_name=call.client.meta.region_name)
            zones = {s["AvailabilityZoneId"] for s in ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]}
            if zones & unsupported_zones:
                raise aws_error(call.operation, "InvalidParameterValueException",
                                "The provided subnets contain availability zone Lambda doesn't support. Please use "
                                "a different set of subnets.")
        return call.send()

    return Rule("Lambda's subnets: at most 16, in zones Lambda runs in", SUBNETS_SOURCE,
                operation("lambda", "CreateFunction", "UpdateFunctionConfiguration"), answer)


WAF_LOG_POLICY = "AWSWAF-LOGS"
WAF_LOG_POLICY_SOURCE = ("CloudWatch Logs user guide, 'Enabling logging from AWS services' (a resource policy is at "
                         "most 5,120 characters); CloudWatch Logs API reference, PutResourcePolicy ('up to 10 "
                         "resource policies per AWS Region'); hashicorp/terraform-provider-aws#25296 (WAF adds each "
                         "log group to AWSWAF-LOGS in us-east-1 and fails with WAFLogDestinationPermissionIssueException "
                         "once it cannot)")


def waf_log_resource_policy() -> Rule:
    """PutLoggingConfiguration to a CloudWatch Logs group: WAF first adds the group to the account's
    ``AWSWAF-LOGS`` resource policy in the group's region, and fails with
    WAFLogDestinationPermissionIssueException when the policy cannot be made (10 policies already) or would
    pass 5,120 characters. moto's WAF writes no resource policy."""
    def answer(call: Call) -> dict:
        config = call.params["LoggingConfiguration"]
        groups = [d for d in config["LogDestinationConfigs"] if ":logs:" in d]
        if groups:
            logs = boto3.client("logs", region_name=groups[0].split(":")[3])
            policies = logs.describe_resource_policies()["resourcePolicies"]
            current = next((p for p in policies if p["policyName"] == WAF_LOG_POLICY), None)
            document = json.loads(current["policyDocument"]) if current else {
                "Version": "2012-10-17", "Statement": [{
                    "Sid": "AWSLogDeliveryWrite", "Effect": "Allow",
                    "Principal": {"Service": "delivery.logs.amazonaws.com"},
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": []}]}
            resources = document["Statement"][0]["Resource"]
            for group in groups:
                entry = f"{group.removesuffix(':*')}:log-stream:*"
                if entry not in resources:
                    resources.append(entry)
            text = json.dumps(document)
            if (current is None and len(policies) >= 10) or len(text) > 5120:
                raise aws_error(call.operation, "WAFLogDestinationPermissionIssueException",
                                "Unable to deliver logs to the configured destination. You might need to grant log "
                                "delivery permissions for the destination.")
            logs.put_resource_policy(policyName=WAF_LOG_POLICY, policyDocument=text)
        return call.send()

    return Rule("WAF logging to CloudWatch Logs needs room in AWSWAF-LOGS", WAF_LOG_POLICY_SOURCE,
                operation("wafv2", "PutLoggingConfiguration"), answer)


def waf_ip_sets_refuse_slash_zero() -> Rule:
    """WAF refuses a /0 range in an IP set; moto stores it.

    "AWS WAF supports all IPv4 and IPv6 CIDR ranges except for /0" (WAFv2 API reference, IPSet,
    Addresses). On AWS the deploy would fail at the IP set, after the steps before it had run.
    """
    def applies(call: Call) -> bool:
        return (call.service == "wafv2" and call.operation in ("CreateIPSet", "UpdateIPSet")
                and any(address.endswith("/0") for address in call.params.get("Addresses", [])))

    def answer(call: Call) -> dict:
        zero = next(a for a in call.params["Addresses"] if a.endswith("/0"))
        raise aws_error(call.operation, "WAFInvalidParameterException",
                        f"Error reason: The parameter contains formatting that is not valid., field: IP_ADDRESS, "
                        f"parameter: {zero}")
    return Rule("WAF refuses /0 in an IP set", "WAFv2 API reference, IPSet: Addresses", applies, answer)


def waf_sampled_requests(authorization: str, client_ip: str = "203.0.113.7") -> Rule:
    """GetSampledRequests as AWS answers it; moto does not implement the call.

    With SampledRequestsEnabled in the rule's (or, for the default action, the web ACL's)
    VisibilityConfig, WAF keeps a sample of the requests it inspected with their headers as sent:
    "Request sampling doesn't provide a field redaction option, and any field redaction that you
    specify in your logging configuration doesn't affect sampling" (WAFv2 API reference,
    VisibilityConfig). The rule answers as if one caller from ``client_ip`` had sent
    ``authorization``; with sampling off, the sample is empty. (The web ACL's DataProtectionConfig,
    which would also mask sampled fields, is not modelled: moto 5.2.5 drops it.)
    """
    def answer(call: Call) -> dict:
        waf, arn, metric = call.client, call.params["WebAclArn"], call.params["RuleMetricName"]
        summary = next(a for a in waf.list_web_acls(Scope=call.params["Scope"])["WebACLs"] if a["ARN"] == arn)
        acl = waf.get_web_acl(Name=summary["Name"], Scope=call.params["Scope"], Id=summary["Id"])["WebACL"]
        by_metric = {r["VisibilityConfig"]["MetricName"]: r["VisibilityConfig"] for r in acl["Rules"]}
        by_metric["Default_Action"] = by_metric[acl["VisibilityConfig"]["MetricName"]] = acl["VisibilityConfig"]
        visibility = by_metric.get(metric)
        window = call.params["TimeWindow"]
        if not (visibility or {}).get("SampledRequestsEnabled"):
            return {"SampledRequests": [], "PopulationSize": 0, "TimeWindow": window}
        request = {"ClientIP": client_ip, "Country": "US", "URI": "/items", "Method": "GET",
                   "HTTPVersion": "HTTP/2.0", "Headers": [{"Name": "host", "Value": "api.example.com"},
                               {"Name": "authorization", "Value": authorization}]}
        return {"SampledRequests": [{"Request": request, "Weight": 1, "Timestamp": window["StartTime"],
                                     "Action": "ALLOW" if metric != "Default_Action" else "BLOCK"}],
                "PopulationSize": 1, "TimeWindow": window}
    return Rule("WAF samples requests with their headers", "WAFv2 API reference, VisibilityConfig: "
                "SampledRequestsEnabled", operation("wafv2", "GetSampledRequests"), answer)


def cloudfront_quantities_match() -> Rule:
    """CloudFront refuses a list whose Quantity is not its number of Items; moto ignores Quantity.

    CreateDistribution and UpdateDistribution answer InconsistentQuantities, "The value of Quantity
    and the size of Items don't match" (CloudFront API reference, CreateDistribution: Errors).
    """
    def inconsistent(value) -> bool:
        if isinstance(value, dict):
            if "Quantity" in value and len(value.get("Items") or []) != value["Quantity"]:
                return True
            return any(inconsistent(v) for v in value.values())
        if isinstance(value, list):
            return any(inconsistent(v) for v in value)
        return False

    def applies(call: Call) -> bool:
        return (call.service == "cloudfront"
                and call.operation in ("CreateDistribution", "CreateDistributionWithTags", "UpdateDistribution")
                and inconsistent(call.params))
    return Rule("CloudFront checks every Quantity", "CloudFront API reference, CreateDistribution: "
                "InconsistentQuantities", applies,
                fail_with("InconsistentQuantities", "The value of Quantity and the size of Items don't match."))


def route53_answers_cloudfront_aliases(ipv4: str = "192.0.2.10", ipv6: str = "2001:db8::10") -> Rule:
    """TestDNSAnswer for an alias to a CloudFront distribution, answered as AWS resolves it; moto has
    no TestDNSAnswer.

    An alias answers with its target's addresses, and a distribution with IsIPV6Enabled false
    "responds to IPv6 DNS requests with the DNS response code NOERROR and with no IP addresses. This
    allows viewers to submit a second request, for an IPv4 address" (CloudFront API reference,
    DistributionConfig: IsIPV6Enabled). So a dual-stack caller uses IPv6 exactly when the domain has
    an AAAA alias to a distribution with IPv6 on. The addresses answered are documentation ones.
    """
    def answer(call: Call) -> dict:
        import boto3

        name, rtype = call.params["RecordName"].rstrip(".") + ".", call.params["RecordType"]
        found = call.client.list_resource_record_sets(HostedZoneId=call.params["HostedZoneId"], StartRecordName=name,
                                                      StartRecordType=rtype, MaxItems="1")["ResourceRecordSets"]
        record = next((r for r in found if r["Name"] == name and r["Type"] == rtype), None)
        data: list[str] = []
        target = ((record or {}).get("AliasTarget") or {}).get("DNSName", "").rstrip(".")
        if target.endswith(".cloudfront.net"):
            listed = boto3.client("cloudfront", region_name="us-east-1").list_distributions()
            items = listed["DistributionList"].get("Items") or []
            distribution = next((d for d in items if d["DomainName"] == target), None)
            if distribution and (rtype == "A" or (rtype == "AAAA" and distribution["IsIPV6Enabled"])):
                data = [ipv4 if rtype == "A" else ipv6]
        elif record:
            data = [r["Value"] for r in record.get("ResourceRecords", [])]
        return {"Nameserver": "ns-1.awsdns-01.org", "RecordName": name, "RecordType": rtype,
                "RecordData": data, "ResponseCode": "NOERROR", "Protocol": "UDP"}
    return Rule("Route 53 answers an AAAA alias to CloudFront only with IPv6 on",
                "CloudFront API reference, DistributionConfig: IsIPV6Enabled", operation("route53", "TestDNSAnswer"),
                answer)


def function_tags_need_list_tags() -> Rule:
    """GetFunction returns the function's tags only to a caller allowed lambda:ListTags on it: "returns tag data
    only if you have explicit allow permissions for lambda:ListTags" (Lambda API reference, GetFunction). moto
    returns them to anyone. The caller's permissions are read from moto's IAM, evaluated by moto's own matcher;
    credentials moto's IAM does not know (the suite's default ones) may do anything, as in moto."""
    def answer(call: Call) -> dict:
        found = call.send()
        if "Tags" in found and not _caller_may(call, "lambda:ListTags", found["Configuration"]["FunctionArn"]):
            found = {key: value for key, value in found.items() if key != "Tags"}
        return found
    return Rule("GetFunction returns the tags only with lambda:ListTags", "Lambda API reference, GetFunction (Tags)",
                operation("lambda", "GetFunction"), answer)


def _caller_may(call: Call, action: str, resource: str) -> bool:
    """Whether the IAM user or role behind the call's credentials is allowed the action on the resource."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.access_control import CreateAccessKeyFailure, IAMPolicy, PermissionResult, create_access_key

    credentials = call.client._request_signer._credentials.get_frozen_credentials()
    headers = {"X-Amz-Security-Token": credentials.token} if credentials.token else {}
    try:
        key = create_access_key(DEFAULT_ACCOUNT_ID, "aws", credentials.access_key, headers)
    except CreateAccessKeyFailure:
        return True
    results = [IAMPolicy(policy).is_action_permitted(action, resource) for policy in key.collect_policies()]
    return PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results


def lost_answers(how: str = "reset", operations: set[str] | None = None) -> Rule:
    """The answer to a changing call lost after AWS acted on it, once per operation.

    ``how``: "reset", the connection drops on the way back (botocore's ConnectionClosedError), or
    "503", AWS did the work and still answered ServiceUnavailable. Either way the resource exists and
    the caller does not know it: "the SDK cannot determine the state of the API call on which the
    connection was reset" (aws/aws-sdk-go#3027). moto always answers. Each changing operation (only
    those named in ``operations``, if given) loses its first answer in each region; later calls go
    through.
    """
    from botocore.exceptions import ConnectionClosedError

    from provision.clients import is_changing

    lost: set[tuple[str, str, str]] = set()

    def key(call: Call) -> tuple[str, str, str]:
        return call.service, call.operation, call.client.meta.region_name  # the function's and WAF's log groups

    def applies(call: Call) -> bool:
        return (is_changing(call.operation) and key(call) not in lost
                and (operations is None or call.operation in operations))

    def answer(call: Call) -> dict:
        call.send()  # AWS acts (an error from it is AWS refusing: nothing lost, the rule stays armed)
        lost.add(key(call))
        if how == "reset":
            raise ConnectionClosedError(endpoint_url=call.client.meta.endpoint_url)
        raise aws_error(call.operation, "ServiceUnavailable", "Service Unavailable", 503)

    return Rule(f"lost answers ({how})", "https://github.com/aws/aws-sdk-go/issues/3027", applies, answer)


# --- Logs an operator and an auditor expect (issue 16) --------------------------------------------------

def access_logging_needs_the_account_role() -> Rule:
    """A REST stage's access log needs the region's API Gateway CloudWatch role set first.

    API Gateway developer guide, "Set up CloudWatch logging for REST APIs in API Gateway": the account
    setting's CloudWatch Logs role ARN is required; UpdateStage without it answers "CloudWatch Logs role ARN
    must be set in account settings to enable logging". moto accepts the stage's log settings regardless.
    """
    source = "API Gateway developer guide: Set up CloudWatch logging for REST APIs (account's CloudWatch role)"

    def applies(call: Call) -> bool:  # only when it refuses, so that later rules see the call otherwise
        return (call.service == "apigateway" and call.operation == "UpdateStage"
                and any(op.get("path", "").startswith("/accessLogSettings/") and op.get("op") != "remove"
                        for op in call.params.get("patchOperations", []))
                and not call.client.get_account().get("cloudwatchRoleArn"))

    return Rule("access logging needs the account's CloudWatch role", source, applies,
                fail_with("BadRequestException",
                          "CloudWatch Logs role ARN must be set in account settings to enable logging"))


def access_log_format_needs_a_request_id() -> Rule:
    """An access log format must carry $context.requestId or $context.extendedRequestId.

    API Gateway developer guide, "CloudWatch log formats for API Gateway": the format must include at least
    one of them; UpdateStage refuses any other. moto stores any format.
    """
    source = "API Gateway developer guide: access log format must include $context.requestId or extendedRequestId"

    def applies(call: Call) -> bool:
        return call.service == "apigateway" and call.operation == "UpdateStage" and any(
            op.get("path") == "/accessLogSettings/format"
            and "$context.requestId" not in (op.get("value") or "")
            and "$context.extendedRequestId" not in (op.get("value") or "")
            for op in call.params.get("patchOperations", []))

    return Rule("access log format needs a request id", source, applies,
                fail_with("BadRequestException", "Access Log format must include at least $context.requestId "
                                                 "or $context.extendedRequestId"))


def new_role_not_yet_usable_by_api_gateway(times: int = 2) -> Rule:
    """UpdateAccount naming a role made seconds ago fails until IAM has propagated it.

    terraform-provider-aws internal/service/apigateway/account.go retries UpdateAccount on "The role ARN
    does not have required permissions set to API Gateway" for IAM's propagation time. moto accepts at once.
    """
    source = "terraform-provider-aws internal/service/apigateway/account.go (retry on IAM propagation)"
    failures = {"left": times}

    def applies(call: Call) -> bool:
        return (call.service == "apigateway" and call.operation == "UpdateAccount"
                and any(op.get("value") for op in call.params.get("patchOperations", [])))

    def answer(call: Call) -> dict:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise aws_error(call.operation, "BadRequestException",
                            "The role ARN does not have required permissions set to API Gateway")
        return call.send()

    return Rule(f"a new role is refused by UpdateAccount {times} times", source, applies, answer)


def delivery_parts_in_use_cannot_be_deleted() -> Rule:
    """A delivery source or destination that a delivery still uses cannot be deleted.

    CloudWatch Logs API reference, DeleteDeliverySource / DeleteDeliveryDestination: "You can't delete a
    delivery source [destination] if any current deliveries are associated with it." moto deletes it and
    leaves the delivery dangling.
    """
    source = "CloudWatch Logs API reference: DeleteDeliverySource, DeleteDeliveryDestination"

    def answer(call: Call) -> dict:
        deliveries = call.client.describe_deliveries().get("deliveries", [])
        name = call.params["name"]
        if call.operation == "DeleteDeliverySource":
            used = any(d.get("deliverySourceName") == name for d in deliveries)
        else:
            used = any(d.get("deliveryDestinationArn", "").endswith(f":delivery-destination:{name}")
                       for d in deliveries)
        if used:
            raise aws_error(call.operation, "ConflictException", f"{name} is in use by a delivery")
        return call.send()

    return Rule("delivery source or destination in use cannot be deleted", source,
                operation("logs", "DeleteDeliverySource", "DeleteDeliveryDestination"), answer)


def request_logging_rules() -> list[Rule]:
    """The rules above together: AWS's behaviour for every call the request logs make."""
    return [access_logging_needs_the_account_role(), access_log_format_needs_a_request_id(),
            new_role_not_yet_usable_by_api_gateway(), delivery_parts_in_use_cannot_be_deleted()]


def tagging_api_covers_more_services() -> Rule:
    """The Resource Groups Tagging API's GetResources returns tagged API Gateway REST APIs, API keys and usage
    plans, WAFv2 web ACLs and IP sets, EC2 security groups and DynamoDB tables, as AWS lists them among its
    supported services; moto 5.2.5 returns none of these (only services with its tagging mixin: ACM, Lambda,
    CloudFront, Logs, S3, SNS, EventBridge, ...). The answer adds them, read from those services, to the last
    page, matching the call's TagFilters (key and values)."""
    source = "https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/supported-services.html"

    def matches(tags: dict, filters: list[dict]) -> bool:
        return all(f["Key"] in tags and (not f.get("Values") or tags[f["Key"]] in f["Values"]) for f in filters)

    def extra(call: Call) -> list[tuple[str, dict]]:
        import boto3

        from provision.tags import as_dict

        region = call.client.meta.region_name
        account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
        apigw = boto3.client("apigateway", region_name=region)
        found = [(f"arn:aws:apigateway:{region}::/{kind}/{item['id']}", item.get("tags") or {})
                 for kind, listing in (("restapis", apigw.get_rest_apis), ("apikeys", apigw.get_api_keys),
                                       ("usageplans", apigw.get_usage_plans))
                 for item in listing()["items"]]
        ec2 = boto3.client("ec2", region_name=region)
        found += [(f"arn:aws:ec2:{region}:{account}:security-group/{g['GroupId']}", as_dict(g.get("Tags")))
                  for g in ec2.describe_security_groups()["SecurityGroups"]]
        dynamodb = boto3.client("dynamodb", region_name=region)
        for name in dynamodb.list_tables()["TableNames"]:
            arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
            found.append((arn, as_dict(dynamodb.list_tags_of_resource(ResourceArn=arn).get("Tags"))))
        waf = boto3.client("wafv2", region_name=region)
        for scope in ("CLOUDFRONT", "REGIONAL") if region == "us-east-1" else ("REGIONAL",):
            for key, listing in (("WebACLs", waf.list_web_acls), ("IPSets", waf.list_ip_sets)):
                for item in listing(Scope=scope)[key]:
                    tags = waf.list_tags_for_resource(ResourceARN=item["ARN"])["TagInfoForResource"].get("TagList")
                    found.append((item["ARN"], as_dict(tags)))
        return found

    def answer(call: Call) -> dict:
        result = call.send()
        if not result.get("PaginationToken"):
            filters = call.params.get("TagFilters", [])
            result["ResourceTagMappingList"] += [
                {"ResourceARN": arn, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
                for arn, tags in extra(call) if tags and matches(tags, filters)]
        return result

    return Rule("tagging_api_covers_more_services", source, operation("resourcegroupstaggingapi", "GetResources"),
                answer)


def small_pages(size: int = 2) -> Rule:
    """AWS pages its listings: CloudFront ListDistributions by Marker/NextMarker (MaxItems, default 100),
    API Gateway GetRestApis/GetApiKeys/GetUsagePlans by position (limit, default 25, at most 500), WAFv2
    ListWebACLs/ListIPSets by NextMarker (Limit, at most 100). moto 5.2.5 returns every distribution, REST
    API, key and plan in one page. The answer cuts moto's full listing into pages of ``size``, so that an
    account with more than one page is what the lookups meet."""
    source = ("https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_ListDistributions.html; "
              "https://docs.aws.amazon.com/apigateway/latest/api/API_GetRestApis.html; "
              "https://docs.aws.amazon.com/waf/latest/APIReference/API_ListWebACLs.html")
    # operation -> (token parameter, limit parameter, where the items are, next-token key)
    shapes = {"ListDistributions": ("Marker", "MaxItems", ("DistributionList", "Items"), "NextMarker"),
              "GetRestApis": ("position", "limit", ("items",), "position"),
              "GetApiKeys": ("position", "limit", ("items",), "position"),
              "GetUsagePlans": ("position", "limit", ("items",), "position"),
              "ListWebACLs": ("NextMarker", "Limit", ("WebACLs",), "NextMarker"),
              "ListIPSets": ("NextMarker", "Limit", ("IPSets",), "NextMarker")}

    def answer(call: Call) -> dict:
        token_key, limit_key, where, next_key = shapes[call.operation]
        start = int(call.params.get(token_key) or 0)
        params = {k: v for k, v in call.params.items() if k not in (token_key, limit_key)}
        if call.operation in ("ListWebACLs", "ListIPSets"):
            params["Limit"] = 100  # moto's own page: all of them in these tests
        result = _send_with(call, params)
        holder = result
        for key in where[:-1]:
            holder = holder[key]
        items = holder.get(where[-1]) or []
        holder[where[-1]] = items[start:start + size]
        holder.pop(next_key, None)
        if start + size < len(items):
            holder[next_key] = str(start + size)
            if call.operation == "ListDistributions":
                holder["IsTruncated"] = True
        elif call.operation == "ListDistributions":
            holder["IsTruncated"] = False
        return result

    def applies(call: Call) -> bool:
        return call.operation in shapes and call.service in ("cloudfront", "apigateway", "wafv2")

    return Rule("small_pages", source, applies, answer)


def _send_with(call: Call, params: dict) -> dict:
    """moto's answer to the call with other parameters (the rules' hook is bypassed)."""
    return _ORIGINAL_MAKE_API_CALL(call.client, call.operation, params)


_ORIGINAL_MAKE_API_CALL = BaseClient._make_api_call


CONCURRENT_MODIFICATION_SOURCE = (
    "undocumented; 409 ConflictException 'Unable to complete operation due to concurrent modification. Please try "
    "again later.' on the responses of one method sent at once (hashicorp/terraform#11395, "
    "hashicorp/terraform-provider-aws#3174, #16439) and on other parts of one REST API (#27027); "
    "-parallelism=1 avoids it (#18018); terraform-provider-aws retries it on every REST API operation since "
    "3.24.0 (#776)")


def rest_api_refuses_a_change_while_another_is_under_way(hold: float = 0.05, busy_first: int = 0) -> Rule:
    """API Gateway serializes the changes to one REST API: a change that arrives while another change to the
    same API is under way is refused with 409 ConflictException "Unable to complete operation due to
    concurrent modification. Please try again later." (undocumented; hashicorp/terraform#11395,
    terraform-provider-aws #3174, #16439, #27027; "-parallelism=1 works around it", #18018; retried by the
    provider since 3.24.0, #776). moto takes them all at once. Each change to a REST API (a changing call
    naming ``restApiId``) is held ``hold`` seconds in flight here, as AWS takes its time, so that changes sent
    together do meet; ``busy_first``: the first that many such changes are refused as if someone else's
    change (an operator's, in the console) were under way."""
    in_flight: Counter = Counter()
    refused_as_busy = [0]
    lock = threading.Lock()

    def applies(call: Call) -> bool:
        return call.service == "apigateway" and "restApiId" in call.params and not call.operation.startswith(
            ("Get", "List"))

    def answer(call: Call) -> dict:
        api = call.params["restApiId"]
        with lock:
            busy = in_flight[api] > 0 or refused_as_busy[0] < busy_first
            if refused_as_busy[0] < busy_first:
                refused_as_busy[0] += 1
            if not busy:
                in_flight[api] += 1
        if busy:
            raise aws_error(call.operation, "ConflictException", "Unable to complete operation due to concurrent "
                                                                 "modification. Please try again later.", 409)
        try:
            time.sleep(hold)
            return call.send()
        finally:
            with lock:
                in_flight[api] -= 1

    return Rule("one change to a REST API at a time", CONCURRENT_MODIFICATION_SOURCE, applies, answer)


# --- strict by default: the three generic rules every test on moto runs under ----------------------------------
# tests/conftest.py's ``aws`` fixture switches them on for every test (``strict_rules``); a test opts out of one
# with ``@pytest.mark.lenient("<rule>", reason=...)``. They judge the toolkit's own calls only (``from_toolkit``:
# the clients of provision/clients.py, which carry its user agent), never the test's setup and read-backs.
# docs/aws-vs-emulator.md says how a new feature adds the AWS facts it depends on.

def from_toolkit(call: Call) -> bool:
    """A call made through the toolkit's clients (provision/clients.py), not by the test's own boto3."""
    from provision.clients import USER_AGENT

    return USER_AGENT in (call.client.meta.config.user_agent_extra or "")


class Moto:
    """Reads of moto for the rules themselves (bypassing every rule), with clients made once."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str, region: str, operation: str, **params) -> dict:
        with self._lock:
            if (service, region) not in self._clients:
                self._clients[(service, region)] = boto3.client(service, region_name=region)
            client = self._clients[(service, region)]
        with bypassing():
            return _ORIGINAL_MAKE_API_CALL(client, operation, params)


MOTO = Moto()


# --- 1. eventual consistency ------------------------------------------------------------------------------------

EC2_CONSISTENCY = ("EC2 API reference, 'Eventual consistency in the Amazon EC2 API': a resource just created may "
                   "not be visible yet to a call that names it, which then fails with InvalidGroup.NotFound (a "
                   "security group), ...; retry with backoff")
IAM_CONSISTENCY = ("IAM user guide, troubleshooting, 'Changes that I make are not always immediately visible': IAM "
                   "is eventually consistent; terraform-provider-aws reads a new role with RetryWhenNotFound "
                   "(internal/service/iam/role.go)")
DYNAMODB_CONSISTENCY = ("DynamoDB API reference, DescribeTable: 'If you issue a DescribeTable request immediately "
                        "after a CreateTable request, DynamoDB might return a ResourceNotFoundException'; then "
                        "TableStatus CREATING until ACTIVE")
LAMBDA_STATES = ("Lambda developer guide, 'Lambda function states': a new function is Pending (invocations and "
                 "other actions that operate on it fail) until Active; after an update LastUpdateStatus is "
                 "InProgress, and a second update then fails with ResourceConflictException")
ACM_RECORDS = ("terraform-provider-aws internal/service/acm/certificate.go: after RequestCertificate it waits until "
               "DescribeCertificate's DomainValidationOptions carry their ResourceRecord (ACM adds them seconds "
               "later)")


def _security_groups_named(call: Call) -> set[str]:
    named = set(call.params.get("GroupIds") or [])
    if call.params.get("GroupId"):
        named.add(call.params["GroupId"])
    for permission in call.params.get("IpPermissions") or []:
        named |= {pair["GroupId"] for pair in permission.get("UserIdGroupPairs", []) if pair.get("GroupId")}
    return named


def _function_name(call: Call) -> str:
    return str(call.params.get("FunctionName", "")).rsplit(":function:", 1)[-1].split(":")[0]


class Unsettled:
    """What the next look at something a run just made meets, per (the run's client, its id). A later
    command (new clients) finds it settled: AWS's window is seconds, and a command run minutes later sees
    what the last one made."""

    def __init__(self) -> None:
        self._pending: dict[tuple[Any, str], str] = {}
        self._lock = threading.Lock()

    def mark(self, call: Call, name: str, state: str) -> None:
        with self._lock:
            self._pending[(call.client, name)] = state

    def take(self, call: Call, name: str) -> str | None:
        with self._lock:
            return self._pending.pop((call.client, name), None)

    def peek(self, call: Call, name: str) -> str | None:
        with self._lock:
            return self._pending.get((call.client, name))


def _made(call: Call, unsettled: Unsettled, name_of: Callable[[dict], str], state: str = "unseen") -> dict:
    made = call.send()
    unsettled.mark(call, name_of(made), state)
    return made


def _ec2_unsettled(call: Call, unsettled: Unsettled) -> dict:
    if call.operation == "CreateSecurityGroup":
        return _made(call, unsettled, lambda made: made["GroupId"])
    for group in sorted(_security_groups_named(call)):
        if unsettled.take(call, group):
            raise aws_error(call.operation, "InvalidGroup.NotFound", f"The security group '{group}' does not exist")
    return call.send()


def _iam_unsettled(call: Call, unsettled: Unsettled) -> dict:
    name = call.params.get("RoleName", "")
    if call.operation == "CreateRole":
        return _made(call, unsettled, lambda made: name)
    if unsettled.take(call, name):
        raise aws_error(call.operation, "NoSuchEntity", f"The role with name {name} cannot be found.", 404)
    return call.send()


def _dynamodb_unsettled(call: Call, unsettled: Unsettled) -> dict:
    table = call.params.get("TableName", "")
    if call.operation == "CreateTable":
        return _made(call, unsettled, lambda made: table)
    state = unsettled.take(call, table)
    if state == "unseen":
        unsettled.mark(call, table, "creating")
        raise aws_error(call.operation, "ResourceNotFoundException",
                        f"Requested resource not found: Table: {table} not found")
    found = call.send()
    if state == "creating":
        found = {**found, "Table": {**found["Table"], "TableStatus": "CREATING"}}
    return found


LAMBDA_CHANGES = ("CreateFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "Invoke")


def _lambda_unsettled(call: Call, unsettled: Unsettled) -> dict:
    name = _function_name(call)
    if call.operation in LAMBDA_CHANGES:
        state = unsettled.peek(call, name)
        if state is not None:
            raise aws_error(call.operation, "ResourceConflictException", "The operation cannot be performed at this "
                            f"time. The function is currently in the following state: {state}", 409)
        if call.operation == "Invoke":
            return call.send()
        return _made(call, unsettled, lambda made: name,
                     "Pending" if call.operation == "CreateFunction" else "InProgress")
    state = unsettled.take(call, name)
    found = call.send()
    if state is None:
        return found
    shown = ({"State": "Pending", "StateReasonCode": "Creating", "StateReason": "The function is being created."}
             if state == "Pending" else
             {"LastUpdateStatus": "InProgress", "LastUpdateStatusReasonCode": "",
              "LastUpdateStatusReason": "The function is being updated."})
    if call.operation == "GetFunction":
        return {**found, "Configuration": {**found["Configuration"], **shown}}
    return {**found, **shown}


def _acm_unsettled(call: Call, unsettled: Unsettled) -> dict:
    if call.operation == "RequestCertificate":
        made = call.send()
        if call.params.get("ValidationMethod") == "DNS":
            unsettled.mark(call, made["CertificateArn"], "no records")
        return made
    found = call.send()
    if unsettled.take(call, call.params.get("CertificateArn", "")):
        certificate = found["Certificate"]
        options = [{k: v for k, v in option.items() if k != "ResourceRecord"}
                   for option in certificate.get("DomainValidationOptions", [])]
        found = {**found, "Certificate": {**certificate, "DomainValidationOptions": options}}
    return found


UNSETTLED: dict[str, tuple[Callable[[Call, Unsettled], dict], frozenset[str]]] = {
    "ec2": (_ec2_unsettled, frozenset({"CreateSecurityGroup", "DescribeSecurityGroups", "AuthorizeSecurityGroupIngress",
                                       "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupIngress",
                                       "RevokeSecurityGroupEgress"})),
    "iam": (_iam_unsettled, frozenset({"CreateRole", "GetRole", "GetRolePolicy", "ListAttachedRolePolicies",
                                       "ListRolePolicies", "ListRoleTags"})),
    "dynamodb": (_dynamodb_unsettled, frozenset({"CreateTable", "DescribeTable"})),
    "lambda": (_lambda_unsettled, frozenset({*LAMBDA_CHANGES, "GetFunction", "GetFunctionConfiguration"})),
    "acm": (_acm_unsettled, frozenset({"RequestCertificate", "DescribeCertificate"})),
}


def eventually_consistent() -> Rule:
    """What AWS answers in the seconds after the toolkit made something, which moto answers at once:

    - EC2: a security group just made (CreateSecurityGroup) is not found (InvalidGroup.NotFound) by the first
      call naming it by id (DescribeSecurityGroups GroupIds, Authorize/Revoke on it or naming it in a rule);
    - IAM: a role just made is not found (NoSuchEntity) by the first read naming it;
    - DynamoDB: a table just made is not found (ResourceNotFoundException) by the first DescribeTable, then
      CREATING for the next one;
    - Lambda: a function just made is Pending at its first read (and an update or an invocation before that
      read is refused, ResourceConflictException); after an update, LastUpdateStatus is InProgress at the
      first read (and a second update before that read is refused);
    - ACM: a DNS-validated certificate just requested is described without its validation records at first.

    Within the command that made it (``Unsettled``). A service's facts are one entry of ``UNSETTLED``.
    """
    unsettled = Unsettled()

    def applies(call: Call) -> bool:
        return call.service in UNSETTLED and call.operation in UNSETTLED[call.service][1] and from_toolkit(call)

    return Rule("eventual_consistency", "; ".join((EC2_CONSISTENCY, IAM_CONSISTENCY, DYNAMODB_CONSISTENCY,
                                                  LAMBDA_STATES, ACM_RECORDS)), applies,
                lambda call: UNSETTLED[call.service][0](call, unsettled))


# --- 2. throttling at AWS's documented rates --------------------------------------------------------------------

@dataclass(frozen=True)
class Rate:
    """A documented request rate: a token bucket of ``burst`` calls refilled at ``per_second``, per account and
    region, for each operation ``applies`` picks (``shared``: one bucket for all of them), refused with the
    service's own error."""
    name: str
    applies: Callable[[str, str], bool]       # (service, operation) -> under this rate?
    burst: float
    per_second: float
    code: str
    status: int
    message: str
    source: str
    retry_after: bool = False                 # API Gateway says when to come back
    shared: bool = False


def _ses_once_per_second() -> frozenset[str]:
    """The SES (v1) operations whose API reference says 'You can execute this operation no more than once per
    second', read from botocore's copy of that reference."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("ses")
    return frozenset(op for op in model.operation_names
                     if "no more than once per second" in (model.operation_model(op).documentation or ""))


APIGW_PER_OPERATION = {  # seconds per call, or calls per second (Amazon API Gateway quotas, fixed)
    "DeleteRestApi": (1, 1 / 30), "UpdateUsagePlan": (1, 1 / 20), "UpdateAccount": (1, 1 / 20),
    "CreateDeployment": (1, 1 / 5), "CreateRestApi": (1, 1 / 3), "PutRestApi": (1, 1.0),
    "CreateApiKey": (5, 5.0), "DeleteApiKey": (5, 5.0), "CreateResource": (5, 5.0), "DeleteResource": (5, 5.0),
    "GetResources": (5, 2.5),
}
EC2_SOURCE = ("EC2 API reference, 'Request throttling for the Amazon EC2 API': token buckets per account and "
              "region, RequestLimitExceeded; mutating actions 50 (refill 5/s), non-mutating 100 (refill 20/s)")


def documented_rates() -> tuple[Rate, ...]:
    ses_ops = _ses_once_per_second()
    rates = [
        Rate("WAF: one call per second per Create, Put or Update action",
             lambda service, op: service == "wafv2" and op.startswith(("Create", "Put", "Update")), 1, 1.0,
             "ThrottlingException", 400, "Rate exceeded",
             "AWS WAF quotas ('a maximum of one request per second, per account, per AWS Region for API calls to any "
             "individual Create, Put, or Update action', Security Automations for AWS WAF, Quotas); 'ThrottlingException: "
             "Rate exceeded' (aws-solutions/aws-waf-security-automations#152)"),
        Rate("SES: one call per second per receipt-rule (and identity) operation",
             lambda service, op: service == "ses" and op in ses_ops, 1, 1.0, "Throttling", 400, "Rate exceeded",
             "Amazon SES API reference, e.g. DescribeReceiptRuleSet: 'You can execute this operation no more than "
             "once per second'"),
        *(Rate(f"API Gateway {op}", lambda service, o, op=op: service == "apigateway" and o == op, burst, rate,
               "TooManyRequestsException", 429, "Too Many Requests", API_GATEWAY_QUOTAS_SOURCE, retry_after=True)
          for op, (burst, rate) in APIGW_PER_OPERATION.items()),
        Rate("API Gateway: all control-plane calls, 10 per second, bursts of 40",
             lambda service, op: service == "apigateway", 40, 10.0, "TooManyRequestsException", 429,
             "Too Many Requests", API_GATEWAY_QUOTAS_SOURCE + " ('Total operations')", retry_after=True, shared=True),
        Rate("EC2: mutating actions", lambda service, op: service == "ec2" and not op.startswith("Describe"), 50, 5.0,
             "RequestLimitExceeded", 503, "Request limit exceeded.", EC2_SOURCE),
        Rate("EC2: non-mutating actions", lambda service, op: service == "ec2" and op.startswith("Describe"), 100, 20.0,
             "RequestLimitExceeded", 503, "Request limit exceeded.", EC2_SOURCE),
    ]
    return tuple(rates)


def _throttle_answer(client, code: str, message: str, status: int, retry_after: int | None):
    """The raw HTTP answer AWS sends for a throttle, in the service's protocol, for botocore to parse (and
    the toolkit's retry hook to see)."""
    from tests.support import response

    protocol = client.meta.service_model.protocol
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    if protocol == "rest-json":
        body = {"message": message, **({"retryAfterSeconds": str(retry_after)} if retry_after is not None else {})}
        return response(status, json.dumps(body), {**headers, "x-amzn-ErrorType": code})
    if protocol == "json":
        return response(status, json.dumps({"__type": code, "message": message}), headers)
    if protocol == "ec2":
        return response(status, f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
                                 "</Errors><RequestID>throttled</RequestID></Response>", headers)
    return response(status, f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}"
                            "</Message></Error><RequestId>throttled</RequestId></ErrorResponse>", headers)


def throttled_at_documented_rates(now: Callable[[], float] = TEST_TIME.now) -> Rule:
    """Every documented rate at once (``documented_rates``): a request that finds its bucket (or a shared one)
    empty is refused with the service's throttling error, as an HTTP answer below botocore's parser, so that
    botocore's retry hook (the toolkit's) meets it as it meets AWS's; API Gateway's carries ``Retry-After``.
    Each attempt, retries included, takes a token. Time is ``TEST_TIME``: the real clock plus the sleeps the
    toolkit was given. moto has no rate at all."""
    rates = documented_rates()
    buckets: dict[tuple, tuple[float, float]] = {}  # key -> (tokens, at)
    lock = threading.Lock()
    hooked: set[int] = set()

    def refusal(client, operation_name: str):
        service, region, at = client.meta.service_model.service_name, client.meta.region_name, now()
        with lock:
            keys = [(rate, (rate.name, region) if rate.shared else (rate.name, region, operation_name))
                    for rate in rates if rate.applies(service, operation_name)]
            levels = {}
            for rate, bucket in keys:
                tokens, then = buckets.get(bucket, (rate.burst, at))
                levels[bucket] = min(rate.burst, tokens + (at - then) * rate.per_second)
            empty = next(((rate, bucket) for rate, bucket in keys if levels[bucket] < 1), None)
            if empty is None:
                for rate, bucket in keys:
                    buckets[bucket] = (levels[bucket] - 1, at)
                return None
        rate, bucket = empty
        wait = math.ceil((1 - levels[bucket]) / rate.per_second)
        return _throttle_answer(client, rate.code, rate.message, rate.status, wait if rate.retry_after else None)

    def refused(request, answer):
        if answer is not None:  # moto must not act on it (``_unless_refused``)
            setattr(request, REFUSED_BELOW_PARSER, True)
        return answer

    def answer(call: Call) -> dict:
        client = call.client
        if id(client) not in hooked:  # every request the toolkit's client sends from now on, retries included
            hooked.add(id(client))
            client.meta.events.register_first("before-send", lambda event_name, request, **_: refused(
                request, refusal(client, event_name.rsplit(".", 1)[-1])))
        return call.send()

    def applies(call: Call) -> bool:
        return any(rate.applies(call.service, call.operation) for rate in rates) and from_toolkit(call)

    return Rule("throttling", "; ".join(dict.fromkeys(rate.source for rate in rates)), applies, answer)


# --- 3. the operator's policy enforced ---------------------------------------------------------------------------

ACCOUNT = "123456789012"  # moto's


@dataclass(frozen=True)
class Implied:
    """An authorization AWS checks for a call beyond the call's own action, when ``when`` holds for its
    parameters (tags given at creation, a role passed, ...): ``actions`` on ``resources(call)``."""
    service: str
    operations: tuple[str, ...]
    when: Callable[[dict], bool]
    actions: tuple[str, ...]
    source: str
    resources: Callable[["Call", str], list[str]] | None = None  # None: the call's own resources
    context: Callable[["Call"], dict] | None = None


def _has(key: str) -> Callable[[dict], bool]:
    return lambda params: bool(params.get(key))


def _passed_role(call: Call) -> list[str]:
    if call.service == "apigateway":
        return [op["value"] for op in call.params.get("patchOperations", []) if op.get("path") == "/cloudwatchRoleArn"]
    return [call.params["Role"]]


IMPLIED: tuple[Implied, ...] = (
    Implied("dynamodb", ("CreateTable",), _has("Tags"), ("dynamodb:TagResource",),
            "hashicorp/terraform-provider-aws#10943: CreateTable with Tags is refused without dynamodb:TagResource "
            "(DynamoDB developer guide, 'Tagging resources': tag on create needs dynamodb:TagResource)"),
    Implied("lambda", ("CreateFunction",), _has("Tags"), ("lambda:TagResource",),
            "Lambda developer guide, 'Using tags on Lambda functions' (tags on create need lambda:TagResource)"),
    Implied("lambda", ("CreateFunction", "UpdateFunctionConfiguration"), _has("Role"), ("iam:PassRole",),
            "Lambda developer guide, execution role: the caller needs iam:PassRole on the role",
            resources=lambda call, action: _passed_role(call),
            context=lambda call: {"iam:PassedToService": "lambda.amazonaws.com"}),
    Implied("lambda", ("CreateFunction", "UpdateFunctionConfiguration"), _has("VpcConfig"),
            ("ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"),
            "Lambda developer guide, 'Giving Lambda functions access to resources in a VPC': the user needs these "
            "to configure a VPC", resources=lambda call, action: ["*"]),
    Implied("apigateway", ("UpdateAccount",),
            lambda params: any(op.get("path") == "/cloudwatchRoleArn" and op.get("value")
                               for op in params.get("patchOperations", [])), ("iam:PassRole",),
            "API Gateway developer guide, CloudWatch logging: setting cloudwatchRoleArn passes the role",
            resources=lambda call, action: _passed_role(call),
            context=lambda call: {"iam:PassedToService": "apigateway.amazonaws.com"}),
    Implied("apigateway", ("CreateRestApi", "CreateApiKey", "CreateUsagePlan", "CreateStage"), _has("tags"),
            ("apigateway:PUT",), "API Gateway authorizes tags given at creation as apigateway:PUT on /tags/<ARN> "
            "(mattclay/aws-terminator#284)",
            resources=lambda call, action: [f"arn:aws:apigateway:{call.client.meta.region_name}::/tags/*"]),
    Implied("apigateway", ("TagResource",), lambda params: True, ("apigateway:PATCH",),
            "TagResource is also authorized as apigateway:PATCH on the tagged resource (iann0036/iam-dataset#39)",
            resources=lambda call, action: [call.params["resourceArn"]]),
    Implied("iam", ("CreateRole",), _has("Tags"), ("iam:TagRole",),
            "IAM user guide, 'Tagging IAM roles': creating a role with tags needs iam:TagRole"),
    Implied("sns", ("CreateTopic",), _has("Tags"), ("sns:TagResource",),
            "SNS API reference, CreateTopic: tagging on creation needs sns:CreateTopic and sns:TagResource"),
    Implied("events", ("PutRule",), _has("Tags"), ("events:TagResource",),
            "EventBridge API reference, PutRule: with Tags, events:TagResource is needed"),
    Implied("ec2", ("CreateSecurityGroup",), _has("TagSpecifications"), ("ec2:CreateTags",),
            "EC2 user guide, 'Grant permission to tag resources during creation' (ec2:CreateAction)",
            resources=lambda call, action: [_ec2_arn(call, "security-group/*")],
            context=lambda call: {"ec2:CreateAction": call.operation}),
    Implied("ec2", ("AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress"), _has("TagSpecifications"),
            ("ec2:CreateTags",), "Service Authorization Reference, EC2: a rule tagged on creation is a "
            "security-group-rule, tagged with ec2:CreateTags (ec2:CreateAction)",
            resources=lambda call, action: [_ec2_arn(call, "security-group-rule/*")],
            context=lambda call: {"ec2:CreateAction": call.operation}),
    Implied("logs", ("CreateLogGroup",), _has("tags"), ("logs:TagResource", "logs:TagLogGroup"),
            "CloudWatch Logs API reference, CreateLogGroup: tagging needs logs:TagResource and logs:TagLogGroup"),
    Implied("logs", ("PutDeliverySource", "PutDeliveryDestination", "CreateDelivery"), _has("tags"),
            ("logs:TagResource",), "CloudWatch Logs API reference: tags given at creation need logs:TagResource"),
    Implied("logs", ("PutDeliverySource",), lambda params: ":cloudfront::" in params.get("resourceArn", ""),
            ("cloudfront:AllowVendedLogDeliveryForResource",),
            "CloudFront developer guide, standard logging (v2): the delivery source needs "
            "cloudfront:AllowVendedLogDeliveryForResource on the distribution",
            resources=lambda call, action: [call.params["resourceArn"]]),
    Implied("wafv2", ("CreateIPSet", "CreateWebACL"), _has("Tags"), ("wafv2:TagResource",),
            "AWS WAF developer guide: tags given at creation need wafv2:TagResource"),
    Implied("wafv2", ("PutLoggingConfiguration",),
            lambda params: any(":logs:" in d for d in params["LoggingConfiguration"]["LogDestinationConfigs"]),
            ("logs:CreateLogDelivery", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
             "logs:DescribeLogGroups"),
            "AWS WAF developer guide, logging to CloudWatch Logs: permissions required",
            resources=lambda call, action: ["*"]),
    Implied("acm", ("RequestCertificate",), _has("Tags"), ("acm:AddTagsToCertificate",),
            "ACM user guide, tagging: RequestCertificate with Tags needs acm:AddTagsToCertificate",
            resources=lambda call, action: [f"arn:aws:acm:{call.client.meta.region_name}:{ACCOUNT}:certificate/*"]),
    Implied("cloudfront", ("CreateDistributionWithTags",), lambda params: True, ("cloudfront:TagResource",),
            "CloudFront API reference, CreateDistributionWithTags: also authorized as cloudfront:TagResource"),
)


def _ec2_arn(call: Call, resource: str) -> str:
    return f"arn:aws:ec2:{call.client.meta.region_name}:{ACCOUNT}:{resource}"


def _apigateway_arn(call: Call) -> str:
    """arn:aws:apigateway:<region>::<the request's path>, from botocore's model and the call's parameters."""
    model = call.client.meta.service_model.operation_model(call.operation)
    path = model.http["requestUri"].split("?")[0].removeprefix("/v2")
    for name, member in model.input_shape.members.items() if model.input_shape else ():
        if member.serialization.get("location") == "uri" and name in call.params:
            where = member.serialization.get("name", name)
            path = path.replace("{" + where + "}", quote(str(call.params[name]), safe=""))
            path = path.replace("{" + where + "+}", str(call.params[name]))
    return f"arn:aws:apigateway:{call.client.meta.region_name}::{path}"


def _lambda_resources(call: Call, arn: str) -> list[str]:
    if call.operation == "TagResource":
        return [call.params["Resource"]]
    return [f"arn:aws:lambda{arn}function:{_function_name(call)}"] if call.params.get("FunctionName") else ["*"]


def _iam_resources(call: Call, arn: str) -> list[str]:
    """A role's calls on the role (AttachRolePolicy's PolicyArn is its iam:PolicyARN key, not its resource); a
    managed policy's (the roles' permissions boundary) on the policy (Service Authorization Reference, IAM:
    CreatePolicy, GetPolicy, GetPolicyVersion, TagPolicy take the policy resource type)."""
    p = call.params
    if call.operation == "SimulatePrincipalPolicy":
        return [p["PolicySourceArn"]]
    if p.get("RoleName"):
        return [f"arn:aws:iam::{ACCOUNT}:role/{p['RoleName']}"]
    if p.get("PolicyArn"):
        return [p["PolicyArn"]]
    if call.operation == "CreatePolicy":
        return [f"arn:aws:iam::{ACCOUNT}:policy{p.get('Path', '/')}{p['PolicyName']}"]
    return ["*"]


def _ec2_resources(call: Call, arn: str) -> list[str]:
    p, op = call.params, call.operation
    if op == "CreateSecurityGroup":
        return [_ec2_arn(call, "security-group/*"), _ec2_arn(call, f"vpc/{p['VpcId']}")]
    if op.startswith("Describe"):
        return ["*"]
    found = [_ec2_arn(call, f"security-group/{p['GroupId']}")]
    if op == "AuthorizeSecurityGroupIngress" and p.get("TagSpecifications"):
        found.append(_ec2_arn(call, "security-group-rule/*"))
    return found


LOGS_NAMED = {"DeliverySource": "delivery-source", "DeliveryDestination": "delivery-destination"}


def _logs_resources(call: Call, arn: str) -> list[str]:
    p, op = call.params, call.operation
    if p.get("logGroupName"):
        return [f"arn:aws:logs{arn}log-group:{p['logGroupName']}"]
    if p.get("resourceArn") and op != "PutDeliverySource":
        return [p["resourceArn"].removesuffix(":*")]
    for suffix, kind in LOGS_NAMED.items():
        if op.endswith(suffix):
            return [f"arn:aws:logs{arn}{kind}:{p['name']}"]
    if op == "CreateDelivery":
        return [f"arn:aws:logs{arn}delivery-source:{p['deliverySourceName']}", p["deliveryDestinationArn"],
                f"arn:aws:logs{arn}delivery:*"]
    if op == "DeleteDelivery":
        return [f"arn:aws:logs{arn}delivery:{p['id']}"]
    return ["*"]


def _wafv2_resources(call: Call, arn: str) -> list[str]:
    p = call.params
    given = p.get("ResourceARN") or p.get("ResourceArn") or (p.get("LoggingConfiguration") or {}).get("ResourceArn")
    if given:
        return [given]
    if not p.get("Name"):
        return ["*"]
    kind = "ipset" if call.operation.endswith("IPSet") else "webacl"
    scope = "global" if p.get("Scope") == "CLOUDFRONT" else "regional"
    return [f"arn:aws:wafv2{arn}{scope}/{kind}/{p['Name']}/{p.get('Id', '*')}"]


def _cloudfront_resources(call: Call, arn: str) -> list[str]:
    """A distribution's calls on the distribution, a cache policy's on the cache policy (Service Authorization
    Reference, CloudFront: arn:aws:cloudfront::<account>:cache-policy/<id>; ListCachePolicies on none)."""
    if call.params.get("Resource"):
        return [call.params["Resource"]]
    if call.operation.endswith("CachePolicy"):
        return [f"arn:aws:cloudfront::{ACCOUNT}:cache-policy/{call.params.get('Id', '*')}"]
    if call.operation == "ListCachePolicies":
        return ["*"]
    if call.params.get("Id"):
        return [f"arn:aws:cloudfront::{ACCOUNT}:distribution/{call.params['Id']}"]
    return [f"arn:aws:cloudfront::{ACCOUNT}:distribution/*"] if call.operation.startswith("Create") else ["*"]


def _sns_resources(call: Call, arn: str) -> list[str]:
    given = call.params.get("TopicArn") or call.params.get("ResourceArn")
    if given:
        return [given]
    return [f"arn:aws:sns{arn}{call.params['Name']}"] if call.operation == "CreateTopic" else ["*"]


def _events_resources(call: Call, arn: str) -> list[str]:
    if call.params.get("ResourceARN"):
        return [call.params["ResourceARN"]]
    rule = call.params.get("Name") or call.params.get("Rule")
    return [f"arn:aws:events{arn}rule/{rule}"] if rule else ["*"]


def _s3_resources(call: Call, arn: str) -> list[str]:
    p = call.params
    if not p.get("Bucket"):
        return ["*"]
    if call.operation == "DeleteObjects":
        return [f"arn:aws:s3:::{p['Bucket']}/{o['Key']}" for o in p["Delete"]["Objects"]]
    return [f"arn:aws:s3:::{p['Bucket']}" + (f"/{p['Key']}" if p.get("Key") else "")]


def _route53_resources(call: Call, arn: str) -> list[str]:
    zone = str(call.params.get("HostedZoneId", "")).removeprefix("/hostedzone/")
    return [f"arn:aws:route53:::hostedzone/{zone}"] if zone else ["*"]


def _rds_proxy_arn(call: Call, arn: str) -> str:
    """The named proxy's ARN, which ends in AWS's prx- id, not its name (RDS user guide, 'Amazon Resource Names
    (ARNs) in Amazon RDS': arn:aws:rds:<region>:<account>:db-proxy:<id>); one not made yet: any proxy."""
    name = call.params.get("DBProxyName")
    if name and call.operation != "CreateDBProxy":
        try:
            found = MOTO("rds", call.client.meta.region_name, "DescribeDBProxies", DBProxyName=name)
            return found["DBProxies"][0]["DBProxyArn"]
        except Exception:  # no such proxy: RDS answers DBProxyNotFoundFault, for any proxy the caller may read
            pass
    return f"arn:aws:rds{arn}db-proxy:*"


def _rds_resources(call: Call, arn: str) -> list[str]:
    """Service Authorization Reference, RDS: CreateDBProxy, DescribeDBProxies and DeleteDBProxy on db-proxy;
    DescribeDBProxyTargets on db-proxy and target-group; RegisterDBProxyTargets on target-group (the proxy's
    default group, whose prx-tg- id is AWS's); ListTagsForResource on the ARN it names."""
    p, op = call.params, call.operation
    if p.get("ResourceName"):
        return [p["ResourceName"]]
    if op == "RegisterDBProxyTargets":
        return [f"arn:aws:rds{arn}target-group:*"]
    if op == "DescribeDBProxyTargets":
        return [_rds_proxy_arn(call, arn), f"arn:aws:rds{arn}target-group:*"]
    if "DBProx" in op:
        return [_rds_proxy_arn(call, arn)]
    if call.params.get("DBInstanceIdentifier"):
        return [f"arn:aws:rds{arn}db:{call.params['DBInstanceIdentifier']}"]
    if call.params.get("DBClusterIdentifier"):
        return [f"arn:aws:rds{arn}cluster:{call.params['DBClusterIdentifier']}"]
    return [f"arn:aws:rds{arn}{'cluster' if call.operation == 'DescribeDBClusters' else 'db'}:*"]


def _cloudwatch_resources(call: Call, arn: str) -> list[str]:
    """Service Authorization Reference, CloudWatch: DescribeAlarms, PutMetricAlarm and DeleteAlarms on each alarm
    (arn:aws:cloudwatch:<region>:<account>:alarm:<name>), ListTagsForResource on the ARN it names."""
    p = call.params
    if p.get("ResourceARN"):
        return [p["ResourceARN"]]
    names = p.get("AlarmNames") or ([p["AlarmName"]] if p.get("AlarmName") else [])
    return [f"arn:aws:cloudwatch{arn}alarm:{name}" for name in names] or ["*"]


RESOURCES: dict[str, Callable[[Call, str], list[str]]] = {
    "cloudwatch": _cloudwatch_resources,
    "apigateway": lambda call, arn: [_apigateway_arn(call)], "apigatewayv2": lambda call, arn: [_apigateway_arn(call)],
    "lambda": _lambda_resources, "iam": _iam_resources, "ec2": _ec2_resources, "logs": _logs_resources,
    "wafv2": _wafv2_resources, "cloudfront": _cloudfront_resources, "sns": _sns_resources,
    "events": _events_resources, "s3": _s3_resources, "route53": _route53_resources, "rds": _rds_resources,
    "dynamodb": lambda call, arn: [f"arn:aws:dynamodb{arn}table/{call.params['TableName']}"],
    "acm": lambda call, arn: [call.params["CertificateArn"]] if call.params.get("CertificateArn") else ["*"],
}


# The services whose calls the toolkit makes on no resource AWS can name (their actions take "*").
ON_NO_RESOURCE = {"ses", "sesv2", "sts", "resourcegroupstaggingapi", "pricing"}


def own_resources(call: Call) -> list[str]:
    """The resources AWS authorizes the call's own action on (Service Authorization Reference), from its
    parameters; ["*"] for calls on no resource (listings, account settings) and services on none (SES). A
    service in neither fails the test, so that a new one gets its entry rather than "*" (which a policy
    naming its ARNs would refuse, as if the policy were wrong)."""
    found = RESOURCES.get(call.service)
    if found is None and call.service not in ON_NO_RESOURCE:
        raise AssertionError(f"tests/aws_rules.py knows no resources of {call.service}'s calls: add to RESOURCES how "
                             f"its calls name them (the Service Authorization Reference's resource types), or the "
                             f"service to ON_NO_RESOURCE")
    return found(call, f":{call.client.meta.region_name}:{ACCOUNT}:") if found else ["*"]


def _on_objects(action: str, resources: list[str]) -> list[str]:
    """An S3 object action named for a call on the bucket (provision/iam/permissions.py grants s3:PutObject with
    PutBucketPolicy, which can give it) is checked on the bucket's objects."""
    if action.startswith("s3:") and "Object" in action:
        return [r if "/" in r.removeprefix("arn:aws:s3:::") else f"{r}/*" for r in resources]
    return resources


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _each(given) -> list[str]:
    return [str(g) for g in _as_list(given)]


# IAM's condition operators the generated policy uses: (wanted values, the context's value or None) -> holds
CONDITION_OPERATORS = {
    "StringEquals": lambda wanted, given: given is not None and any(g in wanted for g in _each(given)),
    "StringLike": lambda wanted, given: given is not None and any(fnmatch.fnmatchcase(g, w)
                                                                  for g in _each(given) for w in wanted),
    "ForAllValues:StringEquals": lambda wanted, given: all(g in wanted for g in _each(given or [])),
    "ForAnyValue:StringEquals": lambda wanted, given: any(g in wanted for g in _each(given or [])),
    "StringNotEquals": lambda wanted, given: given is None or all(g not in wanted for g in _each(given)),
    "Null": lambda wanted, given: (given is None) == (str(wanted[0]).lower() == "true"),
    "Bool": lambda wanted, given: given is not None and str(given).lower() == str(wanted[0]).lower(),
}
CONDITION_OPERATORS |= {"ArnEquals": CONDITION_OPERATORS["StringEquals"], "ArnLike": CONDITION_OPERATORS["StringLike"],
                        "ArnNotEquals": CONDITION_OPERATORS["StringNotEquals"]}


def _condition_holds(condition: dict, context: dict) -> bool:
    """Every operator's every key holds; an operator not known here fails the test, so that a new one is added
    (with IAM's meaning) rather than passed."""
    for operator, tests in condition.items():
        if operator not in CONDITION_OPERATORS:
            raise AssertionError(f"condition operator {operator} is not known to tests/aws_rules.py: add it")
        holds = CONDITION_OPERATORS[operator]
        if not all(holds([str(w) for w in _as_list(wanted)], context.get(key)) for key, wanted in tests.items()):
            return False
    return True


def allowed(document: dict, action: str, resource: str, context: dict) -> bool:
    """IAM's evaluation of one identity policy: an explicit deny wins, then any allow."""
    decision = False
    for statement in _as_list(document["Statement"]):
        actions = [a.lower() for a in _as_list(statement.get("Action", []))]
        if not any(fnmatch.fnmatchcase(action.lower(), a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) or r == "*" for r in _as_list(statement.get("Resource", []))):
            continue
        if not _condition_holds(statement.get("Condition", {}), context):
            continue
        if statement["Effect"] == "Deny":
            return False
        decision = True
    return decision


ACCESS_DENIED = {"ec2": ("UnauthorizedOperation", 403), "sns": ("AuthorizationError", 403),
                 "iam": ("AccessDenied", 403), "sts": ("AccessDenied", 403), "ses": ("AccessDenied", 403),
                 "rds": ("AccessDenied", 403), "cloudfront": ("AccessDenied", 403), "s3": ("AccessDenied", 403),
                 "route53": ("AccessDenied", 403)}  # the JSON services: AccessDeniedException, 400 or 403


class Policies:
    """The operator's policy of every config the test loaded (``rds-edge-api policy``'s document: provision/
    policy.py), each made once the first time a toolkit call is judged, with the database's network as the
    deploy finds it."""

    def __init__(self) -> None:
        self.configs: list = []
        self._documents: dict[int, dict] = {}
        self._lock = threading.Lock()

    def loaded(self, config) -> None:
        with self._lock:
            if all(config is not known for known in self.configs):
                self.configs.append(config)

    def documents(self) -> list[dict]:
        with self._lock:
            configs = list(self.configs)
        return [self._document(config) for config in configs]

    def _document(self, config) -> dict:
        if id(config) not in self._documents:
            from provision.iam import policy

            self._documents[id(config)] = policy.document(config, ACCOUNT, self._network(config))
        return self._documents[id(config)]

    @staticmethod
    def _network(config):
        """The database's VPC and first security group, as provision/aws/database.py reads them (from moto's
        own records: a test may hold moto to IAM, and these reads are not the operator's); none yet: grants
        naming them match nothing."""
        from moto.rds.models import rds_backends

        from provision.iam import policy

        try:
            [db] = rds_backends[ACCOUNT][config.stack.region].describe_db_instances(
                db_instance_identifier=config.database.instance_id)
            return policy.Network(db.db_subnet_group.vpc_id, db.vpc_security_group_ids[0])
        except Exception:
            return policy.Network("vpc-unknown", "sg-unknown")


def _iam_context(call: Call) -> dict:
    from moto.iam.models import iam_backends

    found: dict = {}
    boundary = call.params.get("PermissionsBoundary")
    if call.params.get("PolicyArn"):
        found["iam:PolicyARN"] = call.params["PolicyArn"]
    if call.params.get("RoleName") and call.operation not in ("CreateRole", "PutRolePermissionsBoundary"):
        try:
            boundary = iam_backends[ACCOUNT]["global"].get_role(call.params["RoleName"]).permissions_boundary_arn
        except Exception:  # no such role: IAM answers NoSuchEntity
            boundary = None
    if boundary:
        found["iam:PermissionsBoundary"] = boundary
    return found


def _dynamodb_context(call: Call) -> dict:
    item = call.params.get("Key") or call.params.get("Item") or {}
    return {"dynamodb:LeadingKeys": [item["stack"]["S"]]} if "stack" in item else {}


def _ec2_context(call: Call) -> dict | None:
    from moto.ec2.models import ec2_backends

    if not call.params.get("GroupId") or call.operation.startswith("Describe"):
        return {}
    group = ec2_backends[ACCOUNT][call.client.meta.region_name].get_security_group_from_id(call.params["GroupId"])
    if group is None:
        return None
    return {f"aws:ResourceTag/{t['key']}": t["value"] for t in group.get_tags()}


def condition_context(call: Call) -> dict | None:
    """The condition keys AWS sets for the call, read from moto's records (a test may hold moto to IAM, and
    these reads are not the operator's); None when the security group the call names does not exist (EC2
    then answers InvalidGroup.NotFound, as moto does)."""
    reader = {"iam": _iam_context, "dynamodb": _dynamodb_context, "ec2": _ec2_context}.get(call.service)
    return reader(call) if reader else {}


def _checked_for(call: Call) -> list[tuple[str, str, dict]]:
    """(action, resource, condition context) AWS checks for the call: its own action(s) on what it names, and
    what IMPLIED adds for the parameters given."""
    from provision.iam import permissions

    http = call.client.meta.service_model.operation_model(call.operation).http.get("method", "")
    base = condition_context(call)
    if base is None:
        return []
    checks = [(action, resource, base)
              for action in permissions.own_actions(call.service, call.operation, lambda op: http)
              for resource in _on_objects(action, own_resources(call))]
    for implied in IMPLIED:
        if implied.service != call.service or call.operation not in implied.operations or not implied.when(call.params):
            continue
        extra = {**base, **(implied.context(call) if implied.context else {})}
        for action in implied.actions:
            resources = implied.resources(call, action) if implied.resources else own_resources(call)
            checks += [(action, resource, extra) for resource in resources]
    return checks


def operator_policy_enforced(policies: Policies) -> Rule:
    """Every toolkit call is authorized as IAM would authorize it for an operator holding only the policy that
    ``rds-edge-api policy`` prints for the test's config (any of them, when the test loaded several): the
    call's own action on the resources it names (``own_resources``), and what AWS checks beyond it for the
    parameters given (``IMPLIED``: tags on create, a role passed, ...), with the condition keys AWS sets
    (iam:PassedToService, ec2:CreateAction, dynamodb:LeadingKeys, the group's aws:ResourceTag/*, a role's
    iam:PermissionsBoundary). A call the policy does not allow is refused as AWS refuses it. GetFunction
    without lambda:ListTags returns no tags (Lambda API reference, GetFunction). moto checks nothing unless
    told to, and then only the action against "*"."""
    from provision.iam import permissions

    def answer(call: Call) -> dict:
        documents = policies.documents()
        for action, resource, ctx in _checked_for(call):
            if not any(allowed(doc, action, resource, ctx) for doc in documents):
                code, status = ACCESS_DENIED.get(call.service, ("AccessDeniedException", 403))
                raise aws_error(call.operation, code, f"User: arn:aws:iam::{ACCOUNT}:user/operator is not "
                                f"authorized to perform: {action} on resource: {resource} because no identity-based "
                                "policy allows the action", status)
        found = call.send()
        if call.service == "lambda" and call.operation == "GetFunction" and "Tags" in found:
            function = own_resources(call)[0]
            if not any(allowed(doc, "lambda:ListTags", function, {}) for doc in documents):
                found = {k: v for k, v in found.items() if k != "Tags"}
        return found

    def applies(call: Call) -> bool:
        return (from_toolkit(call) and (call.service, call.operation) not in permissions.NO_PERMISSION_NEEDED
                and bool(policies.configs))

    return Rule("operator_policy", "provision/iam/policy.py (what `rds-edge-api policy` prints); IAM's evaluation "
                "logic; each implied authorization's source in IMPLIED", applies, answer)


STRICT = ("operator_policy", "throttling", "eventual_consistency")


def strict_rules(policies: Policies, leave_out: set[str] = frozenset()) -> list[Rule]:
    """The generic rules, in the order AWS applies them: authorization, then rate, then what the service
    has made visible so far."""
    made = {"operator_policy": lambda: operator_policy_enforced(policies),
            "throttling": throttled_at_documented_rates, "eventual_consistency": eventually_consistent}
    return [made[name]() for name in STRICT if name not in leave_out]


# --- Mail and IAM (issue 24: the mailiam items) ------------------------------------------------------------

DKIM_IDENTITY_SOURCE = ("SES API reference, GetIdentityVerificationAttributes ('the verification token for a domain "
                        "identity' verified by TXT) and SES developer guide, 'Creating a domain identity' (the SES v2 "
                        "console and CreateEmailIdentity verify a domain by Easy DKIM, with no TXT token)")


def dkim_identities_have_no_token() -> Rule:
    """A domain identity made by SES v2 (CreateEmailIdentity, as the console does) is verified by DKIM: SES v1's
    GetIdentityVerificationAttributes lists it with its VerificationStatus and no VerificationToken. moto returns
    one fixed token for every identity, however it was made."""
    dkim: set[str] = set()

    def answer(call: Call) -> dict:
        found = call.send()
        if call.operation == "CreateEmailIdentity":
            dkim.add(call.params["EmailIdentity"].lower())
        elif call.operation == "GetIdentityVerificationAttributes":
            found["VerificationAttributes"] = {
                name: ({k: v for k, v in entry.items() if k != "VerificationToken"} if name.lower() in dkim else entry)
                for name, entry in found["VerificationAttributes"].items()}
        elif call.operation in ("DeleteIdentity", "DeleteEmailIdentity"):
            dkim.discard((call.params.get("Identity") or call.params.get("EmailIdentity") or "").lower())
        return found

    def applies(call: Call) -> bool:
        return ((call.service == "sesv2" and call.operation in ("CreateEmailIdentity", "DeleteEmailIdentity"))
                or (call.service == "ses" and call.operation in ("GetIdentityVerificationAttributes",
                                                                 "DeleteIdentity")))

    return Rule("an identity verified by DKIM has no verification token", DKIM_IDENTITY_SOURCE, applies, answer)


DELIVERY_LOG_POLICY = "AWSLogDeliveryWrite20150319"
DELIVERY_LOG_POLICY_SOURCE = ("CloudWatch Logs user guide, 'Logs sent to CloudWatch Logs' (V2 log delivery: the log "
                              "group's resource policy is created, or the group appended to it, by the first "
                              "delivery); CloudWatch Logs API reference, PutResourcePolicy ('up to 10 resource "
                              "policies per AWS Region', LimitExceededException); a policy holds at most 5,120 "
                              "characters (user guide, 'Enabling logging from AWS services')")


def log_delivery_resource_policy() -> Rule:
    """CreateDelivery to a CloudWatch Logs group (CloudFront's logging v2): CloudWatch Logs first adds the group
    to the account's ``AWSLogDeliveryWrite20150319`` resource policy in the group's region, and the delivery
    fails when that policy cannot be made (10 policies already: LimitExceededException, as PutResourcePolicy
    answers) or would pass 5,120 characters. moto writes no resource policy for a delivery."""
    def answer(call: Call) -> dict:
        name = call.params["deliveryDestinationArn"].rsplit(":", 1)[-1]
        destination = call.client.get_delivery_destination(name=name)["deliveryDestination"]
        group = destination["deliveryDestinationConfiguration"]["destinationResourceArn"]
        if ":log-group:" in group:
            logs = boto3.client("logs", region_name=group.split(":")[3])
            policies = logs.describe_resource_policies()["resourcePolicies"]
            current = next((p for p in policies if p["policyName"] == DELIVERY_LOG_POLICY), None)
            document = json.loads(current["policyDocument"]) if current else {
                "Version": "2012-10-17", "Statement": [{
                    "Sid": "AWSLogDeliveryWrite20150319", "Effect": "Allow",
                    "Principal": {"Service": ["delivery.logs.amazonaws.com"]},
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": []}]}
            resources = document["Statement"][0]["Resource"]
            entry = f"{group.removesuffix(':*')}:log-stream:*"
            if entry not in resources:
                resources.append(entry)
            text = json.dumps(document)
            if current is None and len(policies) >= 10:
                raise aws_error(call.operation, "LimitExceededException",
                                "Resource limit exceeded: an account can have up to 10 resource policies per region.")
            if len(text) > 5120:
                raise aws_error(call.operation, "LimitExceededException",
                                f"Resource policy {DELIVERY_LOG_POLICY} would pass 5120 characters.")
            logs.put_resource_policy(policyName=DELIVERY_LOG_POLICY, policyDocument=text)
        return call.send()

    return Rule("a log delivery to CloudWatch Logs needs room in AWSLogDeliveryWrite20150319",
                DELIVERY_LOG_POLICY_SOURCE, operation("logs", "CreateDelivery"), answer)


SES_WRITE_TEST_SOURCE = ("SES developer guide, 'Giving permissions to Amazon SES for email receiving' (the bucket policy "
                         "names aws:SourceAccount and aws:SourceArn receipt-rule-set/<set>:receipt-rule/<rule>); "
                         "CreateReceiptRule answers InvalidS3Configuration 'Could not write to bucket' when SES may "
                         "not write (aws-cdk#3726, #30143, terraform-provider-aws#7917); S3 user guide, 'Amazon S3 data "
                         "consistency model' (bucket configuration is eventually consistent)")


def _bucket_condition_holds(operator: str, values: dict, context: dict) -> bool:
    """One condition block of a policy statement against a request's context (the operators a bucket policy for
    SES uses); a key the request does not carry fails the condition, as in IAM."""
    import fnmatch

    lowered = {k.lower(): v for k, v in context.items()}
    for key, wanted in values.items():
        have = lowered.get(key.lower())
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        if have is None:
            return False
        if operator == "Bool":
            holds = str(have).lower() in [w.lower() for w in wanted]
        elif operator in ("StringEquals", "ArnEquals"):
            holds = have in wanted
        elif operator in ("StringLike", "ArnLike"):
            holds = any(fnmatch.fnmatchcase(have, w) for w in wanted)
        else:
            holds = False  # an operator this evaluator does not know: not granted
        if not holds:
            return False
    return True


def bucket_policy_allows(policy: dict | None, principal_service: str, action: str, resource: str,
                         context: dict) -> bool:
    """Whether a bucket policy lets a service principal make one request: an explicit deny wins, then any allow."""
    import fnmatch

    allowed = False
    for statement in (policy or {}).get("Statement", []):
        principal = statement.get("Principal")
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if not (principal == "*" or principal_service in services):
            continue
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        if not any(fnmatch.fnmatchcase(action, a) for a in ([actions] if isinstance(actions, str) else actions)):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in ([resources] if isinstance(resources, str) else resources)):
            continue
        if not all(_bucket_condition_holds(op, values, context) for op, values in statement.get("Condition", {}).items()):
            continue
        if statement["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def ses_tests_the_bucket_write(stale_reads: int = 0) -> Rule:
    """CreateReceiptRule and UpdateReceiptRule with an S3 action: SES first writes a test object to the bucket, as
    ses.amazonaws.com, over TLS, for this account and for the rule being made (aws:SourceArn
    ``receipt-rule-set/<set>:receipt-rule/<rule>``, the ARN the rule has or will have), and refuses the call with
    InvalidS3Configuration "Could not write to bucket: <bucket>" when the bucket's policy does not allow that.
    ``stale_reads``: after each PutBucketPolicy, that many of SES's test writes still meet the policy from before
    (S3's bucket configuration is eventually consistent). moto makes the rule without looking at the bucket."""
    import botocore.exceptions

    before: dict[str, tuple[dict | None, int]] = {}  # bucket -> (the policy before the last put, stale reads left)

    def policy_of(bucket: str) -> dict | None:
        s3 = boto3.client("s3")
        try:
            return json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        except botocore.exceptions.ClientError:
            return None

    def answer(call: Call) -> dict:
        if call.operation == "PutBucketPolicy":
            before[call.params["Bucket"]] = (policy_of(call.params["Bucket"]), stale_reads)
            return call.send()
        region = call.client.meta.region_name
        account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
        rule = call.params["Rule"]
        arn = f"arn:aws:ses:{region}:{account}:receipt-rule-set/{call.params['RuleSetName']}:receipt-rule/{rule['Name']}"
        for action in rule.get("Actions", []):
            target = action.get("S3Action")
            if not target:
                continue
            bucket = target["BucketName"]
            policy = policy_of(bucket)
            old, left = before.get(bucket, (policy, 0))
            if left > 0:
                before[bucket] = (old, left - 1)
                policy = old
            key = f"arn:aws:s3:::{bucket}/{target.get('ObjectKeyPrefix', '')}AMAZON_SES_SETUP_NOTIFICATION"
            context = {"aws:SourceAccount": account, "aws:SourceArn": arn, "aws:SecureTransport": "true"}
            if not bucket_policy_allows(policy, "ses.amazonaws.com", "s3:PutObject", key, context):
                raise aws_error(call.operation, "InvalidS3Configuration", f"Could not write to bucket: {bucket}")
        return call.send()

    def applies(call: Call) -> bool:
        return ((call.service == "ses" and call.operation in ("CreateReceiptRule", "UpdateReceiptRule"))
                or (call.service == "s3" and call.operation == "PutBucketPolicy"))

    return Rule("SES tests its write to the bucket when a rule is made or changed", SES_WRITE_TEST_SOURCE,
                applies, answer)


@dataclass
class Pause:
    """A point where a test interleaves two runs: the first call ``rule`` picks is held until ``go`` is set (at most
    ``timeout`` seconds); ``reached`` is set when it arrives. Not AWS behaviour: the test's way to make the
    dangerous order happen every time."""
    rule: Rule
    reached: threading.Event
    go: threading.Event


def pause_at(applies: Callable[[Call], bool], timeout: float = 30.0) -> Pause:
    reached, go = threading.Event(), threading.Event()

    def answer(call: Call) -> dict:
        reached.set()
        go.wait(timeout)
        return call.send()

    rule = Rule("a test's interleaving point", "none: an order of two runs' calls that AWS allows",
                lambda call: not reached.is_set() and applies(call), answer)
    return Pause(rule, reached, go)


MADE_MEANWHILE_SOURCE = ("SES API reference, CreateReceiptRuleSet (AlreadyExists: 'a resource could not be created "
                         "because of a naming conflict'); IAM API reference, CreatePolicy (EntityAlreadyExists)")


def made_meanwhile(service: str, op: str, name_parameter: str, name: str) -> Rule:
    """Another run (another stack's, or a piece of this deploy running beside) creates the named thing between
    this run's look and its create, which AWS then refuses for the name (SES: AlreadyExists; IAM:
    EntityAlreadyExists). Once, for the first such create."""
    def answer(call: Call) -> dict:
        call.send()  # the other run's create
        return call.send()  # this run's: refused for the name

    rule = Rule(f"{op} {name}: made by another run meanwhile", MADE_MEANWHILE_SOURCE,
                lambda call: (operation(service, op)(call) and call.params[name_parameter] == name
                              and not rule.seen), answer)
    return rule
