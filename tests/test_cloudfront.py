"""CloudFront step: the distribution read back from moto, its drift fixed in place, its teardown."""
import json

import pytest

from provision import config as config_module
from provision.errors import DeployError
from provision.steps import cloudfront
from tests.edge_support import (
    DOMAIN,
    REGION,
    apigateway,
    edge,
    edge_prerequisites,
    make_certificate,
    make_key,
    put_state,
)
from tests.support import SECRETS, aws_error, printed, quiet_context, run_once


@pytest.fixture
def cfg(aws, write_config):
    """The stack's config; CloudFront needs none of the operator's VPC or RDS."""
    return config_module.load(write_config())


@pytest.fixture
def prerequisites(cfg):
    """API, key, certificate and web ACL made, and their ids in the state file."""
    return edge_prerequisites(cfg)


def distributions():
    return edge("cloudfront").list_distributions()["DistributionList"].get("Items") or []


def config_of(distribution_id):
    return edge("cloudfront").get_distribution_config(Id=distribution_id)["DistributionConfig"]


def state_of(cfg, step):
    return quiet_context(cfg).state.get(step)


def test_ensure_creates_the_distribution_as_designed(cfg, prerequisites):
    ctx = run_once(cfg, cloudfront.ensure)

    [summary] = distributions()
    config = config_of(summary["Id"])
    [origin] = config["Origins"]["Items"]
    assert origin["DomainName"] == f"{prerequisites['api_id']}.execute-api.{REGION}.amazonaws.com"
    assert origin["OriginPath"] == "/v1"
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert origin["CustomOriginConfig"]["OriginSslProtocols"]["Items"] == ["TLSv1.2"]
    assert origin["CustomHeaders"]["Items"] == [{"HeaderName": "x-api-key", "HeaderValue": prerequisites["key_value"]}]
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["TargetOriginId"] == origin["Id"]
    assert behaviour["ViewerProtocolPolicy"] == "https-only"
    assert sorted(behaviour["AllowedMethods"]["Items"]) == ["GET", "HEAD", "OPTIONS"]
    assert sorted(behaviour["AllowedMethods"]["CachedMethods"]["Items"]) == ["GET", "HEAD"]
    assert behaviour["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    assert behaviour["OriginRequestPolicyId"] == "b689b0a8-53d0-40ab-baf2-68738e2966ac"
    assert config["Aliases"]["Items"] == [DOMAIN]
    certificate = config["ViewerCertificate"]
    assert certificate["ACMCertificateArn"] == state_of(cfg, "certificate")["arn"]
    assert (certificate["SSLSupportMethod"], certificate["MinimumProtocolVersion"]) == ("sni-only", "TLSv1.2_2021")
    assert certificate["CloudFrontDefaultCertificate"] is False
    assert config["WebACLId"] == state_of(cfg, "waf")["web_acl_arn"]
    assert (config["Enabled"], config["PriceClass"], config["HttpVersion"]) == (True, "PriceClass_100", "http2and3")
    assert config["Comment"] == "rds-edge-api stack demo"
    tags = edge("cloudfront").list_tags_for_resource(Resource=summary["ARN"])["Tags"]["Items"]
    assert {t["Key"]: t["Value"] for t in tags} == {"stack": "demo", "managed-by": "rds-edge-api"}
    assert edge("cloudfront").get_distribution(Id=summary["Id"])["Distribution"]["Status"] == "Deployed"

    assert ctx.state.get("cloudfront") == {"distribution_id": summary["Id"], "domain_name": summary["DomainName"],
                                           "arn": summary["ARN"]}
    assert ctx.outputs["Distribution domain"] == summary["DomainName"]
    assert ctx.outputs["URL"] == f"https://{DOMAIN}/items"
    assert ctx.outputs["Try it"] == ('curl -H "Authorization: $TEST_AUTHORIZATION" '
                                     f'"https://{DOMAIN}/items?key=<customer_id>"')


def test_second_ensure_makes_no_changing_call(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    again = run_once(cfg, cloudfront.ensure)
    assert again.clients.calls.changing == 0
    assert again.report.changes == []


def new_key(cfg):
    key_id, value = make_key("demo-rotated")
    put_state(cfg, api={"api_key_id": key_id})
    return lambda config: config["Origins"]["Items"][0]["CustomHeaders"]["Items"][0]["HeaderValue"] == value


def new_stage(cfg):
    api_id = state_of(cfg, "api")["rest_api_id"]
    apigateway().create_deployment(restApiId=api_id, stageName="v2")
    put_state(cfg, api={"stage": "v2"})
    return lambda config: config["Origins"]["Items"][0]["OriginPath"] == "/v2"


def new_certificate(cfg):
    arn = make_certificate("second")
    put_state(cfg, certificate={"arn": arn})
    return lambda config: config["ViewerCertificate"]["ACMCertificateArn"] == arn


def new_web_acl(cfg):
    arn = edge("wafv2").create_web_acl(
        Name="other", Scope="CLOUDFRONT", DefaultAction={"Block": {}},
        VisibilityConfig={"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False, "MetricName": "other"},
    )["Summary"]["ARN"]
    put_state(cfg, waf={"web_acl_arn": arn})
    return lambda config: config["WebACLId"] == arn


@pytest.mark.parametrize("change", [new_key, new_stage, new_certificate, new_web_acl])
def test_drift_is_fixed_in_place(cfg, prerequisites, change):
    run_once(cfg, cloudfront.ensure)
    [before] = distributions()
    applied = change(cfg)

    ctx = run_once(cfg, cloudfront.ensure)
    assert ctx.clients.calls.changing_ops == ["UpdateDistribution"]
    [after] = distributions()
    assert after["Id"] == before["Id"]
    assert applied(config_of(after["Id"]))
    assert run_once(cfg, cloudfront.ensure).clients.calls.changing == 0


def test_changes_made_by_hand_to_owned_fields_are_reverted(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    [summary] = distributions()
    got = edge("cloudfront").get_distribution_config(Id=summary["Id"])
    config = got["DistributionConfig"]
    config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] = "allow-all"
    config["DefaultCacheBehavior"]["AllowedMethods"] = {"Quantity": 2, "Items": ["GET", "HEAD"]}
    edge("cloudfront").update_distribution(Id=summary["Id"], IfMatch=got["ETag"], DistributionConfig=config)

    ctx = run_once(cfg, cloudfront.ensure)
    assert ctx.report.changes == [("update", f"distribution {summary['Id']} (viewer protocol, allowed methods)")]
    behaviour = config_of(summary["Id"])["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "https-only"
    assert sorted(behaviour["AllowedMethods"]["Items"]) == ["GET", "HEAD", "OPTIONS"]


def test_lost_state_finds_the_same_distribution(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    [summary] = distributions()
    ctx = run_once(cfg, cloudfront.ensure, drop=("cloudfront",))
    assert ctx.clients.calls.changing == 0
    assert ctx.state.get("cloudfront")["distribution_id"] == summary["Id"]
    assert len(distributions()) == 1


def test_a_create_repeated_after_a_lost_response_adopts_the_first(cfg, prerequisites, monkeypatch):
    run_once(cfg, cloudfront.ensure)
    [summary] = distributions()
    real_find, misses = cloudfront.find, [None]

    def find_missing_once(ctx):
        return misses.pop() if misses else real_find(ctx)

    monkeypatch.setattr(cloudfront, "find", find_missing_once)
    ctx = run_once(cfg, cloudfront.ensure, drop=("cloudfront",))
    assert ctx.clients.calls.changing_ops == ["CreateDistributionWithTags"]  # refused: DistributionAlreadyExists
    assert [d["Id"] for d in distributions()] == [summary["Id"]]
    assert ctx.state.get("cloudfront")["distribution_id"] == summary["Id"]


def test_destroy_disables_waits_then_deletes_and_is_safe_twice(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    [summary] = distributions()
    ctx = quiet_context(cfg)
    client = ctx.edge("cloudfront")
    real_delete, seen = client.delete_distribution, []

    def delete_distribution(**kwargs):
        seen.append((config_of(summary["Id"])["Enabled"],
                     edge("cloudfront").get_distribution(Id=summary["Id"])["Distribution"]["Status"]))
        return real_delete(**kwargs)

    client.delete_distribution = delete_distribution
    cloudfront.destroy(ctx)
    assert ctx.clients.calls.changing_ops == ["UpdateDistribution", "DeleteDistribution"]
    assert seen == [(False, "Deployed")]
    assert distributions() == []
    ctx.state.drop("cloudfront")
    ctx.state.save()
    again = run_once(cfg, cloudfront.destroy)
    assert again.clients.calls.changing == 0 and again.report.changes == []


def test_destroy_retries_while_cloudfront_still_sees_it_enabled(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    ctx = quiet_context(cfg)
    client = ctx.edge("cloudfront")
    real_delete, refusals = client.delete_distribution, [
        aws_error("DeleteDistribution", "DistributionNotDisabled", "not yet")]

    def delete_distribution(**kwargs):
        if refusals:
            raise refusals.pop()
        return real_delete(**kwargs)

    client.delete_distribution = delete_distribution
    cloudfront.destroy(ctx)
    assert distributions() == []
    assert "to be seen as disabled" in printed(ctx)


def test_destroy_leaves_a_distribution_that_is_not_tagged_as_ours(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    [summary] = distributions()
    edge("cloudfront").untag_resource(Resource=summary["ARN"], TagKeys={"Items": ["stack"]})
    ctx = run_once(cfg, cloudfront.destroy, drop=("cloudfront",))
    assert ctx.clients.calls.changing == 0
    assert [d["Id"] for d in distributions()] == [summary["Id"]]


@pytest.mark.parametrize("missing", ["api", "certificate", "waf"])
def test_a_missing_prerequisite_stops_deploy_but_not_plan(cfg, prerequisites, missing):
    with pytest.raises(DeployError, match=f"needs what the {missing} step"):
        run_once(cfg, cloudfront.ensure, drop=(missing,))
    assert distributions() == []
    ctx = run_once(cfg, cloudfront.ensure, planning=True, drop=(missing,))
    assert ctx.clients.calls.changing == 0
    assert ctx.report.changes == [("create", f"distribution for {DOMAIN}")]


def test_a_certificate_not_yet_issued_stops_deploy(cfg, prerequisites, monkeypatch):
    monkeypatch.setattr("moto.settings.ACM_VALIDATION_WAIT", 3600)
    put_state(cfg, certificate={"arn": make_certificate("pending")})
    with pytest.raises(DeployError, match="PENDING_VALIDATION, not ISSUED"):
        run_once(cfg, cloudfront.ensure)
    assert distributions() == []


def test_plan_reports_drift_without_changing_anything(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    [summary] = distributions()
    new_key(cfg)
    ctx = run_once(cfg, cloudfront.ensure, planning=True)
    assert ctx.clients.calls.changing == 0
    assert ctx.report.changes == [("update", f"distribution {summary['Id']} (origin headers)")]
    assert config_of(summary["Id"])["Origins"]["Items"][0]["CustomHeaders"]["Items"][0]["HeaderValue"] \
        == prerequisites["key_value"]


def test_the_api_key_and_secrets_are_never_printed_or_recorded(cfg, prerequisites):
    runs = [run_once(cfg, cloudfront.ensure)]
    new_key(cfg)
    runs += [run_once(cfg, cloudfront.ensure, planning=True), run_once(cfg, cloudfront.ensure),
             run_once(cfg, cloudfront.destroy)]
    values = [prerequisites["key_value"], *SECRETS.values(),
              apigateway().get_api_key(apiKey=state_of(cfg, "api")["api_key_id"], includeValue=True)["value"]]
    for ctx in runs:
        shown = printed(ctx) + json.dumps(ctx.state.resources) + json.dumps(ctx.outputs)
        shown += " ".join(description for _, description in ctx.report.changes)
        for value in values:
            assert value not in shown


def test_planned_teardown_changes_nothing(cfg, prerequisites):
    run_once(cfg, cloudfront.ensure)
    [summary] = distributions()
    ctx = run_once(cfg, cloudfront.destroy, planning=True)
    assert ctx.clients.calls.changing == 0
    assert [kind for kind, _ in ctx.report.changes] == ["update", "delete"]
    assert config_of(summary["Id"])["Enabled"] is True
