"""The edge steps' independent calls go out together, and AWS's order holds (issue 18).

A recorder on botocore's before-call / after-call events (the calls of one session) keeps every
call's start and end in the order they happened. Calls that must be in flight at once meet at a
threading.Barrier before they are sent: done one after another, the first waits alone, the barrier
breaks and the call fails, so these tests fail on a step that waits for one answer before the next
question, never on time. An order AWS needs (a delivery deleted before its source; the IP sets
before the web ACL that names them) is read from the recorded order: every end of the first before
any start of the second.
"""
import threading
from collections import Counter
from dataclasses import replace

import boto3
import pytest

from provision import config as config_module, lease
from provision.clients import PACE_SECONDS
from provision.errors import UndeclaredRead
from provision.steps import cloudfront, cloudfront_logging, waf, waf_logging
from tests.edge_support import DOMAIN, edge, edge_prerequisites, make_key, put_state
from tests.support import Run, quiet_context, run_once

V4, V6 = "203.0.113.0/24", "2001:db8::/32"
DISTRIBUTION_ARN = "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE"


class Recorder:
    """Every call of a session: ("start" | "end", service, operation), in the order they happened.

    meet: groups of (service, operation) pairs, a pair repeated as often as calls of it must meet; the
    calls of a group wait at the group's barrier for each other before they are sent (a barrier broken
    after 10 s fails the call). A call joins the first group that still waits for one of its kind.
    """

    def __init__(self, session, meet=()):
        self.events: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._groups = [(Counter(group), threading.Barrier(len(group), timeout=10)) for group in meet]
        session.events.register("before-call", self._before)
        session.events.register("after-call", self._after)
        session.events.register("after-call-error", self._after)

    def _before(self, model, **_):
        key = (model.service_model.service_name, model.name)
        with self._lock:
            self.events.append(("start", *key))
            barrier = next((barrier for waiting, barrier in self._groups if waiting[key] > 0), None)
            for waiting, group_barrier in self._groups:
                if group_barrier is barrier:
                    waiting[key] -= 1
        if barrier is not None:
            barrier.wait()

    def _after(self, model, **_):
        with self._lock:
            self.events.append(("end", model.service_model.service_name, model.name))

    def ops(self, service: str | None = None) -> list[str]:
        return [op for kind, svc, op in self.events if kind == "start" and service in (None, svc)]

    def _at(self, kind: str, op: str) -> list[int]:
        return [i for i, (k, _, o) in enumerate(self.events) if k == kind and o == op]

    def before(self, first: str, then: str) -> bool:
        """Every call of ``first`` had its answer before any call of ``then`` was sent (both were made)."""
        ends, starts = self._at("end", first), self._at("start", then)
        return bool(ends) and bool(starts) and max(ends) < min(starts)


def recording(cfg, meet=(), planning=False):
    session = boto3.Session()
    recorder = Recorder(session, meet)
    return quiet_context(cfg, planning=planning, session=session), recorder


@pytest.fixture
def cfg(aws, write_config):
    return config_module.load(write_config({"access": {"allowed_cidrs": [V4, V6]}}))


@pytest.fixture
def prerequisites(cfg):
    """API, key, certificate and web ACL made, and their ids in the state file (as test_cloudfront.py)."""
    edge_prerequisites(cfg)


def the_header_value(distribution_id):
    config = edge("cloudfront").get_distribution_config(Id=distribution_id)["DistributionConfig"]
    return config["Origins"]["Items"][0]["CustomHeaders"]["Items"][0]["HeaderValue"]


# --- cloudfront -----------------------------------------------------------------------------


def test_a_cloudfront_no_op_asks_its_four_questions_at_once_and_changes_nothing(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    ctx, calls = recording(cfg, meet=[[("cloudfront", "GetDistribution"), ("cloudfront", "ListTagsForResource"),
                                       ("acm", "DescribeCertificate"), ("apigateway", "GetApiKey")]])
    cloudfront.ensure(ctx)
    assert sorted(calls.ops()) == ["DescribeCertificate", "GetApiKey", "GetDistribution", "ListTagsForResource"]
    assert ctx.clients.calls.changing == 0 and ctx.report.changes == []


def test_what_observe_saw_serves_ensure_and_a_hint_gone_stale_is_read_again(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    distribution_id = quiet_context(cfg).state.get("cloudfront")["distribution_id"]
    seen = cloudfront.observe(quiet_context(cfg))

    ctx, calls = recording(cfg)
    cloudfront.ensure(ctx, seen=seen)
    assert calls.ops() == []  # nothing left to ask: the state names the certificate and key observe read

    new_id, new_value = make_key("demo-rotated")  # the api step made a new key after the early observe
    put_state(cfg, api={"api_key_id": new_id})
    ctx, calls = recording(cfg)
    cloudfront.ensure(ctx, seen=seen)
    assert calls.ops() == ["GetApiKey", "UpdateDistribution", "GetDistribution"]  # the key read again, once
    assert the_header_value(distribution_id) == new_value


def test_a_certificate_seen_pending_early_is_read_again_once_the_wait_for_it_is_over(cfg, prerequisites):
    """certificate_issued waits for ISSUED without a change, so an early look from before the wait is kept."""
    seen = replace(cloudfront.observe(quiet_context(cfg)), certificate_status="PENDING_VALIDATION")
    ctx, calls = recording(cfg)
    cloudfront.ensure(ctx, seen=seen)  # no "not ISSUED" stop: the status is asked again
    assert calls.ops()[0] == "DescribeCertificate" and calls.ops().count("DescribeCertificate") == 1
    assert ctx.report.changes == [("create", f"distribution for {DOMAIN}")]


def test_cloudfront_teardown_reads_at_once_then_disables_waits_and_deletes_in_order(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    ctx, calls = recording(cfg, meet=[[("cloudfront", "GetDistribution"), ("cloudfront", "ListTagsForResource"),
                                       ("cloudfront", "ListDistributions")]])
    cloudfront.destroy(ctx)
    assert edge("cloudfront").list_distributions()["DistributionList"].get("Items") is None
    assert calls.ops()[3:] == ["UpdateDistribution", "GetDistribution", "DeleteDistribution"]
    assert calls.before("UpdateDistribution", "DeleteDistribution")
    assert "GetDistributionConfig" not in calls.ops()  # GetDistribution's answer holds the config and ETag


def test_two_distributions_of_the_stack_are_torn_down_side_by_side(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    [first] = edge("cloudfront").list_distributions()["DistributionList"]["Items"]
    config = edge("cloudfront").get_distribution_config(Id=first["Id"])["DistributionConfig"]
    config = {**cloudfront._sendable(config), "CallerReference": "a stray second one", "Aliases": {"Quantity": 0}}
    edge("cloudfront").create_distribution_with_tags(DistributionConfigWithTags={
        "DistributionConfig": config, "Tags": {"Items": quiet_context(cfg).tag_list}})

    ctx, calls = recording(cfg, meet=[[("cloudfront", "UpdateDistribution")] * 2])
    cloudfront.destroy(ctx)
    assert calls.ops().count("DeleteDistribution") == 2
    assert edge("cloudfront").list_distributions()["DistributionList"].get("Items") is None


# --- waf ------------------------------------------------------------------------------------


def test_waf_creates_its_ip_sets_a_second_apart_and_the_acl_after_them(cfg):
    """WAF allows one call per second of each Create, Put or Update action (provision/clients.py, PACED):
    the second CreateIPSet waits its turn, on the run's sleep."""
    ctx, calls = recording(cfg)
    waf.ensure(ctx)
    assert calls.ops()[:2] == ["ListIPSets", "ListWebACLs"] or calls.ops()[:2] == ["ListWebACLs", "ListIPSets"]
    first_end = calls._at("end", "CreateIPSet")[0]
    assert len(calls._at("start", "CreateIPSet")) == 2 and first_end < calls._at("start", "CreateIPSet")[1]
    assert any(PACE_SECONDS - 0.5 < slept <= PACE_SECONDS for slept in ctx.sleep), ctx.sleep
    assert calls.before("CreateIPSet", "CreateWebACL")
    [acl] = edge("wafv2").list_web_acls(Scope="CLOUDFRONT")["WebACLs"]
    got = edge("wafv2").get_web_acl(Name=acl["Name"], Scope="CLOUDFRONT", Id=acl["Id"])["WebACL"]
    allow = next(r for r in got["Rules"] if r["Name"] == "allow-listed-callers")
    source = allow["Statement"]["AndStatement"]["Statements"][0]["OrStatement"]["Statements"]
    sets = {s["Name"]: s["ARN"] for s in edge("wafv2").list_ip_sets(Scope="CLOUDFRONT")["IPSets"]}
    assert sorted(s["IPSetReferenceStatement"]["ARN"] for s in source) == sorted(sets.values())


def test_a_waf_no_op_lists_at_once_then_reads_everything_found_at_once(cfg):
    run_once(cfg, waf.ensure)
    ctx, calls = recording(cfg, meet=[[("wafv2", "ListIPSets"), ("wafv2", "ListWebACLs"),
                                       *[("wafv2", "ListTagsForResource")] * 3],  # tags by the recorded ARNs
                                      [*[("wafv2", "GetIPSet")] * 2, ("wafv2", "GetWebACL")]])
    waf.ensure(ctx)
    assert len(calls.ops()) == 8
    assert calls.before("ListIPSets", "GetIPSet") and calls.before("ListWebACLs", "GetWebACL")
    assert ctx.clients.calls.changing == 0 and ctx.report.changes == []


def test_recorded_arns_that_no_longer_name_the_resources_cost_a_lookup_not_a_mistake(cfg):
    run_once(cfg, waf.ensure)
    [acl] = edge("wafv2").list_web_acls(Scope="CLOUDFRONT")["WebACLs"]
    gone = acl["ARN"].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    put_state(cfg, waf={"web_acl_arn": gone, "ipv4_set_arn": None, "ipv6_set_arn": None})
    ctx, calls = recording(cfg)
    waf.ensure(ctx)
    assert ctx.clients.calls.changing == 0
    assert calls.ops().count("ListTagsForResource") == 4  # the recorded one (gone), then the three listed
    assert ctx.state.get("waf")["web_acl_arn"] == acl["ARN"]


def test_waf_teardown_deletes_the_acl_first_then_both_ip_sets_at_once(cfg):
    run_once(cfg, waf.ensure)
    ctx, calls = recording(cfg, meet=[[("wafv2", "DeleteIPSet")] * 2])
    waf.destroy(ctx)
    assert calls.before("DeleteWebACL", "DeleteIPSet")
    assert "GetIPSet" not in calls.ops() and "GetWebACL" not in calls.ops()  # the listing's lock tokens serve
    assert edge("wafv2").list_ip_sets(Scope="CLOUDFRONT")["IPSets"] == []
    assert edge("wafv2").list_web_acls(Scope="CLOUDFRONT")["WebACLs"] == []


def test_a_foreign_ip_set_stops_the_deploy_before_any_change(cfg):
    edge("wafv2").create_ip_set(Name="demo-ipv6", Scope="CLOUDFRONT", IPAddressVersion="IPV6", Addresses=[V6])
    ctx, calls = recording(cfg)
    with pytest.raises(Exception, match="IP set demo-ipv6 exists .* not tagged as stack demo's"):
        waf.ensure(ctx)
    assert ctx.clients.calls.changing == 0  # not even the IPv4 set, though it was free to make


# --- cloudfront_logging ---------------------------------------------------------------------


def test_cloudfront_logging_deploy_keeps_the_order_the_delivery_needs(cfg):
    put_state(cfg, cloudfront={"arn": DISTRIBUTION_ARN})
    ctx, calls = recording(cfg, meet=[[("logs", "DescribeLogGroups"), ("logs", "ListTagsForResource"),
                                       ("logs", "DescribeDeliveries"), ("logs", "GetDeliverySource"),
                                       ("logs", "GetDeliveryDestination")],
                                      [("logs", "CreateLogGroup"), ("logs", "PutDeliverySource")]])
    cloudfront_logging.ensure(ctx)
    assert calls.before("CreateLogGroup", "PutDeliveryDestination")  # the destination names the group
    assert calls.before("PutDeliverySource", "CreateDelivery") and calls.before("PutDeliveryDestination",
                                                                                 "CreateDelivery")
    [delivery] = boto3.client("logs", region_name="us-east-1").describe_deliveries()["deliveries"]
    assert delivery["deliverySourceName"] == "demo-cloudfront"


def test_a_cloudfront_logging_no_op_asks_at_once_and_changes_nothing(cfg):
    put_state(cfg, cloudfront={"arn": DISTRIBUTION_ARN})
    run_once(cfg, cloudfront_logging.ensure)
    ctx, calls = recording(cfg, meet=[[("logs", "DescribeLogGroups"), ("logs", "ListTagsForResource"),
                                       ("logs", "DescribeDeliveries"), ("logs", "GetDeliverySource"),
                                       ("logs", "GetDeliveryDestination")]])
    cloudfront_logging.ensure(ctx)
    assert len(calls.ops("logs")) == 5
    assert ctx.clients.calls.changing == 0 and ctx.report.changes == []


def test_cloudfront_logging_teardown_deletes_the_delivery_then_the_rest_at_once(cfg, aws_rules):
    from tests import aws_rules as rules

    aws_rules(rules.delivery_parts_in_use_cannot_be_deleted())
    put_state(cfg, cloudfront={"arn": DISTRIBUTION_ARN})
    run_once(cfg, cloudfront_logging.ensure)
    ctx, calls = recording(cfg, meet=[[("logs", "DeleteDeliverySource"), ("logs", "DeleteDeliveryDestination"),
                                       ("logs", "DeleteLogGroup")]])
    cloudfront_logging.destroy(ctx)
    for then in ("DeleteDeliverySource", "DeleteDeliveryDestination", "DeleteLogGroup"):
        assert calls.before("DeleteDelivery", then), then
    logs = boto3.client("logs", region_name="us-east-1")
    assert logs.describe_deliveries()["deliveries"] == [] and logs.describe_delivery_sources()["deliverySources"] == []
    assert logs.describe_log_groups(logGroupNamePrefix="/aws/cloudfront/demo")["logGroups"] == []


# --- waf_logging ----------------------------------------------------------------------------


@pytest.mark.lenient("operator_policy", reason="the state is pointed at a web ACL of another name, which the "
                     "operator's policy rightly does not cover; the test is about which reads go out")
def test_waf_logging_reads_the_hinted_acl_beside_the_group_and_again_when_the_acl_changed(cfg):
    run_once(cfg, waf.ensure, waf_logging.ensure)
    early, calls = recording(cfg, meet=[[("logs", "DescribeLogGroups"), ("logs", "ListTagsForResource"),
                                         ("wafv2", "GetLoggingConfiguration")]])
    early.state = early.state.view("waf_logging", frozenset())  # an early observe's window: its own state only
    seen = waf_logging.observe(early)
    assert seen.logging is not None  # the hinted ACL's logging, read beside the group

    other = edge("wafv2").create_web_acl(
        Name="other", Scope="CLOUDFRONT", DefaultAction={"Block": {}},
        VisibilityConfig={"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False, "MetricName": "o"},
    )["Summary"]["ARN"]
    put_state(cfg, waf={"web_acl_arn": other})  # the waf step now names another ACL than the hint
    ctx, calls = recording(cfg)
    waf_logging.ensure(ctx, seen=seen)
    assert calls.ops() == ["GetLoggingConfiguration", "PutLoggingConfiguration"]
    logged = edge("wafv2").get_logging_configuration(ResourceArn=other)["LoggingConfiguration"]
    assert logged["LogDestinationConfigs"][0].endswith(":log-group:aws-waf-logs-demo")


# --- every edge observe, as the runner calls it early ---------------------------------------


@pytest.mark.parametrize("step", [cloudfront, cloudfront_logging, waf, waf_logging])
def test_an_early_observe_reads_only_its_own_state_and_changes_nothing(cfg, prerequisites, step):
    run_once(cfg, cloudfront.ensure, cloudfront_logging.ensure, waf_logging.ensure)
    ctx = quiet_context(cfg)
    ctx.state = ctx.state.view(step.NAME, frozenset())
    step.observe(ctx)  # no UndeclaredRead
    assert ctx.report.changes == [] and ctx.clients.calls.changing == 0
    with pytest.raises(UndeclaredRead):
        ctx.state.get("api")


@pytest.mark.iam
def test_a_no_op_deploy_reads_each_edge_resource_once(load_seeded, hosted_zone, write_config):
    """Through the runner: the early observes' answers reach ensure, which asks nothing again; the logging
    steps' looks hold even on the stack's first deploy, where the steps they need made everything (sees_needs).
    The region's lease table is there, as an earlier run left it: a run that makes it waits for it to become
    ACTIVE (the eventual-consistency rule) and so looks again (commands/deploy.py), as tests/test_lease_lost.py
    shows."""
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    with lease.held(quiet_context(load_seeded(overrides)), "deploy"):
        pass
    path = write_config(overrides)
    first = Run("deploy", path)
    assert first.code == 0, first.text
    counts = Counter(first.calls)
    assert (counts["DescribeDeliveries"], counts["GetDeliveryDestination"], counts["GetLoggingConfiguration"]) \
        == (1, 1, 1), counts
    again = Run("deploy", path)
    assert again.code == 0 and again.text.rstrip().endswith("(0 changing)"), again.text
    counts = Counter(again.calls)
    assert (counts["GetDistribution"], counts["DescribeDeliveries"], counts["ListWebACLs"], counts["ListIPSets"],
            counts["GetLoggingConfiguration"], counts["GetDeliverySource"]) == (1, 1, 1, 1, 1, 1), counts
    assert "GetDistributionConfig" not in counts
    assert DOMAIN in again.text
