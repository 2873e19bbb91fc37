"""rotate authorization / api-key: at every point of both rotations, every value a caller may hold is accepted.

The configuration is read back from moto with boto3 and judged by what AWS
would do with it: the WAF rule is evaluated for a request from an allowed
address carrying each value; an API key is accepted when it is enabled and in
the usage plan bound to the stage, and CloudFront sends the value in its
origin header.
"""
import ipaddress
import json

import boto3
import pytest

from tests.support import SECRETS, Run, aws_error, inject, inventory

pytestmark = pytest.mark.iam

OLD = SECRETS["TEST_AUTHORIZATION"]
NEW = "Bearer auth-NEW-NEVER-SHOWN-5d1e"
CALLER = "203.0.113.9"  # inside the allowed 203.0.113.0/24


@pytest.fixture
def stack(load_seeded, hosted_zone, write_config):
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded(overrides)
    path = write_config(overrides)
    assert Run("deploy", path).code == 0
    return cfg, path


# --- what AWS would accept, judged from the configuration read back -------------------------------

def _web_acl():
    waf = boto3.client("wafv2", region_name="us-east-1")
    summary = next(a for a in waf.list_web_acls(Scope="CLOUDFRONT")["WebACLs"] if a["Name"] == "demo")
    return waf, waf.get_web_acl(Name="demo", Scope="CLOUDFRONT", Id=summary["Id"])["WebACL"]


def _matches(waf, statement, ip, authorization) -> bool:
    """WAF's evaluation of the statement kinds our rules use (one request never passes the per-caller limit)."""
    if "RateBasedStatement" in statement:
        return False
    if "AndStatement" in statement:
        return all(_matches(waf, s, ip, authorization) for s in statement["AndStatement"]["Statements"])
    if "OrStatement" in statement:
        return any(_matches(waf, s, ip, authorization) for s in statement["OrStatement"]["Statements"])
    if "IPSetReferenceStatement" in statement:
        arn = statement["IPSetReferenceStatement"]["ARN"]
        name, set_id = arn.split("/")[-2:]
        addresses = waf.get_ip_set(Name=name, Scope="CLOUDFRONT", Id=set_id)["IPSet"]["Addresses"]
        return any(ipaddress.ip_address(ip) in ipaddress.ip_network(a) for a in addresses)
    match = statement["ByteMatchStatement"]
    assert match["FieldToMatch"] == {"SingleHeader": {"Name": "authorization"}}
    assert match["PositionalConstraint"] == "EXACTLY"
    wanted = match["SearchString"]
    return authorization.encode() == (wanted if isinstance(wanted, bytes) else wanted.encode())


def waf_allows(authorization: str, ip: str = CALLER) -> bool:
    waf, acl = _web_acl()
    for rule in sorted(acl["Rules"], key=lambda r: r["Priority"]):
        if _matches(waf, rule["Statement"], ip, authorization):
            return "Allow" in rule["Action"]
    return "Allow" in acl["DefaultAction"]


def _distribution():
    cf = boto3.client("cloudfront", region_name="us-east-1")
    item = cf.list_distributions()["DistributionList"]["Items"][0]
    return cf.get_distribution(Id=item["Id"])["Distribution"]


def sent_key() -> str:
    """The x-api-key value CloudFront's configuration sends now."""
    headers = _distribution()["DistributionConfig"]["Origins"]["Items"][0]["CustomHeaders"]["Items"]
    return next(h["HeaderValue"] for h in headers if h["HeaderName"] == "x-api-key")


def accepted_keys() -> set[str]:
    """Values of enabled keys in a usage plan bound to the API's stage: what API Gateway accepts."""
    apigw = boto3.client("apigateway", region_name="eu-west-1")
    api = next(a for a in apigw.get_rest_apis()["items"] if a["name"] == "demo")
    values = set()
    for plan in apigw.get_usage_plans()["items"]:
        if {"apiId": api["id"], "stage": "v1"} not in [{"apiId": s["apiId"], "stage": s["stage"]}
                                                      for s in plan.get("apiStages", [])]:
            continue
        for key in apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]:
            full = apigw.get_api_key(apiKey=key["id"], includeValue=True)
            if full["enabled"]:
                values.add(full["value"])
    return values


def stack_key_values() -> list[str]:
    apigw = boto3.client("apigateway", region_name="eu-west-1")
    return [apigw.get_api_key(apiKey=k["id"], includeValue=True)["value"] for k in apigw.get_api_keys()["items"]]


def no_secret_in(run: Run, cfg, *secrets: str) -> None:
    state = (cfg.state_dir / "demo.json").read_text()
    for secret in secrets:
        assert secret not in run.text and secret not in state


# --- authorization ---------------------------------------------------------------------------------

def test_authorization_rotation_never_refuses_a_held_value(stack, monkeypatch):
    cfg, path = stack
    assert waf_allows(OLD) and not waf_allows(NEW) and not waf_allows(OLD, ip="198.51.100.1")

    monkeypatch.setenv("TEST_AUTHORIZATION", NEW)  # the operator's first move: the new value in the variable
    run = Run("rotate", path, "authorization")
    assert run.code == 0, run.text
    assert waf_allows(OLD) and waf_allows(NEW)  # callers may hold either
    assert not waf_allows("Bearer something-else") and not waf_allows(NEW, ip="198.51.100.1")
    no_secret_in(run, cfg, OLD, NEW)
    assert "rotate authorization --finish" in run.text

    # A plain deploy during the window keeps it, and changes nothing at all.
    session = boto3.Session()
    deploy = Run("deploy", path, session=session)
    assert deploy.code == 0, deploy.text
    assert deploy.text.rstrip().endswith("(0 changing)"), deploy.text
    assert waf_allows(OLD) and waf_allows(NEW)

    # ... even with the state file lost: the rule itself holds the window.
    (cfg.state_dir / "demo.json").unlink()
    assert Run("deploy", path).code == 0
    assert waf_allows(OLD) and waf_allows(NEW)

    # Running the same command again resumes (here: nothing left to do).
    again = Run("rotate", path, "authorization")
    assert again.code == 0 and again.text.rstrip().endswith("(0 changing)"), again.text
    assert waf_allows(OLD) and waf_allows(NEW)

    finish = Run("rotate", path, "authorization", "--finish")
    assert finish.code == 0, finish.text
    assert waf_allows(NEW) and not waf_allows(OLD)
    no_secret_in(finish, cfg, OLD, NEW)
    assert Run("rotate", path, "authorization", "--finish").code == 0  # nothing left to finish


def test_authorization_rotation_refuses_what_would_lock_callers_out(stack, monkeypatch):
    cfg, path = stack
    same = Run("rotate", path, "authorization")  # the variable still holds the current value
    assert same.code == 1 and "put the NEW value" in same.text
    monkeypatch.setenv("TEST_AUTHORIZATION", NEW)
    early = Run("rotate", path, "authorization", "--finish")  # nobody has NEW yet
    assert early.code == 1 and "does not accept" in early.text
    assert waf_allows(OLD) and not waf_allows(NEW)
    assert Run("rotate", path, "authorization").code == 0
    monkeypatch.setenv("TEST_AUTHORIZATION", "Bearer a-third-value-0000")
    third = Run("rotate", path, "authorization")
    assert third.code == 1 and "under way" in third.text
    assert waf_allows(OLD) and waf_allows(NEW)


def test_interrupted_authorization_rotation_resumes(stack, monkeypatch):
    cfg, path = stack
    monkeypatch.setenv("TEST_AUTHORIZATION", NEW)
    session = boto3.Session()
    inject(session, "before-call.wafv2.UpdateWebACL", 1, "WAFInternalErrorException", status=400)
    failed = Run("rotate", path, "authorization", session=session)
    assert failed.code == 1 and "WAF web ACL" in failed.text
    assert waf_allows(OLD)  # nothing half-done refuses the current holders
    assert Run("rotate", path, "authorization").code == 0
    assert waf_allows(OLD) and waf_allows(NEW)


# --- API key ---------------------------------------------------------------------------------------

def test_api_key_rotation_never_refuses_the_key_cloudfront_sends(stack):
    cfg, path = stack
    old = sent_key()
    assert accepted_keys() == {old}

    run = Run("rotate", path, "api-key")
    assert run.code == 0, run.text
    new = sent_key()
    assert new != old and _distribution()["Status"] == "Deployed"
    # Edges may still send the old value until the switch has propagated: both are accepted.
    assert accepted_keys() == {old, new}
    no_secret_in(run, cfg, old, new)
    assert "rotate api-key --finish" in run.text

    deploy = Run("deploy", path)  # keeps the window and does not undo the switch
    assert deploy.code == 0 and deploy.text.rstrip().endswith("(0 changing)"), deploy.text
    assert sent_key() == new and accepted_keys() == {old, new}
    again = Run("rotate", path, "api-key")  # resume: no third key
    assert again.code == 0 and again.text.rstrip().endswith("(0 changing)"), again.text
    assert len(stack_key_values()) == 2

    outputs = Run("outputs", path, "--json")
    assert json.loads(outputs.text)["api_key_rotation"].startswith("old key")

    finish = Run("rotate", path, "api-key", "--finish")
    assert finish.code == 0, finish.text
    assert "API key rotation" not in finish.text
    assert sent_key() == new and accepted_keys() == {new}
    assert stack_key_values() == [new]  # the old key is deleted, not only detached
    no_secret_in(finish, cfg, old, new)
    assert Run("deploy", path).text.rstrip().endswith("(0 changing)")
    assert Run("rotate", path, "api-key", "--finish").code == 0


def _fail_reads_after_switch(session):
    switched = []
    session.events.register("after-call.cloudfront.UpdateDistribution", lambda **_: switched.append(True))

    def deny(**_):
        if switched:
            raise aws_error("GetDistribution", "AccessDenied", "injected")
    session.events.register("before-call.cloudfront.GetDistribution", deny)


def test_interrupted_api_key_rotation_keeps_both_keys_and_resumes(stack):
    cfg, path = stack
    old = sent_key()
    session = boto3.Session()
    _fail_reads_after_switch(session)  # dies after the switch was sent, while waiting for it to deploy
    failed = Run("rotate", path, "api-key", session=session)
    assert failed.code == 1, failed.text
    new = sent_key()
    assert new != old and accepted_keys() == {old, new}
    # Finishing now would strand edges still sending the old key: refused until the switch has deployed.
    assert Run("deploy", path).code == 0
    assert accepted_keys() == {old, new}
    resumed = Run("rotate", path, "api-key")
    assert resumed.code == 0, resumed.text
    assert sent_key() == new and accepted_keys() == {old, new} and len(stack_key_values()) == 2
    assert Run("rotate", path, "api-key", "--finish").code == 0
    assert accepted_keys() == {new}


def test_finish_refuses_while_cloudfront_sends_the_old_key(stack):
    cfg, path = stack
    old = sent_key()
    session = boto3.Session()
    inject(session, "before-call.cloudfront.UpdateDistribution", 1, "AccessDenied", status=403)
    assert Run("rotate", path, "api-key", session=session).code == 1  # new key made, switch never sent
    assert sent_key() == old
    finish_session = boto3.Session()
    inject(finish_session, "before-call.cloudfront.UpdateDistribution", 1, "AccessDenied", status=403)
    finish = Run("rotate", path, "api-key", "--finish", session=finish_session)
    assert finish.code == 1
    assert old in accepted_keys() and sent_key() == old


def test_teardown_in_the_middle_of_rotations_leaves_nothing(stack, monkeypatch):
    cfg, path = stack
    assert Run("rotate", path, "api-key").code == 0
    monkeypatch.setenv("TEST_AUTHORIZATION", NEW)
    assert Run("rotate", path, "authorization").code == 0
    assert len(stack_key_values()) == 2
    assert Run("teardown", path, "--yes").code == 0
    assert [f for f in inventory(cfg) if not f.startswith("dns NS")] == []
