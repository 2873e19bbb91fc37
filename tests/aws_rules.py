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

from dataclasses import dataclass, field
from typing import Any, Callable

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
