"""The edge as AWS runs it (issue 16): WAF sampling, /0 and useless ranges, IPv6 only with an IPv6 range,
error responses not cached. Each test switches on the rule (tests/aws_rules.py) that makes moto answer as
AWS does, and reads the result back with boto3."""
import datetime

import boto3
import pytest

from provision import cli, config as config_module
from provision.steps import cloudfront, domain_record, waf
from tests import aws_rules as rules
from tests.edge_support import DOMAIN, edge_prerequisites
from tests.support import SECRETS, Run, changing_ops, merged, printed, run_once, write_toml

V4, V6 = "203.0.113.0/24", "2001:db8::/32"
SECRET = SECRETS["TEST_AUTHORIZATION"]


def wafv2():
    return boto3.client("wafv2", region_name="us-east-1")


def cidrs(*values):
    return {"access": {"allowed_cidrs": list(values)}}


def the_acl():
    [summary] = wafv2().list_web_acls(Scope="CLOUDFRONT")["WebACLs"]
    got = wafv2().get_web_acl(Name=summary["Name"], Scope="CLOUDFRONT", Id=summary["Id"])
    return got["WebACL"], got["LockToken"], summary["Id"]


def sampled_values(acl) -> list[str]:
    """Every header value GetSampledRequests shows, for the rule and for the default action."""
    now = datetime.datetime.now(datetime.timezone.utc)
    window = {"StartTime": now - datetime.timedelta(hours=3), "EndTime": now}
    values = []
    for metric in [r["VisibilityConfig"]["MetricName"] for r in acl["Rules"]] + ["Default_Action"]:
        got = wafv2().get_sampled_requests(WebAclArn=acl["ARN"], RuleMetricName=metric, Scope="CLOUDFRONT",
                                           TimeWindow=window, MaxItems=100)
        values += [h["Value"] for s in got["SampledRequests"] for h in s["Request"]["Headers"]]
    return values


# --- WAF: sampled requests ------------------------------------------------------------------


def test_sampled_requests_never_show_the_authorization_value(aws_rules, aws, write_config):
    """An ACL left by an earlier deploy samples (the rule shows the secret, as AWS would); the deploy turns
    sampling off on the rule and on the ACL, read back, and the samples are then empty."""
    sampling = aws_rules(rules.waf_sampled_requests(SECRET))
    cfg = config_module.load(write_config())
    run_once(cfg, waf.ensure)
    acl, token, acl_id = the_acl()
    on = {**acl["VisibilityConfig"], "SampledRequestsEnabled": True}
    acl_rules = [{**r, "VisibilityConfig": {**r["VisibilityConfig"], "SampledRequestsEnabled": True}}
                 for r in acl["Rules"]]
    wafv2().update_web_acl(Name=acl["Name"], Scope="CLOUDFRONT", Id=acl_id, LockToken=token,
                           DefaultAction=acl["DefaultAction"], Rules=acl_rules, VisibilityConfig=on)
    assert SECRET in sampled_values(the_acl()[0])  # what sampling on shows on AWS

    ctx = run_once(cfg, waf.ensure)
    assert changing_ops(ctx) == ["UpdateWebACL"]
    acl = the_acl()[0]
    assert acl["VisibilityConfig"]["SampledRequestsEnabled"] is False
    assert [r["VisibilityConfig"]["SampledRequestsEnabled"] for r in acl["Rules"]] == [False, False]
    assert acl["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True  # the metrics stay
    assert SECRET not in sampled_values(acl)
    assert len(sampling.seen) == 6  # two reads of three metrics: the two rules and the default action
    assert changing_ops(run_once(cfg, waf.ensure)) == []


# --- WAF: the ranges ------------------------------------------------------------------------


@pytest.mark.parametrize("zero", ["0.0.0.0/0", "::/0"])
def test_slash_zero_exits_2_before_any_aws_call(aws_rules, tmp_path, secrets, capsys, monkeypatch, zero):
    refuse = aws_rules(rules.waf_ip_sets_refuse_slash_zero())
    path = write_toml(tmp_path / "stack.toml", merged(cidrs(V4, zero)))

    def no_aws(*args, **kwargs):
        raise AssertionError("an AWS session was created for a bad config")

    monkeypatch.setattr("boto3.Session", no_aws)
    assert cli.main(["deploy", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"config error: access.allowed_cidrs[1]: '{zero}': WAF accepts every CIDR range "
                             "except /0")
    assert refuse.seen == []


def test_the_halves_of_everything_deploy_with_a_warning(aws_rules, aws, write_config):
    refuse = aws_rules(rules.waf_ip_sets_refuse_slash_zero())
    cfg = config_module.load(write_config(cidrs("0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1")))
    for version in (4, 6):
        assert any(w.startswith(f"access.allowed_cidrs: the IPv{version} ranges together cover every "
                                f"IPv{version} address") for w in cfg.warnings), cfg.warnings
    run_once(cfg, waf.ensure)
    assert refuse.seen == []  # AWS would have taken these IP sets
    assert len(wafv2().list_ip_sets(Scope="CLOUDFRONT")["IPSets"]) == 2


def test_the_rule_refuses_slash_zero_as_aws_does(aws_rules, aws):
    """The rule itself: without the config check, this is where a deploy would stop on AWS."""
    aws_rules(rules.waf_ip_sets_refuse_slash_zero())
    with pytest.raises(Exception) as err:
        wafv2().create_ip_set(Name="x", Scope="CLOUDFRONT", IPAddressVersion="IPV4", Addresses=["0.0.0.0/0"])
    assert err.value.response["Error"]["Code"] == "WAFInvalidParameterException"


@pytest.mark.parametrize("ranges, said", [
    (["10.0.0.0/8"], ["[0]: 10.0.0.0/8 is private", "no range holds a public address"]),
    (["127.0.0.0/8", V4], ["[0]: 127.0.0.0/8 is loopback"]),
    ([V4, "224.0.0.0/4"], ["[1]: 224.0.0.0/4 is multicast"]),
    (["169.254.0.0/16", "fe80::/10", V6], ["[0]: 169.254.0.0/16 is link-local", "[1]: fe80::/10 is link-local"]),
    (["fd00::/8", "::1/128"], ["[0]: fd00::/8 is private (unique local)", "[1]: ::1/128 is loopback",
                               "no range holds a public address"]),
    (["0.0.0.0/1", "128.0.0.0/1"], ["the IPv4 ranges together cover every IPv4 address"]),
    (["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/2"], ["the IPv4 ranges together cover every IPv4 address"]),
    (["0.0.0.0/1", V4], []),
    ([V4, V6, "198.51.100.7/32"], []),
])
def test_warnings_for_ranges_no_caller_can_match(aws, write_config, ranges, said):
    warnings = [w for w in config_module.load(write_config(cidrs(*ranges))).warnings
                if w.startswith("access.allowed_cidrs")]
    assert len(warnings) == len(said), warnings
    for warning, words in zip(warnings, said):
        assert warning.startswith("access.allowed_cidrs") and words in warning


# --- CloudFront and DNS -----------------------------------------------------------------------


@pytest.fixture
def edge_inputs(aws, write_config):
    """The API, key, certificate and web ACL the distribution needs, in the state (as test_cloudfront)."""
    def make(overrides):
        cfg = config_module.load(write_config(overrides))
        edge_prerequisites(cfg)
        return cfg
    return make


def distribution_config():
    [summary] = boto3.client("cloudfront").list_distributions()["DistributionList"]["Items"]
    return boto3.client("cloudfront").get_distribution_config(Id=summary["Id"])["DistributionConfig"]


def test_error_responses_are_not_cached(aws_rules, edge_inputs):
    quantities = aws_rules(rules.cloudfront_quantities_match())
    cfg = edge_inputs({})
    run_once(cfg, cloudfront.ensure)
    errors = distribution_config()["CustomErrorResponses"]
    assert {item["ErrorCode"]: item["ErrorCachingMinTTL"] for item in errors["Items"]} == {
        400: 0, 403: 0, 404: 0, 500: 0, 502: 0, 503: 0, 504: 0}
    assert errors["Quantity"] == 7
    assert [c.operation for c in quantities.seen] == []  # AWS would have taken the config
    assert changing_ops(run_once(cfg, cloudfront.ensure)) == []


def _deployed_under_the_quantities_rule(aws_rules, edge_inputs):
    """(config, CloudFront client, the one distribution's id, its config with ETag), the rule switched on."""
    aws_rules(rules.cloudfront_quantities_match())
    cfg = edge_inputs({})
    run_once(cfg, cloudfront.ensure)
    cf = boto3.client("cloudfront")
    [summary] = cf.list_distributions()["DistributionList"]["Items"]
    return cfg, cf, summary, cf.get_distribution_config(Id=summary["Id"])


def test_error_caching_set_by_hand_is_put_back(aws_rules, edge_inputs):
    cfg, cf, summary, got = _deployed_under_the_quantities_rule(aws_rules, edge_inputs)
    config = got["DistributionConfig"]
    config["CustomErrorResponses"] = {"Quantity": 1, "Items": [{"ErrorCode": 404, "ErrorCachingMinTTL": 300}]}
    config["DefaultCacheBehavior"] = {k: v for k, v in config["DefaultCacheBehavior"].items()
                                      if k not in cloudfront.LEGACY_CACHE_KEYS}
    cf.update_distribution(Id=summary["Id"], IfMatch=got["ETag"], DistributionConfig=config)

    ctx = run_once(cfg, cloudfront.ensure)
    assert ctx.report.changes == [("update", f"distribution {summary['Id']} (error caching)")]
    assert {i["ErrorCachingMinTTL"] for i in distribution_config()["CustomErrorResponses"]["Items"]} == {0}


def aaaa_answer(zone):
    """What a dual-stack caller's resolver gets for the domain's AAAA (rule route53_answers_cloudfront_aliases)."""
    return boto3.client("route53").test_dns_answer(HostedZoneId=zone, RecordName=DOMAIN,
                                                   RecordType="AAAA")["RecordData"]


def records(zone):
    listed = boto3.client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return sorted(r["Type"] for r in listed if r["Name"] == DOMAIN + ".")


def test_ipv6_only_with_an_ipv6_range_and_a_switch_removes_the_aaaa(aws_rules, edge_inputs, hosted_zone):
    """Dual-stack callers prefer IPv6: with an IPv4-only allow-list the name must give them no IPv6 address,
    or they arrive over IPv6 and are blocked. A deploy that drops the IPv6 range turns IPv6 off on the
    distribution and removes the AAAA alias; one that adds it back restores both."""
    aws_rules(rules.cloudfront_quantities_match(), rules.route53_answers_cloudfront_aliases())
    zone = {"domain": {"hosted_zone_id": hosted_zone}}
    dual = edge_inputs({**zone, **cidrs(V4, V6)})
    run_once(dual, cloudfront.ensure)
    run_once(dual, domain_record.ensure)
    assert distribution_config()["IsIPV6Enabled"] is True
    assert records(hosted_zone) == ["A", "AAAA"]
    assert aaaa_answer(hosted_zone) == ["2001:db8::10"]

    ipv4_only = config_module.load(_rewrite(dual, cidrs(V4)))
    steps = run_once(ipv4_only, lambda ctx: (cloudfront.ensure(ctx), domain_record.ensure(ctx)))
    distribution_id = steps.state.get("cloudfront")["distribution_id"]
    assert steps.report.changes == [("update", f"distribution {distribution_id} (IPv6)"),
                                    ("delete", f"DNS record {DOMAIN} AAAA")]
    assert distribution_config()["IsIPV6Enabled"] is False
    assert records(hosted_zone) == ["A"]
    assert aaaa_answer(hosted_zone) == []  # the caller asks for A next, and comes over IPv4
    again = run_once(ipv4_only, lambda ctx: (cloudfront.ensure(ctx), domain_record.ensure(ctx)))
    assert changing_ops(again) == []

    back = run_once(dual, lambda ctx: (cloudfront.ensure(ctx), domain_record.ensure(ctx)))
    assert [kind for kind, _ in back.report.changes] == ["update", "create"]
    assert records(hosted_zone) == ["A", "AAAA"] and aaaa_answer(hosted_zone) == ["2001:db8::10"]


def test_an_aaaa_record_that_is_not_the_stacks_is_left(aws_rules, edge_inputs, hosted_zone):
    cfg = edge_inputs({"domain": {"hosted_zone_id": hosted_zone}, **cidrs(V4)})
    run_once(cfg, cloudfront.ensure)
    boto3.client("route53").change_resource_record_sets(HostedZoneId=hosted_zone, ChangeBatch={"Changes": [{
        "Action": "UPSERT", "ResourceRecordSet": {"Name": DOMAIN, "Type": "AAAA", "TTL": 60,
                                                  "ResourceRecords": [{"Value": "2001:db8::99"}]}}]})
    ctx = run_once(cfg, domain_record.ensure)
    assert records(hosted_zone) == ["A", "AAAA"]
    assert f"Leaving DNS record {DOMAIN} AAAA: its value is not the one this stack wrote" in printed(ctx)


def _rewrite(cfg, overrides):
    """The same stack's config file with other [access] ranges (same directory, so the same state)."""
    import tomllib

    data = tomllib.loads(cfg.path.read_text(encoding="utf-8"))
    data["access"]["allowed_cidrs"] = overrides["access"]["allowed_cidrs"]
    return write_toml(cfg.path.parent / "narrowed.toml", data)


def test_the_quantities_rule_refuses_what_aws_refuses(aws_rules, edge_inputs):
    """The rule bites: a CustomErrorResponses whose Quantity is not its number of Items."""
    cfg, cf, summary, got = _deployed_under_the_quantities_rule(aws_rules, edge_inputs)
    config = {**got["DistributionConfig"], "CustomErrorResponses": {"Quantity": 2, "Items": [{"ErrorCode": 404}]}}
    with pytest.raises(Exception) as err:
        cf.update_distribution(Id=summary["Id"], IfMatch=got["ETag"], DistributionConfig=config)
    assert err.value.response["Error"]["Code"] == "InconsistentQuantities"


@pytest.mark.iam
def test_an_ipv4_only_stack_deploys_and_redeploys_with_no_change(aws_rules, load_seeded, hosted_zone, write_config):
    """The whole deploy with AWS's checks on (every Quantity, no /0): IPv6 off, no AAAA, errors not cached,
    sampling off; a second deploy makes 0 changing calls."""
    aws_rules(rules.cloudfront_quantities_match(), rules.waf_ip_sets_refuse_slash_zero(),
              rules.route53_answers_cloudfront_aliases())
    overrides = {"domain": {"hosted_zone_id": hosted_zone}, **cidrs(V4)}
    load_seeded(overrides)
    path = write_config(overrides)
    first = Run("deploy", path)
    assert first.code == 0, first.text
    config = distribution_config()
    assert config["IsIPV6Enabled"] is False
    assert {i["ErrorCachingMinTTL"] for i in config["CustomErrorResponses"]["Items"]} == {0}
    assert records(hosted_zone) == ["A"] and aaaa_answer(hosted_zone) == []
    acl = the_acl()[0]
    assert [acl["VisibilityConfig"]["SampledRequestsEnabled"]] + \
        [r["VisibilityConfig"]["SampledRequestsEnabled"] for r in acl["Rules"]] == [False, False, False]
    again = Run("deploy", path)
    assert again.code == 0 and again.text.rstrip().endswith("(0 changing)"), again.text
