"""WAF step: IP sets and the web ACL, read back from moto's WAFv2 (scope CLOUDFRONT, us-east-1)."""
import json

import boto3
import pytest

from provision import config as config_module
from provision.clients import PACE_SECONDS
from provision.errors import DeployError
from provision.steps import waf
from tests.support import SECRETS, aws_error, printed, quiet_context, run_once

V4, V6 = "203.0.113.0/24", "2001:db8::/32"
HEADER_SECRET = SECRETS["TEST_AUTHORIZATION"]


@pytest.fixture
def load(aws, write_config):
    """load(overrides=None) -> Config; WAF needs none of the operator's VPC or RDS."""
    return lambda overrides=None: config_module.load(write_config(overrides))


def cidrs(*values):
    return {"access": {"allowed_cidrs": list(values)}}


def wafv2():
    return boto3.client("wafv2", region_name="us-east-1")


def acls():
    return wafv2().list_web_acls(Scope="CLOUDFRONT")["WebACLs"]


def ip_sets():
    return {s["Name"]: s for s in wafv2().list_ip_sets(Scope="CLOUDFRONT")["IPSets"]}


def web_acl(name="demo"):
    summary = next(a for a in acls() if a["Name"] == name)
    return wafv2().get_web_acl(Name=name, Scope="CLOUDFRONT", Id=summary["Id"])["WebACL"]


def addresses(name):
    summary = ip_sets()[name]
    return wafv2().get_ip_set(Name=name, Scope="CLOUDFRONT", Id=summary["Id"])["IPSet"]["Addresses"]


def tags(arn):
    found = wafv2().list_tags_for_resource(ResourceARN=arn)["TagInfoForResource"]["TagList"]
    return {t["Key"]: t["Value"] for t in found}


def allow_rule(acl):
    return next(r for r in acl["Rules"] if r["Name"] == "allow-listed-callers")


def header_match(acl):
    return allow_rule(acl)["Statement"]["AndStatement"]["Statements"][1]["ByteMatchStatement"]


@pytest.mark.parametrize("allowed, expected_sets", [
    ((V4, V6), {"demo-ipv4": [V4], "demo-ipv6": [V6]}),
    ((V4,), {"demo-ipv4": [V4]}),
    ((V6,), {"demo-ipv6": [V6]}),
])
def test_ensure_creates_the_acl_and_only_the_needed_ip_sets(load, allowed, expected_sets):
    ctx = run_once(load(cidrs(*allowed)), waf.ensure)

    sets = ip_sets()
    assert sorted(sets) == sorted(expected_sets)
    for name, wanted in expected_sets.items():
        assert addresses(name) == wanted
        assert tags(sets[name]["ARN"]) == {"stack": "demo", "managed-by": "rds-edge-api"}
    acl = web_acl()
    assert acl["DefaultAction"] == {"Block": {}}
    assert acl["VisibilityConfig"] == {"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": True,
                                       "MetricName": "demo"}
    assert tags(acl["ARN"]) == {"stack": "demo", "managed-by": "rds-edge-api"}
    limit, rule = sorted(acl["Rules"], key=lambda r: r["Priority"])
    assert (rule["Name"], rule["Priority"], rule["Action"]) == ("allow-listed-callers", 1, {"Allow": {}})
    assert (limit["Name"], limit["Priority"]) == ("per-caller-limit", 0)
    assert rule["VisibilityConfig"] == {"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": True,
                                        "MetricName": "demo-allow-listed-callers"}
    source, header = rule["Statement"]["AndStatement"]["Statements"]
    references = [{"IPSetReferenceStatement": {"ARN": sets[name]["ARN"]}} for name in sorted(expected_sets)]
    if len(references) == 1:
        assert source == references[0]
    else:
        assert source == {"OrStatement": {"Statements": references}}
    assert header == {"ByteMatchStatement": {
        "SearchString": HEADER_SECRET.encode(),
        "FieldToMatch": {"SingleHeader": {"Name": "authorization"}},
        "TextTransformations": [{"Priority": 0, "Type": "NONE"}],
        "PositionalConstraint": "EXACTLY",
    }}
    state = ctx.state.get("waf")
    assert state["web_acl_arn"] == acl["ARN"] and state["web_acl_id"] == acl["Id"]
    assert state.get("ipv4_set_arn") == sets.get("demo-ipv4", {}).get("ARN")
    assert state.get("ipv6_set_arn") == sets.get("demo-ipv6", {}).get("ARN")
    assert ctx.outputs["Web ACL"] == acl["ARN"]


@pytest.mark.parametrize("access, limit, window", [({}, 2000, 300), ({"rate_limit": 10, "rate_window_s": 60}, 10, 60)])
def test_the_per_caller_limit_comes_before_the_allow_rule_and_answers_429(load, access, limit, window):
    run_once(load({"access": access}), waf.ensure)
    acl = web_acl()
    first = min(acl["Rules"], key=lambda r: r["Priority"])
    assert first["Name"] == "per-caller-limit" and first["Priority"] < allow_rule(acl)["Priority"]
    assert first["Statement"] == {"RateBasedStatement": {"Limit": limit, "AggregateKeyType": "IP",
                                                         "EvaluationWindowSec": window}}
    assert first["Action"] == {"Block": {"CustomResponse": {"ResponseCode": 429,
                                                            "CustomResponseBodyKey": "rate-limited"}}}
    assert first["VisibilityConfig"] == {"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": True,
                                         "MetricName": "demo-per-caller-limit"}
    body = acl["CustomResponseBodies"]["rate-limited"]
    assert body["ContentType"] == "APPLICATION_JSON" and f"at most {limit} in {window} seconds" in \
        json.loads(body["Content"])["message"]


def test_a_changed_rate_limit_updates_the_acl_in_place_and_then_rests(load):
    run_once(load(), waf.ensure)
    acl_id = web_acl()["Id"]
    changed = load({"access": {"rate_limit": 500}})
    assert run_once(changed, waf.ensure).clients.calls.changing_ops == ["UpdateWebACL"]
    rule = next(r for r in web_acl()["Rules"] if r["Name"] == "per-caller-limit")
    assert rule["Statement"]["RateBasedStatement"]["Limit"] == 500 and web_acl()["Id"] == acl_id
    assert run_once(changed, waf.ensure).clients.calls.changing == 0


def test_second_ensure_makes_no_changing_call(load):
    cfg = load()
    run_once(cfg, waf.ensure)
    again = run_once(cfg, waf.ensure)
    assert again.clients.calls.changing == 0
    assert again.report.changes == []


def test_changed_cidrs_update_the_ip_set_in_place(load):
    run_once(load(), waf.ensure)
    before = web_acl()
    ctx = run_once(load(cidrs("198.51.100.0/24", "192.0.2.0/25", V6)), waf.ensure)
    assert ctx.clients.calls.changing_ops == ["UpdateIPSet"]
    assert sorted(addresses("demo-ipv4")) == ["192.0.2.0/25", "198.51.100.0/24"]
    assert addresses("demo-ipv6") == [V6]
    assert [a["Id"] for a in acls()] == [before["Id"]]


def test_changed_secret_updates_the_rule_in_place(load, monkeypatch):
    cfg = load()
    run_once(cfg, waf.ensure)
    before = web_acl()
    monkeypatch.setenv("TEST_AUTHORIZATION", "Bearer rotated-NEVER-SHOWN-5d1e")
    ctx = run_once(cfg, waf.ensure)
    assert ctx.clients.calls.changing_ops == ["UpdateWebACL"]
    after = web_acl()
    assert after["Id"] == before["Id"] and len(acls()) == 1
    assert header_match(after)["SearchString"] == b"Bearer rotated-NEVER-SHOWN-5d1e"
    assert "rotated-NEVER-SHOWN" not in printed(ctx)
    assert "rotated-NEVER-SHOWN" not in json.dumps(ctx.state.resources)


def test_dropping_ipv6_removes_its_set_after_the_acl_stops_using_it(load):
    run_once(load(), waf.ensure)
    acl_id = web_acl()["Id"]
    ctx = run_once(load(cidrs(V4)), waf.ensure)
    assert ctx.clients.calls.changing_ops == ["UpdateWebACL", "DeleteIPSet"]
    assert sorted(ip_sets()) == ["demo-ipv4"]
    acl = web_acl()
    assert acl["Id"] == acl_id
    source = allow_rule(acl)["Statement"]["AndStatement"]["Statements"][0]
    assert source == {"IPSetReferenceStatement": {"ARN": ip_sets()["demo-ipv4"]["ARN"]}}
    assert "ipv6_set_arn" not in ctx.state.get("waf")


def test_adding_ipv6_creates_its_set_then_updates_the_acl(load):
    run_once(load(cidrs(V4)), waf.ensure)
    ctx = run_once(load(), waf.ensure)
    assert ctx.clients.calls.changing_ops == ["CreateIPSet", "UpdateWebACL"]
    source = allow_rule(web_acl())["Statement"]["AndStatement"]["Statements"][0]
    assert len(source["OrStatement"]["Statements"]) == 2


def test_destroy_removes_acl_and_sets_and_is_safe_twice(load):
    cfg = load()
    run_once(cfg, waf.ensure)
    ctx = run_once(cfg, waf.destroy)
    assert ctx.clients.calls.changing_ops == ["DeleteWebACL", "DeleteIPSet", "DeleteIPSet"]
    assert acls() == [] and ip_sets() == {}
    again = run_once(cfg, waf.destroy)
    assert again.clients.calls.changing == 0


def test_destroy_without_anything_deployed_does_nothing(load):
    ctx = run_once(load(), waf.destroy)
    assert ctx.clients.calls.changing == 0 and ctx.report.changes == []


def associated_error():
    return aws_error("DeleteWebACL", "WAFAssociatedItemException", "in use")


def test_destroy_waits_while_cloudfront_still_uses_the_acl(load):
    cfg = load()
    run_once(cfg, waf.ensure)
    ctx = quiet_context(cfg)
    client = ctx.edge("wafv2")
    real, failures = client.delete_web_acl, [associated_error(), associated_error()]

    def delete_web_acl(**kwargs):
        if failures:
            raise failures.pop()
        return real(**kwargs)

    client.delete_web_acl = delete_web_acl
    waf.destroy(ctx)
    assert acls() == [] and ip_sets() == {}
    assert len(ctx.sleep) == 2
    assert "CloudFront to release web ACL demo" in printed(ctx)


def test_destroy_gives_up_after_a_bound_while_the_acl_stays_in_use(load):
    cfg = load()
    run_once(cfg, waf.ensure)
    ctx = quiet_context(cfg)
    client = ctx.edge("wafv2")

    def delete_web_acl(**kwargs):
        raise associated_error()

    client.delete_web_acl = delete_web_acl
    with pytest.raises(DeployError, match="gave up waiting for CloudFront to release web ACL demo"):
        waf.destroy(ctx)
    assert len(acls()) == 1


@pytest.mark.parametrize("deployed", [False, True])
def test_plan_makes_no_changing_call_and_reports_what_it_would_do(load, monkeypatch, deployed):
    cfg = load()
    if deployed:
        run_once(cfg, waf.ensure)
        monkeypatch.setenv("TEST_AUTHORIZATION", "Bearer rotated-NEVER-SHOWN-5d1e")
    before = (acls(), ip_sets())
    ctx = run_once(cfg, waf.ensure, planning=True)
    assert ctx.clients.calls.changing == 0
    assert (acls(), ip_sets()) == before
    if deployed:
        assert ctx.report.changes == [("update", "web ACL demo (rules per-caller-limit, allow-listed-callers)")]
    else:
        assert [kind for kind, _ in ctx.report.changes] == ["create", "create", "create"]
        assert "would create web ACL demo" in printed(ctx)
    assert "NEVER-SHOWN" not in printed(ctx)


def test_a_same_named_ip_set_that_is_not_ours_is_never_adopted_or_deleted(load):
    cfg = load()
    wafv2().create_ip_set(Name="demo-ipv4", Scope="CLOUDFRONT", IPAddressVersion="IPV4",
                          Addresses=["192.0.2.0/24"], Tags=[{"Key": "owner", "Value": "someone"}])
    with pytest.raises(DeployError, match="IP set demo-ipv4 .* not tagged"):
        run_once(cfg, waf.ensure)
    ctx = run_once(cfg, waf.destroy)
    assert "demo-ipv4" in ip_sets()
    assert ctx.clients.calls.changing == 0
    assert "Leaving IP set demo-ipv4" in printed(ctx)


def test_the_secret_is_never_printed_or_recorded(load, monkeypatch):
    cfg = load()
    runs = [run_once(cfg, waf.ensure), run_once(load(cidrs(V4)), waf.ensure)]
    monkeypatch.setenv("TEST_AUTHORIZATION", "Bearer rotated-NEVER-SHOWN-5d1e")
    runs += [run_once(cfg, waf.ensure), run_once(cfg, waf.ensure, planning=True), run_once(cfg, waf.destroy)]
    for ctx in runs:
        shown = printed(ctx) + json.dumps(ctx.state.resources) + json.dumps(ctx.outputs)
        shown += " ".join(description for _, description in ctx.report.changes)
        for secret in (*SECRETS.values(), "Bearer rotated-NEVER-SHOWN-5d1e"):
            assert secret not in shown


def test_a_new_ip_set_not_yet_visible_to_waf_is_waited_for(load):
    ctx = quiet_context(load())
    client = ctx.edge("wafv2")
    real, refusals = client.create_web_acl, [
        aws_error("CreateWebACL", "WAFUnavailableEntityException", "retry")]

    def create_web_acl(**kwargs):
        if refusals:
            raise refusals.pop()
        return real(**kwargs)

    client.create_web_acl = create_web_acl
    waf.ensure(ctx)
    waits_for_waf = [s for s in ctx.sleep if s > PACE_SECONDS]  # the rest: WAF's once-a-second turns
    assert len(acls()) == 1 and len(waits_for_waf) == 1
    assert "WAF to see the new IP set" in printed(ctx)
