"""Domain record step: alias A/AAAA records beside the validation MX (or a printed CNAME, and why it hurts)."""
import boto3
import pytest

from provision import config as config_module
from provision.aws import dns
from provision.errors import DeployError
from provision.steps import domain_record
from tests.support import printed, run_once

DOMAIN = "api.example.com"
TARGET = "d111111abcdef8.cloudfront.net"
MX = "10 inbound-smtp.us-east-1.amazonaws.com"


@pytest.fixture
def load(aws, write_config):
    """load(validation, zone, **domain) -> Config; this step needs none of the operator's VPC or RDS."""
    return lambda validation="email", zone=None, **domain: config_module.load(write_config(
        {"domain": {"validation": validation, **({"hosted_zone_id": zone} if zone else {}), **domain}}))


def route53():
    return boto3.client("route53", region_name="us-east-1")


def records(zone):
    """The zone's records at the domain, {type: record set}."""
    found = route53().list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return {r["Type"]: r for r in found if r["Name"] == DOMAIN + "."}


def put_record(zone, rtype, value=None, alias=None):
    rrset = {"Name": DOMAIN, "Type": rtype}
    if alias:
        rrset["AliasTarget"] = {"HostedZoneId": dns.CLOUDFRONT_ZONE_ID, "DNSName": alias, "EvaluateTargetHealth": False}
    else:
        rrset.update(TTL=300, ResourceRecords=[{"Value": value}])
    route53().change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": rrset}]})


def run(cfg, action, planning=False, cloudfront_state=True):
    """One command run with the cloudfront step's state (unless told otherwise)."""
    state = {"cloudfront": {"distribution_id": "E1EXAMPLE", "domain_name": TARGET}} if cloudfront_state else {}
    return run_once(cfg, action, planning=planning, state=state)


def alias_of(record):
    return record["AliasTarget"]["DNSName"].rstrip("."), record["AliasTarget"]["HostedZoneId"]


def test_email_validation_keeps_the_mx_beside_the_alias_records(load, hosted_zone):
    put_record(hosted_zone, "MX", MX)
    assert sorted(records(hosted_zone)) == ["MX"]

    ctx = run(load("email", hosted_zone), domain_record.ensure)

    after = records(hosted_zone)
    assert sorted(after) == ["A", "AAAA", "MX"]  # renewal mail still reaches SES
    assert after["MX"]["ResourceRecords"] == [{"Value": MX}]
    assert alias_of(after["A"]) == alias_of(after["AAAA"]) == (TARGET, "Z2FDTNDATAQYW2")
    assert [kind for kind, _ in ctx.report.changes] == ["create", "create"]
    assert ctx.state.get("domain_record") == {"alias_target": TARGET}


def test_dns_validation_touches_no_mx(load, hosted_zone):
    put_record(hosted_zone, "MX", MX)
    ctx = run(load("dns", hosted_zone), domain_record.ensure)
    assert sorted(records(hosted_zone)) == ["A", "AAAA", "MX"]
    assert [kind for kind, _ in ctx.report.changes] == ["create", "create"]


def test_an_mx_that_is_not_ours_is_left_alone(load, hosted_zone):
    put_record(hosted_zone, "MX", "10 mail.example.net")
    ctx = run(load("email", hosted_zone), domain_record.ensure)
    after = records(hosted_zone)
    assert after["MX"]["ResourceRecords"] == [{"Value": "10 mail.example.net"}]
    assert "A" in after and "AAAA" in after
    assert [kind for kind, _ in ctx.report.changes] == ["create", "create"]


def test_second_ensure_makes_no_changing_call(load, hosted_zone):
    put_record(hosted_zone, "MX", MX)
    cfg = load("email", hosted_zone)
    run(cfg, domain_record.ensure)
    again = run(cfg, domain_record.ensure)
    assert again.clients.calls.changing == 0 and again.report.changes == []


def test_a_record_pointing_elsewhere_is_repointed(load, hosted_zone):
    put_record(hosted_zone, "A", alias="dold0000000000.cloudfront.net")
    ctx = run(load("dns", hosted_zone), domain_record.ensure)
    assert alias_of(records(hosted_zone)["A"])[0] == TARGET
    assert [kind for kind, _ in ctx.report.changes] == ["update", "create"]


@pytest.mark.parametrize("validation", ["email", "dns"])
def test_without_a_zone_the_cname_is_printed_and_route53_untouched(load, hosted_zone, validation):
    put_record(hosted_zone, "MX", MX)
    before = records(hosted_zone)
    ctx = run(load(validation), domain_record.ensure)
    assert ctx.clients.calls.total == 0
    assert records(hosted_zone) == before
    shown = printed(ctx)
    assert f"{DOMAIN}  CNAME  {TARGET}" in shown
    assert ("cannot share its name with the MX" in shown) == (validation == "email")


def test_without_a_zone_email_validation_says_the_cname_stops_renewal_and_the_ways_out(load):
    shown = printed(run(load("email"), domain_record.ensure))
    assert f"{DOMAIN}  MX  {MX}" in shown and "then lapses" in shown
    assert f"{DOMAIN}  ALIAS  {TARGET}" in shown  # a provider's ALIAS/ANAME sits beside the MX
    assert "domain.hosted_zone_id" in shown
    assert 'domain.validation_domain = "example.com"' in shown
    assert 'domain.validation = "dns"' in shown
    assert shown.index("ALIAS") < shown.index("remove the MX first") < shown.index(f"{DOMAIN}  CNAME")


def test_without_a_zone_a_parent_validation_domain_needs_no_mx(load):
    shown = printed(run(load("email", validation_domain="example.com"), domain_record.ensure))
    assert f"{DOMAIN}  CNAME  {TARGET}" in shown
    assert "MX" not in shown


def test_without_cloudfront_state_deploy_stops_and_plan_uses_a_placeholder(load, hosted_zone):
    cfg = load("email", hosted_zone)
    with pytest.raises(DeployError, match="cloudfront step first"):
        run(cfg, domain_record.ensure, cloudfront_state=False)
    ctx = run(cfg, domain_record.ensure, planning=True, cloudfront_state=False)
    assert ctx.clients.calls.changing == 0
    assert [kind for kind, _ in ctx.report.changes] == ["create", "create"]
    assert records(hosted_zone) == {}


def test_destroy_removes_the_alias_records_and_is_safe_twice(load, hosted_zone):
    cfg = load("dns", hosted_zone)
    run(cfg, domain_record.ensure)
    ctx = run(cfg, domain_record.destroy)
    assert records(hosted_zone) == {}
    assert ctx.report.changes == [("delete", f"DNS record {DOMAIN} A"), ("delete", f"DNS record {DOMAIN} AAAA")]
    again = run(cfg, domain_record.destroy)
    assert again.clients.calls.changing == 0


def test_destroy_leaves_records_that_alias_another_distribution(load, hosted_zone):
    put_record(hosted_zone, "A", alias="dother000000000.cloudfront.net")
    ctx = run(load("dns", hosted_zone), domain_record.destroy)
    assert "A" in records(hosted_zone)
    assert ctx.clients.calls.changing == 0


def make_distribution(tags):
    """A distribution as the cloudfront step leaves it, as far as finding it goes: comment and tags."""
    config = {
        "CallerReference": "test", "Comment": "rds-edge-api stack demo", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "api", "DomainName": "x.execute-api.eu-west-1.amazonaws.com",
                                              "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443,
                                                                     "OriginProtocolPolicy": "https-only"}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "api", "ViewerProtocolPolicy": "https-only",
                                 "CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"},
    }
    created = boto3.client("cloudfront", region_name="us-east-1").create_distribution_with_tags(
        DistributionConfigWithTags={"DistributionConfig": config, "Tags": {"Items": tags}})
    return created["Distribution"]["DomainName"]


def test_destroy_without_state_finds_the_distribution_by_tag(load, hosted_zone):
    target = make_distribution([{"Key": "stack", "Value": "demo"}, {"Key": "managed-by", "Value": "rds-edge-api"}])
    put_record(hosted_zone, "A", alias=target)
    put_record(hosted_zone, "AAAA", alias=target)
    run(load("dns", hosted_zone), domain_record.destroy, cloudfront_state=False)
    assert records(hosted_zone) == {}


def test_destroy_with_the_distribution_unknown_leaves_the_records(load, hosted_zone):
    target = make_distribution([{"Key": "stack", "Value": "someone-else"}])
    put_record(hosted_zone, "A", alias=target)
    ctx = run(load("dns", hosted_zone), domain_record.destroy, cloudfront_state=False)
    assert "A" in records(hosted_zone)
    assert ctx.clients.calls.changing == 0
    assert "Leaving DNS record api.example.com A: the stack's distribution is unknown" in printed(ctx)


@pytest.mark.parametrize("cloudfront_state, shown", [(True, True), (False, False)])
def test_destroy_without_a_zone_prints_what_to_remove(load, cloudfront_state, shown):
    ctx = run(load("dns"), domain_record.destroy, cloudfront_state=cloudfront_state)
    assert ctx.clients.calls.changing == 0
    assert (f"{DOMAIN}  CNAME  {TARGET}" in printed(ctx)) == shown
