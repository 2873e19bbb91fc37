"""The locally served path, end to end over HTTP on loopback: the example stack deployed into the
emulator, a throwaway MariaDB with the sample rows, the edge and the API stand-in on free ports.

Every answer is checked by the test itself (status, body), not through verify's own verdicts; changes
are made in the emulator with boto3 and must show in the next answer.
"""
import json
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager

import pytest

from provision import walls
from provision.local import serving
from tests.support import ALLOWED, BLOCKED, SERVE_AUTHORIZATION

HOSTILE_KEYS = [
    'quote"inside', "single'quote", "back\\slash", "trailing\\", '\\"', "</script><script>alert(1)</script>",
    "caf\u00e9 \u65e5\u672c \U0001F600", "$context.identity.sourceIp", "#set($x = 1)", "a+b&c=d%20e",
    "line\nbreak", "tab\there", "\u2028sep", "''", "{\"key\": \"smuggled\"}",
]



def get(url, headers=None, **query):
    full = url + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        with urllib.request.urlopen(urllib.request.Request(full, headers=headers or {}), timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def through_edge(path, source=ALLOWED, authorization=SERVE_AUTHORIZATION, **query):
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


@pytest.mark.parametrize("authorization",
                         ["Bearer wrong", SERVE_AUTHORIZATION.lower(), SERVE_AUTHORIZATION + " ", None])
def test_anything_but_the_exact_authorization_is_blocked(served, authorization):
    status, body = through_edge(served[2], authorization=authorization, key="42")
    assert status == 403 and "Request blocked" in body


def test_a_blocked_address_is_blocked(served):
    status, body = through_edge(served[2], source=BLOCKED, key="42")
    assert status == 403 and "Request blocked" in body


def test_without_forwarded_for_the_caller_is_loopback_and_blocked(served):
    status, _ = get(served[2].edge_url, {"Authorization": SERVE_AUTHORIZATION}, key="42")
    assert status == 403


def test_the_api_itself_wants_its_key(served):
    config, session, path = served
    assert get(path.invoke_url, key="42") == (403, '{"message": "Forbidden"}')
    assert get(path.invoke_url, {"x-api-key": "not-the-key-0123456789"}, key="42")[0] == 403
    status, body = get(path.invoke_url, {"x-api-key": api_key_value(config, session)}, key="42")
    assert status == 200 and len(json.loads(body)["items"]) == 2


def test_every_row_of_verify_local_holds(served):
    config, session, path = served
    rows = walls.check(serving.local_target(path, config, session))
    assert [r.wall for r in rows] == ["caller address", "WAF + API + function", "function: no rows", "API validator",
                                      "WAF: Authorization", "WAF: source address", "API key", "API key"]
    assert all(r.ok for r in rows), rows
    assert not any(SERVE_AUTHORIZATION in f"{r}" for r in rows)


@contextmanager
def ip_set_changed(config, session, addresses):
    waf = session.client("wafv2", region_name="us-east-1")
    summary = next(s for s in waf.list_ip_sets(Scope="CLOUDFRONT")["IPSets"]
                   if s["Name"] == f"{config.stack.name}-ipv4")
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
def rate_limit_changed(config, session, limit):
    """The per-caller rule's limit set in the emulator (as an operator's console edit would), then restored."""
    waf = session.client("wafv2", region_name="us-east-1")
    summary = next(a for a in waf.list_web_acls(Scope="CLOUDFRONT")["WebACLs"] if a["Name"] == config.stack.name)

    def put(value):
        got = waf.get_web_acl(Name=summary["Name"], Scope="CLOUDFRONT", Id=summary["Id"])
        acl = got["WebACL"]
        rules = [{**r, "Statement": {"RateBasedStatement": {**r["Statement"]["RateBasedStatement"], "Limit": value}}}
                 if "RateBasedStatement" in r["Statement"] else r for r in acl["Rules"]]
        waf.update_web_acl(Name=summary["Name"], Scope="CLOUDFRONT", Id=summary["Id"], LockToken=got["LockToken"],
                           DefaultAction=acl["DefaultAction"], Rules=rules, VisibilityConfig=acl["VisibilityConfig"],
                           CustomResponseBodies=acl["CustomResponseBodies"])
        return next(r for r in acl["Rules"] if "RateBasedStatement" in r["Statement"])
    before = put(limit)["Statement"]["RateBasedStatement"]["Limit"]
    try:
        yield
    finally:
        put(before)


def test_a_caller_over_the_per_caller_limit_gets_429_and_the_others_do_not(served):
    config, session, path = served
    runaway, other = "203.0.113.201", "203.0.113.202"  # within the example's allowed range, used by no other test
    with rate_limit_changed(config, session, 10):
        statuses = [through_edge(path, source=runaway, key="7")[0] for _ in range(11)]
        status, body = through_edge(path, source=runaway, key="7")
        assert statuses == [200] * 10 + [429]
        assert status == 429 and "Too many requests from this address" in json.loads(body)["message"]
        assert through_edge(path, source=other, key="7")[0] == 200


@contextmanager
def throttle_changed(config, session, rate, burst):
    apigw = session.client("apigateway", region_name=config.stack.region)
    plan = next(p for p in apigw.get_usage_plans()["items"] if p["name"] == config.stack.name)

    def put(throttle):
        apigw.update_usage_plan(usagePlanId=plan["id"], patchOperations=[
            {"op": "replace", "path": "/throttle/rateLimit", "value": f"{throttle['rateLimit']:g}"},
            {"op": "replace", "path": "/throttle/burstLimit", "value": str(throttle["burstLimit"])}])
    put({"rateLimit": rate, "burstLimit": burst})
    try:
        yield
    finally:
        put(plan["throttle"])


def test_past_the_usage_plans_burst_every_caller_gets_429_from_the_api(served):
    """A burst of 1 refilled once a second (moto takes only a whole rate): five calls at once outrun it."""
    config, session, path = served
    with throttle_changed(config, session, 1, 1):
        statuses = [through_edge(path, source=f"203.0.113.{210 + i}", key="7") for i in range(5)]
    assert statuses[0][0] == 200 and {s for s, _ in statuses} == {200, 429}, statuses
    assert json.loads(next(b for s, b in statuses if s == 429)) == {"message": "Too Many Requests"}


def test_the_throttle_is_a_token_bucket_per_key():
    from provision.local.api_stand_in import Throttles
    clock = Clock()
    throttles, plan = Throttles(clock), {"id": "p1", "throttle": {"rateLimit": 2.0, "burstLimit": 3}}
    assert [throttles.take(plan, "k1") for _ in range(4)] == [True, True, True, False]
    assert throttles.take(plan, "k2")  # another key, another bucket
    clock.now += 0.5  # one token back at 2 per second
    assert [throttles.take(plan, "k1") for _ in range(2)] == [True, False]
    assert all(throttles.take({"id": "p2"}, "k1") for _ in range(10))  # no throttle on the plan


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


# ---- the evaluators on their own: WAF statements and API Gateway's template functions ----

from provision.local import vtl, waf_eval  # noqa: E402

SET_V4 = "arn:aws:wafv2:us-east-1:123456789012:global/ipset/demo-ipv4/1"
SET_V6 = "arn:aws:wafv2:us-east-1:123456789012:global/ipset/demo-ipv6/2"
SETS = {SET_V4: ["203.0.113.0/24"], SET_V6: ["2001:db8::/32"]}


def header_match(value, constraint="EXACTLY", transformations=("NONE",), name="authorization"):
    return {"ByteMatchStatement": {"SearchString": value.encode(), "FieldToMatch": {"SingleHeader": {"Name": name}},
                                   "PositionalConstraint": constraint,
                                   "TextTransformations": [{"Priority": i, "Type": t}
                                                           for i, t in enumerate(transformations)]}}


def request(source="203.0.113.10", **headers):
    return waf_eval.Request(source, "GET", "/items", "key=42", {k.lower(): v for k, v in headers.items()})


def the_toolkits_acl(secret="Bearer s3cret"):
    sources = {"OrStatement": {"Statements": [{"IPSetReferenceStatement": {"ARN": SET_V4}},
                                              {"IPSetReferenceStatement": {"ARN": SET_V6}}]}}
    return {"DefaultAction": {"Block": {}}, "Rules": [
        {"Name": "allow-listed-callers", "Priority": 0, "Action": {"Allow": {}},
         "Statement": {"AndStatement": {"Statements": [sources, header_match(secret)]}}}]}


@pytest.mark.parametrize("source, authorization, action", [
    ("203.0.113.10", "Bearer s3cret", "Allow"),
    ("2001:db8::1", "Bearer s3cret", "Allow"),
    ("203.0.114.10", "Bearer s3cret", "Block"),
    ("2001:db9::1", "Bearer s3cret", "Block"),
    ("203.0.113.10", "bearer s3cret", "Block"),
    ("203.0.113.10", "Bearer s3cret ", "Block"),
    ("203.0.113.10", "Bearer s3cre", "Block"),
    ("203.0.113.10", None, "Block"),
])
def test_the_toolkits_rule_allows_listed_sources_with_the_exact_header(source, authorization, action):
    headers = {"Authorization": authorization} if authorization is not None else {}
    verdict = waf_eval.evaluate(the_toolkits_acl(), request(source, **headers), SETS.__getitem__)
    assert verdict.action == action


@pytest.mark.parametrize("constraint, transformations, value, matched", [
    ("STARTS_WITH", ("NONE",), "Bearer abc", True),
    ("ENDS_WITH", ("NONE",), "x-Bearer", True),
    ("ENDS_WITH", ("NONE",), "Bearer-x", False),
    ("CONTAINS", ("NONE",), "say Bearer now", True),
    ("CONTAINS_WORD", ("NONE",), "say Bearer now", True),
    ("CONTAINS_WORD", ("NONE",), "sayBearer now", False),
    ("EXACTLY", ("LOWERCASE",), "BEARER", False),  # the search string is not transformed
    ("EXACTLY", ("URL_DECODE",), "Bearer", True),
    ("EXACTLY", ("URL_DECODE",), "Bear%65r", True),
    ("EXACTLY", ("COMPRESS_WHITE_SPACE",), "Bearer", True),
])
def test_byte_match_constraints_and_transformations(constraint, transformations, value, matched):
    statement = header_match("Bearer", constraint, transformations)
    assert waf_eval.matches(statement, request(Authorization=value), SETS.__getitem__) is matched


def test_lowercase_applies_to_the_field_before_comparing():
    statement = header_match("bearer x", "EXACTLY", ("LOWERCASE", "COMPRESS_WHITE_SPACE"))
    assert waf_eval.matches(statement, request(Authorization="BEARER   X"), SETS.__getitem__)


def test_not_statement_count_rules_and_priorities():
    acl = {"DefaultAction": {"Allow": {}}, "Rules": [
        {"Name": "later", "Priority": 5, "Action": {"Block": {}}, "Statement": header_match("x", name="x-a")},
        {"Name": "counted", "Priority": 1, "Action": {"Count": {}}, "Statement": header_match("x", name="x-a")},
        {"Name": "first", "Priority": 2, "Action": {"Allow": {}},
         "Statement": {"NotStatement": {"Statement": {"IPSetReferenceStatement": {"ARN": SET_V4}}}}}]}
    assert waf_eval.evaluate(acl, request("198.51.100.1", **{"x-a": "x"}), SETS.__getitem__).rule == "first"
    assert waf_eval.evaluate(acl, request(**{"x-a": "x"}), SETS.__getitem__).rule == "later"
    assert waf_eval.evaluate(acl, request(), SETS.__getitem__) == waf_eval.Verdict("Allow", None)


def rate_limited(limit=3, window=60, scope=None):
    statement = {"Limit": limit, "AggregateKeyType": "IP", "EvaluationWindowSec": window,
                 **({"ScopeDownStatement": scope} if scope else {})}
    return {"DefaultAction": {"Allow": {}}, "Rules": [
        {"Name": "per-caller-limit", "Priority": 0, "Statement": {"RateBasedStatement": statement},
         "Action": {"Block": {"CustomResponse": {"ResponseCode": 429, "CustomResponseBodyKey": "slow"}}}}]}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_rate_rule_blocks_an_address_over_its_limit_until_the_window_passes():
    clock = Clock()
    rates, acl = waf_eval.Rates(clock), rate_limited(limit=3, window=60)
    verdicts = [waf_eval.evaluate(acl, request("203.0.113.10"), SETS.__getitem__, rates) for _ in range(5)]
    assert [v.action for v in verdicts] == ["Allow"] * 3 + ["Block"] * 2
    assert verdicts[-1].custom == {"ResponseCode": 429, "CustomResponseBodyKey": "slow"}
    assert waf_eval.evaluate(acl, request("203.0.113.11"), SETS.__getitem__, rates).action == "Allow"  # per address
    clock.now += 61
    assert waf_eval.evaluate(acl, request("203.0.113.10"), SETS.__getitem__, rates).action == "Allow"


def test_the_rate_rule_counts_only_what_its_scope_down_statement_matches():
    rates, acl = waf_eval.Rates(Clock()), rate_limited(limit=1, scope=header_match("x", name="x-a"))
    unscoped = [waf_eval.evaluate(acl, request(), SETS.__getitem__, rates).action for _ in range(3)]
    scoped = [waf_eval.evaluate(acl, request(**{"x-a": "x"}), SETS.__getitem__, rates).action for _ in range(2)]
    assert (unscoped, scoped) == (["Allow"] * 3, ["Allow", "Block"])


def test_a_rate_rule_by_anything_but_the_source_ip_is_said_not_guessed():
    acl = rate_limited()
    acl["Rules"][0]["Statement"]["RateBasedStatement"]["AggregateKeyType"] = "FORWARDED_IP"
    with pytest.raises(waf_eval.Unsupported, match="rate-based"):
        waf_eval.evaluate(acl, request(), SETS.__getitem__, waf_eval.Rates())


def test_an_unknown_statement_is_said_not_guessed():
    with pytest.raises(waf_eval.Unsupported, match="RateBasedStatement"):
        waf_eval.matches({"RateBasedStatement": {"Limit": 100}}, request(), SETS.__getitem__)


@pytest.mark.parametrize("text, escaped", [
    ("plain", "plain"),
    ("it's", "it\\'s"),
    ('say "hi"', 'say \\"hi\\"'),
    ("back\\slash", "back\\\\slash"),
    ("</script>", "<\\/script>"),
    ("tab\tnew\nline\r\x01", "tab\\tnew\\nline\\r\\u0001"),
    ("caf\u00e9 \u65e5", "caf\\u00E9 \\u65E5"),
    ("\U0001F600", "\\uD83D\\uDE00"),  # UTF-16 code units, as Java sees the string
    ("\x7f", "\x7f"),
])
def test_escape_javascript_is_commons_langs(text, escaped):
    assert vtl.escape_javascript(text) == escaped


def test_the_template_reads_params_in_api_gateways_order_and_the_source_ip():
    template = ('{"a": "$input.params(\'a\')", "b": "$input.params(\'b\')", "missing": "$input.params(\'zz\')", '
                '"ip": "$context.identity.sourceIp"}')
    rendered = vtl.render(template, vtl.Input("", {"a": "from-path"}, {"a": "from-query", "b": "q"}, {"b": "h"}),
                          {"identity": {"sourceIp": "127.0.0.1"}})
    assert json.loads(rendered) == {"a": "from-path", "b": "q", "missing": "", "ip": "127.0.0.1"}


def test_the_toolkits_error_template_quotes_the_message_as_json():
    from provision.steps.api import ERROR_BODY

    body = json.dumps({"errorMessage": '[NotFound] "quoted" \u00e9', "errorType": "NotFound"})
    assert json.loads(vtl.render(ERROR_BODY, vtl.Input(body), {})) == {"message": '[NotFound] "quoted" \u00e9'}


def test_the_edge_forwards_the_callers_address_as_cloudfront_does(served, monkeypatch):
    """CloudFront appends the viewer's address to the X-Forwarded-For the viewer sent; the function logs that
    entry as the caller and API Gateway's sourceIp (here the local edge, 127.0.0.1) as the edge."""
    path = served[2]
    events = []
    invoke = path.function.invoke
    monkeypatch.setattr(path.function, "invoke", lambda env, event: (events.append(event), invoke(env, event))[1])
    status, _ = through_edge(path, source=f"{ALLOWED}, 10.1.2.3", key="42")
    assert status == 200
    [event] = events
    assert event["forwardedFor"] == f"{ALLOWED}, 10.1.2.3, {ALLOWED}" and event["sourceIp"] == "127.0.0.1"
    assert path.function.module.caller_address(event["forwardedFor"]) == ALLOWED
