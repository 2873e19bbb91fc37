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

import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import boto3
from botocore.client import BaseClient

from tests.support import aws_error


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
    """Route every boto3 call through the active rules, first applicable rule wins."""
    original = BaseClient._make_api_call

    def make_api_call(client, operation_name, api_params):
        call = Call(service=client.meta.service_model.service_name, operation=operation_name,
                    params=api_params, client=client,
                    send=lambda: original(client, operation_name, api_params))
        for rule in rules:
            if rule.applies(call):
                rule.seen.append(call)
                return rule.answer(call)
        return call.send()

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)


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

    def advance(self, seconds: float) -> None:
        self.now += seconds


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


def _condition_holds(operator: str, values: dict, context: dict) -> bool:
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
        if not all(_condition_holds(op, values, context) for op, values in statement.get("Condition", {}).items()):
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
