"""Step "mail": S3 bucket, SES identity, receipt rule set and rule, TXT and MX records (moto)."""
import dataclasses
import json

import boto3
import pytest

from provision.errors import DeployError
from provision.steps import mail
from tests.support import (
    SECRETS,
    moto_evaluates_secure_transport,
    printed,
    quiet_context,
)

ACCOUNT = "123456789012"  # moto's account
DOMAIN = "api.example.com"
BUCKET = f"demo-mail-{ACCOUNT}"


@pytest.fixture(autouse=True)
def tls_requests(monkeypatch):
    moto_evaluates_secure_transport(monkeypatch)


def records(zone_id):
    rrsets = boto3.client("route53", region_name="us-east-1").list_resource_record_sets(
        HostedZoneId=zone_id)["ResourceRecordSets"]
    return {(r["Name"], r["Type"]): sorted(v["Value"] for v in r.get("ResourceRecords", [])) for r in rrsets}


def token(region="us-east-1"):
    attrs = boto3.client("ses", region_name=region).get_identity_verification_attributes(
        Identities=[DOMAIN])["VerificationAttributes"]
    return attrs.get(DOMAIN, {}).get("VerificationToken")


def bucket_exists(region="us-east-1"):
    names = [b["Name"] for b in boto3.client("s3", region_name=region).list_buckets()["Buckets"]]
    return BUCKET in names


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_ensure_builds_bucket_identity_rule_set_and_records(load_config, hosted_zone, region):
    cfg = load_config(validation="email", hosted_zone_id=hosted_zone, mail_region=region)
    ctx = quiet_context(cfg)
    mail.ensure(ctx)

    s3 = boto3.client("s3", region_name=region)
    location = s3.get_bucket_location(Bucket=BUCKET)["LocationConstraint"]
    assert (location or "us-east-1") == region
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]}
    assert tags == {"stack": "demo", "managed-by": "rds-edge-api", "ses-identity": "created"}
    assert all(s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"].values())
    policy = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
    assert policy == {"Version": "2012-10-17", "Statement": [{
        "Sid": "AllowSESPutMail", "Effect": "Allow", "Principal": {"Service": "ses.amazonaws.com"},
        "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/acm/*",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                      "ArnLike": {"aws:SourceArn": f"arn:aws:ses:{region}:{ACCOUNT}:receipt-rule-set/rds-edge-api-shared-acm"
                                                   ":receipt-rule/demo-acm-approval"}}},
        {"Sid": "DenyWithoutTLS", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    assert s3.get_bucket_ownership_controls(Bucket=BUCKET)["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    [sse] = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert sse["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    [rule] = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert rule["Expiration"] == {"Days": 30} and rule["Filter"] == {"Prefix": "acm/"}

    ses = boto3.client("ses", region_name=region)
    assert DOMAIN in ses.list_identities(IdentityType="Domain")["Identities"]
    assert ses.describe_active_receipt_rule_set()["Metadata"]["Name"] == "rds-edge-api-shared-acm"
    rule = ses.describe_receipt_rule(RuleSetName="rds-edge-api-shared-acm", RuleName="demo-acm-approval")["Rule"]
    assert rule["Recipients"] == [DOMAIN] and rule["Enabled"] and rule["ScanEnabled"]
    assert rule["Actions"] == [{"S3Action": {"BucketName": BUCKET, "ObjectKeyPrefix": "acm/"}},
                               {"StopAction": {"Scope": "RuleSet"}}]

    found = records(cfg.domain.hosted_zone_id)
    assert found[(f"_amazonses.{DOMAIN}.", "TXT")] == [f'"{token(region)}"']
    assert found[(f"{DOMAIN}.", "MX")] == [f"10 inbound-smtp.{region}.amazonaws.com"]
    assert ctx.state.get("mail") == {"bucket": BUCKET, "rule_set": "rds-edge-api-shared-acm",
                                     "rule": "demo-acm-approval", "prefix": "acm/", "region": region,
                                     "identity_created": True}


def test_without_a_zone_records_are_printed_not_written(load_config):
    cfg = load_config(validation="email")
    ctx = quiet_context(cfg)
    mail.ensure(ctx)
    assert boto3.client("route53", region_name="us-east-1").list_hosted_zones()["HostedZones"] == []
    out = printed(ctx)
    assert f'_amazonses.{DOMAIN}  TXT  "{token()}"' in out
    assert f"{DOMAIN}  MX  10 inbound-smtp.us-east-1.amazonaws.com" in out
    assert not any(secret in out for secret in SECRETS.values())


def test_second_ensure_changes_nothing(email_cfg):
    mail.ensure(quiet_context(email_cfg))
    again = quiet_context(email_cfg)
    mail.ensure(again)
    assert again.clients.calls.changing == 0, again.clients.calls.changing_ops
    assert again.report.changes == []


def test_planning_announces_everything_and_calls_nothing(email_cfg):
    ctx = quiet_context(email_cfg, planning=True)
    mail.ensure(ctx)
    assert ctx.clients.calls.changing == 0
    kinds = [kind for kind, _ in ctx.report.changes]
    assert kinds.count("create") >= 4  # bucket, identity, two records, rule set, rule
    assert not bucket_exists()


def test_drift_in_the_rule_is_updated(email_cfg):
    mail.ensure(quiet_context(email_cfg))
    ses = boto3.client("ses", region_name="us-east-1")
    ses.update_receipt_rule(RuleSetName="rds-edge-api-shared-acm", Rule={
        "Name": "demo-acm-approval", "Enabled": False, "Recipients": ["other.example.com"], "ScanEnabled": False,
        "Actions": [{"S3Action": {"BucketName": BUCKET, "ObjectKeyPrefix": "elsewhere/"}}]})
    ctx = quiet_context(email_cfg)
    mail.ensure(ctx)
    assert ctx.clients.calls.changing_ops == ["UpdateReceiptRule"]
    rule = ses.describe_receipt_rule(RuleSetName="rds-edge-api-shared-acm", RuleName="demo-acm-approval")["Rule"]
    assert rule["Enabled"] and rule["ScanEnabled"] and rule["Recipients"] == [DOMAIN]
    assert rule["Actions"][0]["S3Action"]["ObjectKeyPrefix"] == "acm/"


def test_another_active_rule_set_is_not_replaced(email_cfg):
    ses = boto3.client("ses", region_name="us-east-1")
    ses.create_receipt_rule_set(RuleSetName="operator-rules")
    ses.set_active_receipt_rule_set(RuleSetName="operator-rules")
    ctx = quiet_context(email_cfg)
    with pytest.raises(DeployError, match="operator-rules"):
        mail.ensure(ctx)
    assert ses.describe_active_receipt_rule_set()["Metadata"]["Name"] == "operator-rules"
    assert ctx.clients.calls.changing == 0


@pytest.mark.parametrize("region, tags, match", [
    ("us-east-1", [{"Key": "stack", "Value": "Demo"}], "tagged for stack 'Demo'"),  # same bucket name
    ("eu-west-1", [{"Key": "stack", "Value": "demo"}], "is in eu-west-1"),
])
def test_a_bucket_of_that_name_that_is_not_usable_stops_the_run(email_cfg, region, tags, match):
    s3 = boto3.client("s3", region_name=region)
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=BUCKET, **extra)
    s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": tags})
    ctx = quiet_context(email_cfg)
    with pytest.raises(DeployError, match=match):
        mail.ensure(ctx)
    assert ctx.clients.calls.changing == 0


def test_an_untagged_bucket_left_by_a_crashed_run_is_adopted(email_cfg):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    mail.ensure(quiet_context(email_cfg))
    tags = boto3.client("s3", region_name="us-east-1").get_bucket_tagging(Bucket=BUCKET)["TagSet"]
    assert {"Key": "stack", "Value": "demo"} in tags


def issued_certificate(ctx):
    acm = boto3.client("acm", region_name="us-east-1")
    arn = acm.request_certificate(DomainName=DOMAIN, ValidationMethod="EMAIL",
                                  Tags=[{"Key": "stack", "Value": "demo"}])["CertificateArn"]
    assert acm.describe_certificate(CertificateArn=arn)["Certificate"]["Status"] == "ISSUED"
    ctx.state.put("certificate", {"arn": arn})
    return arn


def test_mx_stays_once_the_certificate_is_issued_for_the_renewal_mail(email_cfg):
    ctx = quiet_context(email_cfg)
    mail.ensure(ctx)
    issued_certificate(ctx)
    ctx.state.save()
    later = quiet_context(email_cfg)
    mail.ensure(later)
    found = records(email_cfg.domain.hosted_zone_id)
    assert found[(f"{DOMAIN}.", "MX")] == ["10 inbound-smtp.us-east-1.amazonaws.com"]
    assert (f"_amazonses.{DOMAIN}.", "TXT") in found
    assert later.clients.calls.changing == 0, later.clients.calls.changing_ops
    ses = boto3.client("ses", region_name="us-east-1")
    assert ses.describe_active_receipt_rule_set()["Metadata"]["Name"] == "rds-edge-api-shared-acm"
    assert bucket_exists()


def test_an_mx_removed_by_hand_is_written_again(email_cfg):
    ctx = quiet_context(email_cfg)
    mail.ensure(ctx)
    issued_certificate(ctx)
    zone = email_cfg.domain.hosted_zone_id
    route53 = boto3.client("route53", region_name="us-east-1")
    [mx] = [r for r in route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"] if r["Type"] == "MX"]
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={
        "Changes": [{"Action": "DELETE", "ResourceRecordSet": mx}]})
    again = quiet_context(email_cfg)
    again.state.put("certificate", ctx.state.get("certificate"))
    mail.ensure(again)
    assert again.clients.calls.changing_ops == ["ChangeResourceRecordSets"]
    assert (f"{DOMAIN}.", "MX") in records(zone)


def test_without_a_zone_an_issued_certificate_gets_a_reminder_not_a_box(load_config):
    cfg = load_config(validation="email")
    ctx = quiet_context(cfg)
    issued_certificate(ctx)
    mail.ensure(ctx)
    out = printed(ctx)
    assert "Create these DNS records" not in out
    assert f"Keep the DNS records _amazonses.{DOMAIN}" in out and "10 inbound-smtp.us-east-1.amazonaws.com" in out


def test_hardening_drift_is_put_back(email_cfg):
    mail.ensure(quiet_context(email_cfg))
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_bucket_ownership_controls(Bucket=BUCKET, OwnershipControls={
        "Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    ctx = quiet_context(email_cfg)
    mail.ensure(ctx)
    assert sorted(ctx.clients.calls.changing_ops) == ["PutBucketEncryption", "PutBucketOwnershipControls"]
    assert s3.get_bucket_ownership_controls(Bucket=BUCKET)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    [sse] = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert sse["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def put_mail(s3, key, body=b"From: someone\r\n\r\nhello\r\n"):
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_destroy_removes_everything_even_a_bucket_with_versions(email_cfg):
    mail.ensure(quiet_context(email_cfg))
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put_mail(s3, "acm/AMAZON_SES_SETUP_NOTIFICATION")
    for i in range(3):
        put_mail(s3, "acm/message-1", f"version {i}".encode())
    s3.delete_object(Bucket=BUCKET, Key="acm/message-1")  # a delete marker
    listed = s3.list_object_versions(Bucket=BUCKET)
    assert len(listed["Versions"]) == 4 and len(listed["DeleteMarkers"]) == 1
    zone = email_cfg.domain.hosted_zone_id
    assert (f"_amazonses.{DOMAIN}.", "TXT") in records(zone)

    ctx = quiet_context(email_cfg)  # no state: everything found by name
    mail.destroy(ctx)

    ses = boto3.client("ses", region_name="us-east-1")
    assert "Metadata" not in ses.describe_active_receipt_rule_set()
    assert ses.list_receipt_rule_sets().get("RuleSets", []) == []
    assert DOMAIN not in ses.list_identities()["Identities"]
    assert not bucket_exists()
    found = records(zone)
    assert (f"{DOMAIN}.", "MX") not in found and (f"_amazonses.{DOMAIN}.", "TXT") not in found

    twice = quiet_context(email_cfg)
    mail.destroy(twice)
    assert twice.clients.calls.changing == 0


def test_destroy_empties_a_bucket_in_batches(email_cfg, monkeypatch):
    mail.ensure(quiet_context(email_cfg))
    s3 = boto3.client("s3", region_name="us-east-1")
    for i in range(5):
        put_mail(s3, f"acm/m{i}")
    monkeypatch.setattr(mail, "DELETE_BATCH", 2)  # S3's limit is 1,000: the same code path, fewer objects
    ctx = quiet_context(email_cfg)
    mail.destroy(ctx)
    assert ctx.clients.calls.changing_ops.count("DeleteObjects") == 3
    assert not bucket_exists()


def test_destroy_leaves_what_this_stack_did_not_make(load_config, hosted_zone):
    cfg = load_config(validation="dns", hosted_zone_id=hosted_zone)
    ses = boto3.client("ses", region_name="us-east-1")
    ses.verify_domain_identity(Domain=DOMAIN)  # the operator's own SES identity
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)  # same name, not tagged as ours
    boto3.client("route53").change_resource_record_sets(HostedZoneId=cfg.domain.hosted_zone_id, ChangeBatch={
        "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": f"_amazonses.{DOMAIN}", "Type": "TXT", "TTL": 300,
            "ResourceRecords": [{"Value": f'"{token()}"'}]}}]})
    ctx = quiet_context(cfg)
    mail.destroy(ctx)
    assert ctx.clients.calls.changing == 0
    assert DOMAIN in ses.list_identities()["Identities"]
    assert bucket_exists()
    assert (f"_amazonses.{DOMAIN}.", "TXT") in records(cfg.domain.hosted_zone_id)
    assert "not tagged" in printed(ctx)


def test_destroy_uses_the_region_recorded_in_state(load_config, hosted_zone):
    cfg = load_config(validation="email", hosted_zone_id=hosted_zone, mail_region="eu-west-1")
    ctx = quiet_context(cfg)
    mail.ensure(ctx)
    ctx.state.save()
    moved = dataclasses.replace(cfg, domain=dataclasses.replace(cfg.domain, mail_region="us-east-1"))
    later = quiet_context(moved)
    assert later.state.get("mail")["region"] == "eu-west-1"
    mail.destroy(later)
    assert not bucket_exists("eu-west-1")
    assert (f"{DOMAIN}.", "MX") not in records(cfg.domain.hosted_zone_id)


@pytest.mark.parametrize("now", [{"validation": "dns"}, {"validation": "email", "validation_domain": "example.com"}])
def test_a_deploy_that_no_longer_receives_mail_removes_it(load_config, hosted_zone, now):
    mail.ensure(quiet_context(load_config(validation="email", hosted_zone_id=hosted_zone)))
    cfg = load_config(hosted_zone_id=hosted_zone, **now)
    ctx = quiet_context(cfg)
    mail.ensure(ctx)
    assert not bucket_exists()
    assert boto3.client("ses", region_name="us-east-1").list_receipt_rule_sets().get("RuleSets", []) == []
    assert (f"{DOMAIN}.", "MX") not in records(hosted_zone)
    again = quiet_context(cfg)
    mail.ensure(again)
    assert again.clients.calls.changing == 0


# --- SES tests its write to the bucket when the rule is made ------------------------------------------------

def test_the_rule_is_made_while_the_new_bucket_policy_reaches_ses(aws_rules, load_config, hosted_zone):
    """The policy names the rule before it exists (as the SES developer guide's does); SES's test write at
    CreateReceiptRule meets it once S3 has propagated it: the create is retried until then, bounded."""
    from tests.aws_rules import bucket_policy_allows, ses_tests_the_bucket_write

    rule = ses_tests_the_bucket_write(stale_reads=2)
    aws_rules(rule)
    cfg = load_config(validation="email", hosted_zone_id=hosted_zone)
    ctx = quiet_context(cfg)
    mail.ensure(ctx)
    attempts = [c for c in rule.seen if c.operation == "CreateReceiptRule"]
    assert len(attempts) == 3  # twice the policy from before (none), then the one put
    ses = boto3.client("ses", region_name="us-east-1")
    assert ses.describe_receipt_rule(RuleSetName="rds-edge-api-shared-acm", RuleName="demo-acm-approval")["Rule"]
    policy = json.loads(boto3.client("s3").get_bucket_policy(Bucket=BUCKET)["Policy"])
    rule_arn = f"arn:aws:ses:us-east-1:{ACCOUNT}:receipt-rule-set/rds-edge-api-shared-acm:receipt-rule/demo-acm-approval"
    context = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": rule_arn, "aws:SecureTransport": "true"}
    assert bucket_policy_allows(policy, "ses.amazonaws.com", "s3:PutObject", f"arn:aws:s3:::{BUCKET}/acm/x", context)
    other = {**context, "aws:SourceArn": rule_arn.replace("demo-acm-approval", "someone-elses")}
    assert not bucket_policy_allows(policy, "ses.amazonaws.com", "s3:PutObject", f"arn:aws:s3:::{BUCKET}/acm/x", other)


def test_ses_refuses_a_rule_the_bucket_policy_does_not_name(aws_rules, load_config, hosted_zone):
    """The rule is not vacuous: a rule other than the one the policy names cannot write to the bucket."""
    from tests.aws_rules import ses_tests_the_bucket_write

    aws_rules(ses_tests_the_bucket_write())
    mail.ensure(quiet_context(load_config(validation="email", hosted_zone_id=hosted_zone)))
    ses = boto3.client("ses", region_name="us-east-1")
    with pytest.raises(Exception, match="InvalidS3Configuration"):
        ses.create_receipt_rule(RuleSetName="rds-edge-api-shared-acm", Rule={
            "Name": "intruder", "Enabled": True, "Recipients": ["other.example.com"],
            "Actions": [{"S3Action": {"BucketName": BUCKET, "ObjectKeyPrefix": "acm/"}}]})
