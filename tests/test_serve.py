"""The locally served path, end to end over HTTP on loopback: the example stack deployed into the
emulator, a throwaway MariaDB with the sample rows, the edge and the API stand-in on free ports.

Every answer is checked by the test itself (status, body), not through verify's own verdicts; changes
are made in the emulator with boto3 and must show in the next answer.
"""
import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from contextlib import ExitStack, contextmanager

import boto3
import pytest
from rich.console import Console

from provision import runner
from provision.commands import verify
from provision.config import load
from provision.context import make_context
from provision.local import emulator
from provision.local.serve import LocalPath
from provision.output import Output
from provision.steps import STEPS

EXAMPLE = "stack.example.toml"
AUTHORIZATION = "Bearer serve-test-NEVER-SHOWN"
ALLOWED, BLOCKED = "203.0.113.10", "198.51.100.77"
HOSTILE_KEYS = [
    'quote"inside', "single'quote", "back\\slash", "trailing\\", '\\"', "</script><script>alert(1)</script>",
    "caf\u00e9 \u65e5\u672c \U0001F600", "$context.identity.sourceIp", "#set($x = 1)", "a+b&c=d%20e",
    "line\nbreak", "tab\there", "\u2028sep", "''", "{\"key\": \"smuggled\"}",
]


@pytest.fixture(scope="module")
def served():
    """(config, session, path): deployed once for the module; every test leaves the emulator as it found it."""
    saved = {k: os.environ.get(k) for k in ("RDS_EDGE_DB_PASSWORD", "RDS_EDGE_AUTHORIZATION")}
    os.environ.update(RDS_EDGE_DB_PASSWORD="serve-db-NEVER-SHOWN", RDS_EDGE_AUTHORIZATION=AUTHORIZATION)
    out = Output(Console(file=io.StringIO(), width=250, force_terminal=False))
    try:
        with ExitStack() as stack:
            config, session = emulator.start(stack, load(EXAMPLE), out)
            runner.deploy(make_context(config, session=session, out=out), STEPS)
            path = stack.enter_context(LocalPath(config, session, port=0))
            yield config, session, path
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def get(url, headers=None, **query):
    full = url + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        with urllib.request.urlopen(urllib.request.Request(full, headers=headers or {}), timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def through_edge(path, source=ALLOWED, authorization=AUTHORIZATION, **query):
    headers = {"X-Forwarded-For": source}
    if authorization is not None:
        headers["Authorization"] = authorization
    return get(path.edge_url, headers, **query)


def api_key_value(config, session):
    apigw = session.client("apigateway", region_name=config.stack.region)
    key = next(k for k in apigw.get_api_keys(includeValues=True)["items"] if k["name"] == config.stack.name)
    return key["value"]


def test_allowed_caller_gets_both_rows_of_key_42_losslessly(served):
    _, _, path = served
    status, body = through_edge(path, key="42")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["key"] == "42"
    assert [(i["total"], i["placed_at"], i["note"]) for i in answer["items"]] == [
        ("19.90", "2026-11-02T09:15:00", "gift wrap"), ("1250.00", "2026-11-20T17:45:30", None)]


def test_key_7_has_one_row(served):
    status, body = through_edge(served[2], key="7")
    assert status == 200 and len(json.loads(body)["items"]) == 1


def test_unknown_key_is_404_with_the_apis_json(served):
    status, body = through_edge(served[2], key="99")
    assert (status, json.loads(body)) == (404, {"message": "[NotFound] no item with this key"})


def test_no_key_parameter_is_400_from_the_validator(served):
    status, body = through_edge(served[2])
    assert (status, json.loads(body)) == (400, {"message": "Missing required request parameters: [key]"})


@pytest.mark.parametrize("authorization", ["Bearer wrong", AUTHORIZATION.lower(), AUTHORIZATION + " ", None])
def test_anything_but_the_exact_authorization_is_blocked(served, authorization):
    status, body = through_edge(served[2], authorization=authorization, key="42")
    assert status == 403 and "Request blocked" in body


def test_a_blocked_address_is_blocked(served):
    status, body = through_edge(served[2], source=BLOCKED, key="42")
    assert status == 403 and "Request blocked" in body


def test_without_forwarded_for_the_caller_is_loopback_and_blocked(served):
    status, _ = get(served[2].edge_url, {"Authorization": AUTHORIZATION}, key="42")
    assert status == 403


def test_the_api_itself_wants_its_key(served):
    config, session, path = served
    assert get(path.invoke_url, key="42") == (403, '{"message": "Forbidden"}')
    assert get(path.invoke_url, {"x-api-key": "not-the-key-0123456789"}, key="42")[0] == 403
    status, body = get(path.invoke_url, {"x-api-key": api_key_value(config, session)}, key="42")
    assert status == 200 and len(json.loads(body)["items"]) == 2


def test_every_row_of_verify_local_holds(served):
    config, session, path = served
    rows = verify.check(verify.local_target(path, config, session))
    assert [r.wall for r in rows] == ["caller address", "WAF + API + function", "function: no rows", "API validator",
                                      "WAF: Authorization", "WAF: source address", "API key", "API key"]
    assert all(r.ok for r in rows), rows
    assert not any(AUTHORIZATION in f"{r}" for r in rows)


@contextmanager
def ip_set_changed(config, session, addresses):
    waf = session.client("wafv2", region_name="us-east-1")
    summary = next(s for s in waf.list_ip_sets(Scope="CLOUDFRONT")["IPSets"] if s["Name"] == f"{config.stack.name}-ipv4")
    current = waf.get_ip_set(Name=summary["Name"], Scope="CLOUDFRONT", Id=summary["Id"])
    before = current["IPSet"]["Addresses"]
    waf.update_ip_set(Name=summary["Name"], Scope="CLOUDFRONT", Id=summary["Id"], Addresses=addresses,
                      LockToken=current["LockToken"])
    try:
        yield
    finally:
        token = waf.get_ip_set(Name=summary["Name"], Scope="CLOUDFRONT", Id=summary["Id"])["LockToken"]
        waf.update_ip_set(Name=summary["Name"], Scope="CLOUDFRONT", Id=summary["Id"], Addresses=before,
                          LockToken=token)


def test_an_ip_set_changed_in_the_emulator_changes_the_next_answer(served):
    config, session, path = served
    with ip_set_changed(config, session, ["192.0.2.0/24"]):
        assert through_edge(path, key="42")[0] == 403
        assert through_edge(path, source="192.0.2.5", key="42")[0] == 200
    assert through_edge(path, key="42")[0] == 200


@contextmanager
def integration_response_changed(config, session, status, pattern):
    apigw = session.client("apigateway", region_name=config.stack.region)
    api = next(a for a in apigw.get_rest_apis()["items"] if a["name"] == config.stack.name)
    resource = next(r for r in apigw.get_resources(restApiId=api["id"])["items"] if r["path"] == "/items")
    ids = {"restApiId": api["id"], "resourceId": resource["id"], "httpMethod": "GET", "statusCode": status}
    before = apigw.get_integration_response(**ids)
    apigw.put_integration_response(**ids, selectionPattern=pattern,
                                   responseTemplates=before.get("responseTemplates") or {})
    try:
        yield
    finally:
        apigw.put_integration_response(**ids, selectionPattern=before["selectionPattern"],
                                       responseTemplates=before.get("responseTemplates") or {})


def test_a_wrong_selection_pattern_changes_the_answer(served):
    """With the 404 pattern broken, "[NotFound] ..." matches no pattern: API Gateway's default (200) answers."""
    config, session, path = served
    with integration_response_changed(config, session, "404", r"^\[Missing\].*"):
        status, body = through_edge(path, key="99")
        assert status == 200 and json.loads(body)["errorMessage"] == "[NotFound] no item with this key"
    assert through_edge(path, key="99")[0] == 404


@pytest.fixture(scope="module")
def hostile_rows(served):
    """A row for each hostile key, so an answer proves the key reached the database intact."""
    config, _, path = served
    with path.database.admin(config.database.name) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {config.database.table} (customer_id, total, placed_at) "
                        f"VALUES (%s, 1.00, '2026-01-01 00:00:00')", [(k,) for k in HOSTILE_KEYS])
    return HOSTILE_KEYS


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_a_hostile_key_reaches_the_handler_intact(served, hostile_rows, key):
    status, body = through_edge(served[2], key=key)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["key"] == key and [i["customer_id"] for i in answer["items"]] == [key]


@pytest.mark.parametrize("key", [k + "-absent" for k in HOSTILE_KEYS] + ["x" * 256, "\ud7ff", "%ZZ"])
def test_a_hostile_key_without_rows_is_a_4xx_never_a_500(served, key):
    status, body = through_edge(served[2], key=key)
    assert status in (400, 404), (status, body)
    assert json.loads(body)["message"].startswith(("[NotFound]", "[BadRequest]"))
