"""The monthly estimate (``rds-edge-api cost``, the end of ``deploy --plan``): AWS's Price List API answered in
its own format (tests/price_list.py), each line checked against the figures the documents hold."""
import dataclasses
import json
import types
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from provision import cli, config as config_module
from provision.cost import estimate as estimating, prices, report
from tests.price_list import PriceList, access_denied, catalogue
from tests.support import Run, quiet_context

GB = 1024 * 1024
DPM = 365 / 12
KEPT = json.loads(prices.KEPT.read_text())


@pytest.fixture
def price_list():
    return PriceList(catalogue())


def priced(cfg, price_list, *, now=None, proxy=None, offline=None):
    """(estimate, book) for cfg with the price list answering through a fresh session."""
    session = boto3.Session()
    price_list.install(session)
    ctx = quiet_context(cfg, session=session)
    book = prices.load(ctx, now=now, offline=offline)
    return estimating.estimate(cfg, book, estimating.made(cfg), proxy), book


@pytest.fixture
def configured(aws, write_config):
    """configured(overrides) -> Config, nothing seeded (the estimate reads no AWS resource)."""
    made = []

    def load(overrides):
        made.append(1)
        return config_module.load(write_config(overrides, name=f"stack{len(made)}.toml"))
    return load


def line(result, start):
    [found] = [item for item in result.lines if item.name.startswith(start)]
    return found


def log_cost(requests, kb, ingest, retention):
    gb = requests * kb / GB
    return gb * ingest + gb * retention / DPM * 0.03


def test_each_line_is_priced_from_the_price_list_and_its_date_is_named(cfg, price_list):
    result, book = priced(cfg, price_list)
    assert book.published == "2026-11-20" and book.unreachable is None
    assert not (book.from_kept.keys() & book.used)
    waf = line(result, "WAF web ACL, 2 rules")  # the Allow rule and the per-caller limit
    assert waf.fixed == pytest.approx(5.5 + 2 * 1.1) and waf.at_traffic == pytest.approx(1e6 * 6.6e-7)
    assert line(result, "API Gateway").at_traffic == pytest.approx(3.7)
    assert line(result, "Lambda, arm64, 256 MB, 2 ms").at_traffic == pytest.approx(1e6 * 2.1e-7
                                                                                    + 1e6 * 0.002 * 0.25 * 1.4e-5)
    assert line(result, "CloudFront, HTTPS").at_traffic == 0  # within the always-free 10M requests and 1 TB
    assert line(result, "function log").at_traffic == pytest.approx(log_cost(1e6, 0.5, 0.57, 30))  # vended
    assert line(result, "API access log").at_traffic == pytest.approx(log_cost(1e6, 0.5, 0.57, 30))
    assert line(result, "WAF log").at_traffic == pytest.approx(log_cost(1e6, 1.5, 0.5, 30))  # us-east-1's
    assert line(result, "CloudFront log").at_traffic == pytest.approx(log_cost(1e6, 0.8, 0.5, 30))
    assert result.total == pytest.approx(sum(item.fixed + item.at_traffic for item in result.lines))
    asked = {f["Value"] for body in price_list.asked for f in body["Filters"] if f["Field"] == "regionCode"}
    assert asked == {"eu-west-1", "us-east-1"}
    assert price_list.hosts == {"api.pricing.eu-central-1.amazonaws.com"}  # the endpoint nearest eu-west-1


def test_a_changed_price_changes_the_estimate(cfg, price_list):
    before, _ = priced(cfg, price_list)
    price_list.price("EU-ApiGatewayRequest", 2)
    price_list.price("USE1-WebACLV2", 2)
    after, _ = priced(cfg, price_list, now=datetime.now(timezone.utc) + timedelta(days=2))  # the kept copy expired
    assert line(after, "API Gateway").at_traffic == pytest.approx(2 * 3.7)
    assert line(after, "WAF web ACL").fixed == pytest.approx(2 * 5.5 + 2 * 1.1)
    assert after.total - before.total == pytest.approx(3.7 + 5.5)


def test_doubling_the_traffic_doubles_what_grows_with_it(configured, price_list):
    one, _ = priced(configured({"cost": {"requests_per_month": 1_000_000}}), price_list)
    two, _ = priced(configured({"cost": {"requests_per_month": 2_000_000}}), price_list)
    assert two.fixed == one.fixed
    for a, b in zip(one.lines, two.lines):
        assert b.at_traffic == pytest.approx(2 * a.at_traffic), a.name
    assert two.total - one.total == pytest.approx(one.at_traffic)


def test_the_handler_time_and_memory_set_the_lambda_line(configured, price_list):
    result, _ = priced(configured({"cost": {"handler_ms": 9.2}, "function": {"memory_mb": 1024}}), price_list)
    lam = line(result, "Lambda, arm64, 1024 MB, 10 ms")  # Lambda bills whole milliseconds
    assert lam.at_traffic == pytest.approx(1e6 * 2.1e-7 + 1e6 * 0.010 * 1.0 * 1.4e-5)
    assert result.handler_ms == 9.2 and result.handler_source == "[cost] handler_ms"


def test_cloudfront_costs_only_beyond_its_free_tier(configured, price_list):
    result, book = priced(configured({"cost": {"requests_per_month": 30_000_000, "response_kb": 100}}), price_list)
    out_gb = 30e6 * 100 / GB  # 2,861 GB, of which 1,024 are free
    cloudfront = line(result, "CloudFront, HTTPS at its Europe edges")
    assert cloudfront.at_traffic == pytest.approx(20e6 * 1.2e-6 + (out_gb - 1024) * 0.086)
    assert cloudfront.per_million == pytest.approx(1.2e-6 * 1e6 + 1e6 * 100 / GB * 0.086)
    assert not book.from_kept  # the edge's requests by "location", its transfer by "fromLocation"


def test_a_longer_retention_raises_each_log_line_by_its_storage(configured, price_list):
    short, _ = priced(configured({"function": {"log_retention_days": 30}}), price_list)
    long, _ = priced(configured({"function": {"log_retention_days": 365}}), price_list)
    for a, b in zip(short.lines, long.lines):
        kb = {"function log": 0.5, "API access log": 0.5, "WAF log": 1.5, "CloudFront log": 0.8}.get(
            a.name.split(",")[0])
        grown = 1e6 * kb / GB * (365 - 30) / DPM * 0.03 if kb else 0
        assert b.at_traffic - a.at_traffic == pytest.approx(grown), a.name
    assert "kept 365 days" in line(long, "WAF log").name


def test_logs_switched_off_leave_the_estimate(configured, price_list):
    result, _ = priced(configured({"logs": {"api_access": False, "cloudfront": False}}), price_list)
    names = [item.name.split(",")[0] for item in result.lines]
    assert "API access log" not in names and "CloudFront log" not in names and "WAF log" in names


def with_proxy(cfg):
    """The config as [database] proxy = true makes it."""
    return dataclasses.replace(cfg, database=dataclasses.replace(cfg.database, proxy=True))


@pytest.mark.parametrize("instance_class, vcpus", [(None, 2), ("db.r6g.2xlarge", 8)])
def test_the_proxy_is_priced_per_vcpu_hour_of_the_instance_class(cfg, price_list, instance_class, vcpus):
    """None: the class DescribeDBInstances gives (the seeded db.t4g.micro); its vCPUs from the price list."""
    without, _ = priced(cfg, price_list)
    proxied = with_proxy(cfg)
    session = boto3.Session()
    price_list.install(session)
    ctx = quiet_context(proxied, session=session)
    book = prices.load(ctx)
    proxy = report._proxy(ctx, book, instance_class)
    assert (proxy.instance_class, proxy.vcpus, proxy.source) == (instance_class or "db.t4g.micro", vcpus,
                                                                  "the price list")
    kept = json.loads(prices.cache_path(ctx).read_text())
    assert kept["vcpus"] == {proxy.instance_class: vcpus} and kept["answers"]  # asked once a day, like the prices
    result = estimating.estimate(proxied, book, estimating.made(proxied), proxy)
    proxy_line = line(result, f"RDS Proxy, {proxy.instance_class}, {vcpus} vCPUs")
    assert proxy_line.fixed == pytest.approx(vcpus * 0.018 * 730) and proxy_line.at_traffic == 0
    assert result.total - without.total == pytest.approx(vcpus * 0.018 * 730)
    assert estimating.made(cfg).proxy is False


@pytest.mark.parametrize("region, endpoint, edge", [("eu-west-1", "eu-central-1", "Europe"),
                                                    ("us-west-2", "us-east-1", "United States"),
                                                    ("ca-central-1", "us-east-1", "United States"),
                                                    ("ap-northeast-1", "ap-south-1", "Japan"),
                                                    ("ap-southeast-1", "ap-south-1", "Asia Pacific")])
def test_the_nearest_price_list_endpoint_and_cloudfront_edge(region, endpoint, edge):
    """The Price List API's endpoints are the regions botocore knows for it; none other is ever asked."""
    assert set(prices.PRICING_REGIONS) == set(boto3.Session().get_available_regions("pricing"))
    assert (prices.pricing_region(region), prices.edge_location(region)) == (endpoint, edge)


def test_an_instance_class_rds_does_not_give_prices_the_proxy_at_its_minimum(cfg, price_list):
    proxied = with_proxy(cfg)
    proxied = dataclasses.replace(proxied, database=types.SimpleNamespace(**{**vars(proxied.database),
                                                                               "instance_id": "not-there"}))
    session = boto3.Session()
    price_list.install(session)
    ctx = quiet_context(proxied, session=session)
    book = prices.load(ctx)
    proxy = report._proxy(ctx, book, None)
    assert (proxy.instance_class, proxy.vcpus) == (None, 2)
    assert "DBInstanceNotFound" in proxy.source and "give --instance-class" in proxy.source
    result = estimating.estimate(proxied, book, estimating.made(proxied), proxy)
    assert line(result, "RDS Proxy, instance class unknown, 2 vCPUs").fixed == pytest.approx(2 * 0.018 * 730)


def test_without_the_price_list_vcpus_come_from_the_size():
    assert [prices.size_vcpus(c) for c in ("db.t4g.micro", "db.m6g.large", "db.r6g.xlarge", "db.r7g.4xlarge")] \
        == [2, 2, 4, 16]


def test_alarms_are_priced_per_alarm(cfg, price_list):
    result, book = priced(cfg, price_list)
    what = dataclasses.replace(estimating.made(cfg), alarms=5)
    alarms = line(estimating.estimate(cfg, book, what), "CloudWatch alarms (5)")
    assert (alarms.fixed, alarms.at_traffic) == (pytest.approx(5 * 0.11), 0)


def test_an_unreachable_price_list_gives_the_kept_table_with_a_note(cfg, price_list):
    price_list.failure = access_denied
    result, book = priced(cfg, price_list)
    assert "AccessDeniedException" in book.unreachable and book.cache is None
    assert line(result, "API Gateway").at_traffic == pytest.approx(KEPT["prices"]["AmazonApiGateway ApiGatewayRequest"]
                                                                   [0][2] * 1e6)
    assert not prices.cache_path(quiet_context(cfg)).exists()  # asked again next time
    offline, book = priced(cfg, price_list, offline="--local: the emulator has no price list")
    assert book.unreachable.startswith("--local") and offline.total == result.total


def test_prices_are_kept_a_day_beside_the_state(cfg, price_list):
    now = datetime.now(timezone.utc)
    priced(cfg, price_list, now=now)
    asked = len(price_list.asked)
    path = cfg.state_dir / f"prices-{cfg.stack.region}.json"
    assert asked and json.loads(path.read_text())["fetched_at"] == now.isoformat()
    price_list.price("EU-ApiGatewayRequest", 2)
    kept, _ = priced(cfg, price_list, now=now + timedelta(hours=23))
    assert len(price_list.asked) == asked and line(kept, "API Gateway").at_traffic == pytest.approx(3.7)
    fresh, _ = priced(cfg, price_list, now=now + timedelta(hours=25))
    assert len(price_list.asked) == 2 * asked and line(fresh, "API Gateway").at_traffic == pytest.approx(7.4)


def test_a_price_missing_or_implausible_comes_from_the_table_and_is_named(cfg, price_list):
    price_list.documents = [d for d in price_list.documents
                            if d["product"]["attributes"]["usagetype"] != "EU-ApiGatewayRequest"]
    price_list.price("USE1-RequestV2-Tier1", 1e6)  # as if it were per million requests: not this unit
    result, book = priced(cfg, price_list)
    kept = KEPT["prices"]
    assert line(result, "API Gateway").at_traffic == pytest.approx(kept["AmazonApiGateway ApiGatewayRequest"][0][2] * 1e6)
    assert line(result, "WAF web ACL").at_traffic == pytest.approx(kept["awswaf RequestV2-Tier1"][0][2] * 1e6)
    assert book.from_kept["AmazonApiGateway ApiGatewayRequest@eu-west-1"] == "not in the price list's answer"
    assert "more than 10 times" in book.from_kept["awswaf RequestV2-Tier1@us-east-1"]


def test_two_different_prices_for_one_usage_type_are_not_guessed_between(cfg, price_list):
    price_list.price("EU-Request-ARM", 1)
    twin = json.loads(json.dumps(next(d for d in price_list.documents
                                      if d["product"]["attributes"]["usagetype"] == "EU-Request-ARM")))
    twin["product"]["attributes"]["operation"] = "Other"
    next(iter(next(iter(twin["terms"]["OnDemand"].values()))["priceDimensions"].values()))["pricePerUnit"]["USD"] = "1"
    price_list.documents.append(twin)
    _, book = priced(cfg, price_list)
    assert book.from_kept["AWSLambda Request-ARM@eu-west-1"] == "the price list answers 2 different prices"


def test_cost_prints_the_table_the_traffic_and_the_prices_used(cfg, write_config, price_list):
    session = boto3.Session()
    price_list.install(session)
    run = Run("cost", cfg.path, session=session)
    code, text = run
    assert code == 0 and set(run.calls) == {"GetProducts"}  # nothing beyond the price list
    assert "Monthly estimate at 1,000,000 requests" in text and "published 2026-11-20" in text
    assert "1,000,000 requests a month ([cost] requests_per_month, the default)" in text
    assert "2 ms a request (an upper bound of bench/handler.py" in text and "Not counted: the database itself" in text
    assert "prices-eu-west-1.json" in text


def test_deploy_plan_ends_with_the_estimate(cfg, price_list):
    session = boto3.Session()
    price_list.install(session)
    run = Run("deploy", cfg.path, "--plan", session=session)
    assert run.code == 0 and not run.changing
    assert "Monthly estimate at 1,000,000 requests" in run.text and "published 2026-11-20" in run.text
    assert run.text.index("Monthly estimate") > run.text.index("CloudFront distribution")


def test_cost_without_credentials_says_the_table_was_used(cfg, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, text = Run("cost", cfg.path)
    assert code == 0
    assert f"the project's table of {KEPT['as_of']}" in text and "no AWS credentials found" in text


@pytest.mark.parametrize("key, value, problem", [
    ("requests_per_month", -1, "must be between 0 and 1,000,000,000,000"),
    ("requests_per_month", 1.5, "must be an integer, not a number"),
    ("response_kb", "big", "must be a number, not a string"),
    ("response_kb", 20000, "must be between 0 and 10,240"),
    ("handler_ms", 0, "must be between 1 and 29,000"),
    ("surprise", 1, "unknown key"),
])
def test_a_bad_cost_key_stops_before_any_aws_call(write_config, capsys, key, value, problem):
    path = write_config({"cost": {key: value}})
    assert cli.main(["cost", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"config error: cost.{key}: ") and problem in err and "\n" not in err


def test_a_bad_instance_class_is_a_usage_error(cfg, capsys):
    out = Run("cost", cfg.path, "--instance-class", "t4g micro")
    assert out.code == 2 and "is not a DB instance class" in out.text and not out.calls


@pytest.mark.iam
@pytest.mark.parametrize("logs", [{}, {"api_access": False, "cloudfront": False}])
def test_what_the_estimate_counts_is_what_a_deploy_makes(load_seeded, price_list, logs):
    """The lines restate the config (estimate.made): a deploy's log groups, web ACL rules and alarms, read back."""
    cfg = load_seeded({"logs": logs, "alerts": {"email": "ops@example.com"}})
    assert Run("deploy", cfg.path).code == 0
    what = estimating.made(cfg)
    groups = [g["logGroupName"] for region in (cfg.stack.region, "us-east-1")
              for g in boto3.client("logs", region_name=region).describe_log_groups()["logGroups"]]
    assert len(groups) == len(what.logs), groups
    waf = boto3.client("wafv2", region_name="us-east-1")
    [summary] = waf.list_web_acls(Scope="CLOUDFRONT")["WebACLs"]
    acl = waf.get_web_acl(Name=summary["Name"], Scope="CLOUDFRONT", Id=summary["Id"])["WebACL"]
    assert len(acl["Rules"]) == what.waf_rules
    alarms = [a for region in (cfg.stack.region, "us-east-1")
              for a in boto3.client("cloudwatch", region_name=region).describe_alarms()["MetricAlarms"]]
    assert len(alarms) == what.alarms
