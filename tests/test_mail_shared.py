"""Many email-validated stacks in one account and SES region: one shared receipt rule set, one rule per
stack; the operator's own active set when named; the SES identity removed only by the stack that made it;
and ACM's leading-www rule (issue 20, issue 16)."""
import boto3
import pytest

from provision import config as config_module
from provision.errors import ConfigError, DeployError
from provision.steps import certificate, mail
from tests import aws_rules as aws_rules_module
from tests.support import moto_evaluates_secure_transport, printed, quiet_context

SHARED = "rds-edge-api-shared-acm"


@pytest.fixture(autouse=True)
def tls_requests(monkeypatch):
    moto_evaluates_secure_transport(monkeypatch)


@pytest.fixture
def stack_cfg(aws, write_config, hosted_zone):
    """stack_cfg(name, domain, **domain_keys) -> Config of an email-validated stack."""
    def load(name, domain, **keys):
        return config_module.load(write_config({"stack": {"name": name}, "domain": {
            "name": domain, "validation": "email", "hosted_zone_id": hosted_zone, **keys}}, name=f"{name}.toml"))
    return load


def ses():
    return boto3.client("ses", region_name="us-east-1")


def rule_names(rule_set):
    return sorted(r["Name"] for r in ses().describe_receipt_rule_set(RuleSetName=rule_set)["Rules"])


def active():
    return ses().describe_active_receipt_rule_set().get("Metadata", {}).get("Name")


def rule_sets():
    return sorted(r["Name"] for r in ses().list_receipt_rule_sets().get("RuleSets", []))


def test_two_stacks_share_one_active_rule_set_and_the_last_removes_it(stack_cfg):
    orders, orders_eu = stack_cfg("orders", "orders.example.com"), stack_cfg("orders-eu", "eu.example.com")
    mail.ensure(quiet_context(orders))
    second = quiet_context(orders_eu)
    mail.ensure(second)  # the second stack no longer stops at "already has an active receipt rule set"
    assert active() == SHARED and rule_sets() == [SHARED]
    assert rule_names(SHARED) == ["orders-acm-approval", "orders-eu-acm-approval"]
    assert "CreateReceiptRuleSet" not in second.clients.calls.changing_ops

    first_down = quiet_context(orders)  # no state: found by name
    mail.destroy(first_down)
    assert active() == SHARED and rule_names(SHARED) == ["orders-eu-acm-approval"]
    rule = ses().describe_receipt_rule(RuleSetName=SHARED, RuleName="orders-eu-acm-approval")["Rule"]
    assert rule["Recipients"] == ["eu.example.com"]
    assert "1 other rule(s) use it" in printed(first_down)
    identities = ses().list_identities()["Identities"]
    assert "orders.example.com" not in identities and "eu.example.com" in identities

    mail.destroy(quiet_context(orders_eu))
    assert active() is None and rule_sets() == []


def test_the_operators_own_active_set_gets_the_rule_and_is_never_deactivated_or_deleted(stack_cfg):
    ses().create_receipt_rule_set(RuleSetName="ops-inbound")
    ses().create_receipt_rule(RuleSetName="ops-inbound", Rule={"Name": "ops-own", "Enabled": True,
                                                               "Recipients": ["ops.example.com"], "Actions": []})
    ses().set_active_receipt_rule_set(RuleSetName="ops-inbound")
    cfg = stack_cfg("orders", "orders.example.com", mail_rule_set="ops-inbound")
    ctx = quiet_context(cfg)
    mail.ensure(ctx)
    assert active() == "ops-inbound" and rule_sets() == ["ops-inbound"]
    assert rule_names("ops-inbound") == ["ops-own", "orders-acm-approval"]
    assert "SetActiveReceiptRuleSet" not in ctx.clients.calls.changing_ops
    again = quiet_context(cfg)
    mail.ensure(again)
    assert again.clients.calls.changing == 0, again.clients.calls.changing_ops

    down = quiet_context(cfg)
    mail.destroy(down)
    assert active() == "ops-inbound" and rule_names("ops-inbound") == ["ops-own"]
    assert not {"SetActiveReceiptRuleSet", "DeleteReceiptRuleSet"} & set(down.clients.calls.changing_ops)


def test_a_named_set_that_is_not_active_stops_before_any_change(stack_cfg):
    ses().create_receipt_rule_set(RuleSetName="ops-inbound")
    ctx = quiet_context(stack_cfg("orders", "orders.example.com", mail_rule_set="ops-inbound"))
    with pytest.raises(DeployError, match="'ops-inbound' is not the active"):
        mail.ensure(ctx)
    assert ctx.clients.calls.changing == 0 and active() is None


def test_someone_elses_active_set_names_the_key_that_uses_it(stack_cfg):
    ses().create_receipt_rule_set(RuleSetName="ops-inbound")
    ses().set_active_receipt_rule_set(RuleSetName="ops-inbound")
    ctx = quiet_context(stack_cfg("orders", "orders.example.com"))
    with pytest.raises(DeployError, match="domain.mail_rule_set = 'ops-inbound'"):
        mail.ensure(ctx)
    assert ctx.clients.calls.changing == 0


def test_a_stacks_own_set_from_before_is_replaced_by_the_shared_one(stack_cfg):
    cfg = stack_cfg("orders", "orders.example.com")
    ses().create_receipt_rule_set(RuleSetName="orders-acm")
    ses().set_active_receipt_rule_set(RuleSetName="orders-acm")
    mail.ensure(quiet_context(cfg))
    assert active() == SHARED and rule_sets() == [SHARED]


def test_an_identity_verified_before_the_stack_is_left_by_its_teardown(stack_cfg):
    ses().verify_domain_identity(Domain="orders.example.com")  # the operator sends mail from it
    cfg = stack_cfg("orders", "orders.example.com")
    ctx = quiet_context(cfg)
    mail.ensure(ctx)
    assert ctx.state.get("mail")["identity_created"] is False
    tags = boto3.client("s3").get_bucket_tagging(Bucket="orders-mail-123456789012")["TagSet"]
    assert {"Key": "ses-identity", "Value": "created"} not in tags

    down = quiet_context(cfg)  # no state: the bucket's tags say who made the identity
    mail.destroy(down)
    assert "orders.example.com" in ses().list_identities()["Identities"]
    assert "did not create it" in printed(down)
    assert rule_sets() == []


def test_an_identity_verified_by_dkim_before_deploy_is_not_the_stacks_and_survives_teardown(stack_cfg, aws_rules):
    """The SES v2 console verifies a domain by DKIM: v1 then lists it with no VerificationToken. Taking "no token"
    for "no identity" made the stack mark it as its own and delete it at teardown."""
    aws_rules(aws_rules_module.dkim_identities_have_no_token())
    sesv2 = boto3.client("sesv2", region_name="us-east-1")
    sesv2.create_email_identity(EmailIdentity="orders.example.com")
    cfg = stack_cfg("orders", "orders.example.com")
    ctx = quiet_context(cfg)
    mail.ensure(ctx)
    assert "VerifyDomainIdentity" not in ctx.clients.calls.changing_ops
    assert ctx.state.get("mail")["identity_created"] is False
    tags = boto3.client("s3").get_bucket_tagging(Bucket="orders-mail-123456789012")["TagSet"]
    assert {"Key": "ses-identity", "Value": "created"} not in tags
    zone = cfg.domain.hosted_zone_id
    names = {(r["Name"], r["Type"]) for r in boto3.client("route53").list_resource_record_sets(
        HostedZoneId=zone)["ResourceRecordSets"]}
    assert ("orders.example.com.", "MX") in names and ("_amazonses.orders.example.com.", "TXT") not in names

    down = quiet_context(cfg)  # no state: the bucket's tags and SES's answer decide
    mail.destroy(down)
    assert sesv2.get_email_identity(EmailIdentity="orders.example.com")["IdentityType"] == "DOMAIN"
    assert "did not create it (it is verified by DKIM)" in printed(down)
    assert rule_sets() == []


def test_an_identity_the_stack_made_is_removed_without_state(stack_cfg):
    cfg = stack_cfg("orders", "orders.example.com")
    ctx = quiet_context(cfg)
    mail.ensure(ctx)
    tags = boto3.client("s3").get_bucket_tagging(Bucket="orders-mail-123456789012")["TagSet"]
    assert {"Key": "ses-identity", "Value": "created"} in tags
    mail.destroy(quiet_context(cfg))
    assert "orders.example.com" not in ses().list_identities()["Identities"]


# --- ACM drops a leading www. ---------------------------------------------------------------

def test_www_defaults_the_validation_domain_to_the_parent_acm_mails(stack_cfg):
    cfg = stack_cfg("site", "www.example.com")
    assert cfg.domain.validation_domain == "example.com" and not cfg.domain.receives_mail
    ctx = quiet_context(cfg)
    mail.ensure(ctx)  # nothing of SES: the stack would never receive admin@example.com's mail
    assert rule_sets() == [] and ses().list_identities()["Identities"] == []
    certificate.request(ctx)
    acm = boto3.client("acm", region_name="us-east-1")
    [summary] = acm.list_certificates()["CertificateSummaryList"]
    cert = acm.describe_certificate(CertificateArn=summary["CertificateArn"])["Certificate"]
    tags = {t["Key"]: t["Value"] for t in acm.list_tags_for_certificate(CertificateArn=cert["CertificateArn"])["Tags"]}
    assert cert["DomainName"] == "www.example.com"
    assert "example.com" in tags.values()  # requested with ValidationDomain example.com (moto drops the option)
    assert "admin@example.com" in printed(ctx)


def test_a_www_validation_domain_is_refused(write_config, secrets):
    path = write_config({"domain": {"name": "www.example.com", "validation": "email",
                                    "validation_domain": "www.example.com"}})
    with pytest.raises(ConfigError) as err:
        config_module.load(path)
    assert err.value.key == "domain.validation_domain" and "'example.com'" in err.value.problem


def test_mail_rule_set_is_checked(write_config, secrets):
    with pytest.raises(ConfigError) as err:
        config_module.load(write_config({"domain": {"validation": "email", "mail_rule_set": "bad name!"}}))
    assert err.value.key == "domain.mail_rule_set"
    with pytest.raises(ConfigError, match="only to validation"):
        config_module.load(write_config({"domain": {"validation": "dns", "mail_rule_set": "ops"}}))
