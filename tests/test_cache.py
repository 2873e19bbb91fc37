"""[api] cache_seconds: the stack's cache policy on the distribution and the API's Cache-Control, read back
with boto3 (moto's CloudFront gets the cache-policy API from provision/local/moto_workarounds.py)."""
import boto3
import pytest
from botocore.exceptions import ClientError

from provision.aws import cache_policy
from provision.steps import api, cloudfront
from tests.support import Run, inventory

pytestmark = pytest.mark.iam  # the function step attaches an AWS managed policy

REGION = "eu-west-1"
NAME = "demo-query-strings"


def front():
    return boto3.client("cloudfront")


def policies() -> dict:
    listed = front().list_cache_policies(Type="custom")["CachePolicyList"].get("Items") or []
    return {item["CachePolicy"]["CachePolicyConfig"]["Name"]: item["CachePolicy"] for item in listed}


def behaviour() -> dict:
    [item] = front().list_distributions()["DistributionList"]["Items"]
    return front().get_distribution(Id=item["Id"])["Distribution"]["DistributionConfig"]["DefaultCacheBehavior"]


def method() -> dict:
    apigw = boto3.client("apigateway", region_name=REGION)
    [rest] = apigw.get_rest_apis()["items"]
    [resource] = [r for r in apigw.get_resources(restApiId=rest["id"])["items"] if r["path"] == "/items"]
    return apigw.get_method(restApiId=rest["id"], resourceId=resource["id"], httpMethod="GET")


def cache_headers(got: dict) -> tuple[dict, dict]:
    """(status -> declared method response parameters, status -> integration response mapping)."""
    integration = got["methodIntegration"]["integrationResponses"]
    return ({status: r.get("responseParameters") for status, r in got["methodResponses"].items()},
            {status: r.get("responseParameters") for status, r in integration.items()})


def config(hosted_zone, seconds):
    return {"domain": {"hosted_zone_id": hosted_zone}, "api": {"cache_seconds": seconds}}


def test_caching_switched_on_changed_off_and_on_then_teardown_leaves_nothing(load_seeded, hosted_zone, write_config):
    cfg = load_seeded(config(hosted_zone, 60))
    first = Run("deploy", write_config(config(hosted_zone, 60)))
    assert first.code == 0, first.text
    made = policies()[NAME]
    settings = made["CachePolicyConfig"]
    assert (settings["MinTTL"], settings["DefaultTTL"], settings["MaxTTL"]) == (0, 0, 60)
    keyed = settings["ParametersInCacheKeyAndForwardedToOrigin"]
    assert keyed["HeadersConfig"]["HeaderBehavior"] == "none"  # no Host: API Gateway would answer 403
    assert keyed["CookiesConfig"]["CookieBehavior"] == "none"
    assert keyed["QueryStringsConfig"]["QueryStringBehavior"] == "whitelist"
    assert sorted(keyed["QueryStringsConfig"]["QueryStrings"]["Items"]) == ["after", "key"]
    assert keyed["EnableAcceptEncodingGzip"] is True and keyed["EnableAcceptEncodingBrotli"] is True
    assert behaviour()["CachePolicyId"] == made["Id"]
    assert behaviour()["OriginRequestPolicyId"] == cloudfront.ALL_VIEWER_EXCEPT_HOST_HEADER
    declared, mapped = cache_headers(method())
    assert declared == {status: {api.CACHE_CONTROL: False} for status in ("200", "400", "404", "500")}
    assert mapped == {"200": {api.CACHE_CONTROL: "'max-age=60'"}, "400": {api.CACHE_CONTROL: "'no-store'"},
                      "404": {api.CACHE_CONTROL: "'no-store'"}, "500": {api.CACHE_CONTROL: "'no-store'"}}
    assert f"cache policy demo-query-strings {made['Id']}" in inventory(cfg)

    still = Run("deploy", write_config(config(hosted_zone, 60)))
    assert still.code == 0 and still.text.rstrip().endswith("(0 changing)"), still.text
    assert "answers cached before it may still be served for up to 60 s" in " ".join(still.text.split())
    rotated = Run("rotate", write_config(config(hosted_zone, 60)), "api-key")
    assert rotated.code == 0 and "up to 60 s" in " ".join(rotated.text.split()), rotated.text
    finished = Run("rotate", write_config(config(hosted_zone, 60)), "api-key", "--finish")
    assert finished.code == 0, finished.text

    longer = Run("deploy", write_config(config(hosted_zone, 300)))
    assert longer.code == 0, longer.text
    assert policies()[NAME]["Id"] == made["Id"] and policies()[NAME]["CachePolicyConfig"]["MaxTTL"] == 300
    assert cache_headers(method())[1]["200"] == {api.CACHE_CONTROL: "'max-age=300'"}

    off = Run("deploy", write_config(config(hosted_zone, 0)))
    assert off.code == 0 and "Cached answers" not in off.text, off.text
    assert behaviour()["CachePolicyId"] == cloudfront.CACHING_DISABLED and NAME not in policies()
    declared, mapped = cache_headers(method())
    assert set(declared.values()) == {None} and set(mapped.values()) == {None}

    on = Run("deploy", write_config(config(hosted_zone, 60)))
    assert on.code == 0 and behaviour()["CachePolicyId"] == policies()[NAME]["Id"], on.text
    down = Run("teardown", write_config(config(hosted_zone, 0)), "--yes")  # the config no longer asks for it
    assert down.code == 0, down.text
    assert NAME not in policies()
    assert [f for f in inventory(cfg) if not f.startswith("dns NS")] == []


def test_a_policy_changed_behind_the_stacks_back_is_put_back(load_seeded, hosted_zone, write_config):
    load_seeded(config(hosted_zone, 60))
    path = write_config(config(hosted_zone, 60))
    assert Run("deploy", path).code == 0
    made = policies()[NAME]
    drifted = {**made["CachePolicyConfig"], "MaxTTL": 86_400}
    drifted["ParametersInCacheKeyAndForwardedToOrigin"] = {
        **drifted["ParametersInCacheKeyAndForwardedToOrigin"],
        "HeadersConfig": {"HeaderBehavior": "whitelist", "Headers": {"Quantity": 1, "Items": ["Host"]}}}
    front().update_cache_policy(Id=made["Id"], IfMatch=front().get_cache_policy(Id=made["Id"])["ETag"],
                                CachePolicyConfig=drifted)
    again = Run("deploy", path)
    assert again.code == 0, again.text
    assert "cache policy demo-query-strings (TTLs, headers)" in again.text
    fixed = policies()[NAME]["CachePolicyConfig"]
    assert fixed["MaxTTL"] == 60
    assert fixed["ParametersInCacheKeyAndForwardedToOrigin"]["HeadersConfig"] == {"HeaderBehavior": "none"}


def test_a_foreign_policy_of_the_stacks_name_is_not_adopted(load_seeded, hosted_zone, write_config):
    load_seeded(config(hosted_zone, 60))
    foreign = {**cache_policy.desired_for("demo", 60), "Comment": "someone else's"}
    front().create_cache_policy(CachePolicyConfig=foreign)
    code, text = Run("deploy", write_config(config(hosted_zone, 60)))
    assert code == 1
    assert "cache policy named demo-query-strings that this stack did not make" in text
    assert policies()[NAME]["CachePolicyConfig"]["Comment"] == "someone else's"


def test_the_emulator_refuses_deleting_a_policy_a_distribution_names(aws):
    """CloudFront API reference, DeleteCachePolicy: CachePolicyInUse while attached to a cache behavior."""
    made = front().create_cache_policy(CachePolicyConfig=cache_policy.desired_for("demo", 60))
    policy_id = made["CachePolicy"]["Id"]
    front().create_distribution(DistributionConfig={
        "CallerReference": "test", "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "o", "DomainName": "example.com",
                                               "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443,
                                                                      "OriginProtocolPolicy": "https-only"}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "o", "ViewerProtocolPolicy": "https-only",
                                 "CachePolicyId": policy_id}})
    with pytest.raises(ClientError) as err:
        front().delete_cache_policy(Id=policy_id, IfMatch=made["ETag"])
    assert err.value.response["Error"]["Code"] == "CachePolicyInUse"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(ClientError) as stale:
        front().update_cache_policy(Id=policy_id, IfMatch="STALE", CachePolicyConfig=made["CachePolicy"]
                                    ["CachePolicyConfig"])
    assert stale.value.response["Error"]["Code"] == "PreconditionFailed"


def test_the_operator_policy_grants_the_cache_policy_calls_on_cache_policies_only(write_config):
    """Service Authorization Reference, Amazon CloudFront: Create/Get/Update/DeleteCachePolicy take the
    cache-policy resource type; ListCachePolicies takes no resource ("*")."""
    from provision import config as config_module
    from provision.iam import policy

    cfg = config_module.load(write_config({"api": {"cache_seconds": 60}}))
    doc = policy.document(cfg, "123456789012", policy.Network("vpc-0123456789abcdef0", "sg-0123456789abcdef0"))
    granted: dict[str, set] = {}
    for statement in doc["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]:
            granted.setdefault(action, set()).update(resources)
    for verb in ("Create", "Get", "Update", "Delete"):
        assert granted[f"cloudfront:{verb}CachePolicy"] == {"arn:aws:cloudfront::123456789012:cache-policy/*"}
    assert granted["cloudfront:ListCachePolicies"] == {"*"}
