"""Steps "certificate" and "certificate_issued": request, DNS record, approval mail, wait, destroy (moto)."""
import datetime
import re
from email.message import EmailMessage

import boto3
import moto.settings
import pytest
from moto.acm.models import CertBundle, acm_backends
from moto.acm.responses import AWSCertificateManagerResponse
from moto.s3.models import s3_backends

from provision.context import UNKNOWN
from provision.errors import DeployError
from provision.steps import certificate, certificate_issued, mail
from tests.support import (
    SECRETS,
    aws_error,
    moto_evaluates_secure_transport,
    printed,
    quiet_context,
)

ACCOUNT = "123456789012"  # moto's account
DOMAIN = "api.example.com"
BUCKET = f"demo-mail-{ACCOUNT}"
RENEWAL = "Renewal:"


@pytest.fixture(autouse=True)
def acm_like_aws(monkeypatch):
    """moto describes every certificate as DNS-validated; AWS reports the method it was requested with.

    Records each request's ValidationMethod and makes describe_certificate report an EMAIL
    certificate as AWS does: method EMAIL, the addresses mailed, no DNS ResourceRecord.
    (The step also tags the method; this keeps the fallback to ACM's word honest.)
    """
    methods = {}
    request = AWSCertificateManagerResponse.request_certificate
    describe = CertBundle.describe

    def request_certificate(self):
        result = request(self)
        methods[result.result["CertificateArn"]] = self._get_param("ValidationMethod") or "DNS"
        return result

    def described(self):
        out = describe(self)
        if methods.get(self.arn) == "EMAIL":
            for option in out["Certificate"].get("DomainValidationOptions", []):
                option.pop("ResourceRecord", None)
                option["ValidationMethod"] = "EMAIL"
                option["ValidationEmails"] = [f"{box}@{option['ValidationDomain']}" for box in
                                              ("admin", "administrator", "hostmaster", "postmaster", "webmaster")]
        return out

    monkeypatch.setattr(AWSCertificateManagerResponse, "request_certificate", request_certificate)
    monkeypatch.setattr(CertBundle, "describe", described)
    return methods


@pytest.fixture
def pending(monkeypatch):
    """Certificates stay PENDING_VALIDATION until approve() (moto issues them after ACM_VALIDATION_WAIT s)."""
    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 10 ** 6)
    return lambda: monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", -1)


@pytest.fixture(autouse=True)
def tls_requests(monkeypatch):
    moto_evaluates_secure_transport(monkeypatch)


def acm():
    return boto3.client("acm", region_name="us-east-1")


def certificates():
    return [c["CertificateArn"] for c in acm().list_certificates(
        CertificateStatuses=certificate.ALL_STATUSES)["CertificateSummaryList"]]


def status(arn):
    return acm().describe_certificate(CertificateArn=arn)["Certificate"]["Status"]


def cnames(zone_id):
    rrsets = boto3.client("route53", region_name="us-east-1").list_resource_record_sets(
        HostedZoneId=zone_id)["ResourceRecordSets"]
    return {r["Name"]: [v["Value"] for v in r["ResourceRecords"]] for r in rrsets if r["Type"] == "CNAME"}


def requested(ctx, calls=None):
    """Captures the parameters of RequestCertificate calls made through ctx (into ``calls``, if given)."""
    calls = [] if calls is None else calls
    ctx.edge("acm").meta.events.register("provide-client-params.acm.RequestCertificate",
                                         lambda params, **_: calls.append(dict(params)))
    return calls


def reported_as(ctx, arn, status):
    """ACM answers this run that certificate ``arn`` is ``status`` (moto cannot fail, expire or revoke one):
    an after-call hook on the run's ACM client, for DescribeCertificate and ListCertificates."""
    def rewrite(parsed, **_):
        for cert in [parsed.get("Certificate"), *parsed.get("CertificateSummaryList", [])]:
            if cert and cert.get("CertificateArn") == arn:
                cert["Status"] = status
    for operation in ("DescribeCertificate", "ListCertificates"):
        ctx.edge("acm").meta.events.register(f"after-call.acm.{operation}", rewrite)
    return ctx


def rerun(cfg, planning=False):
    """A new run: a fresh context that reads the state file the last run saved."""
    return quiet_context(cfg, planning=planning)


def requested_once(cfg):
    ctx = quiet_context(cfg)
    certificate.request(ctx)
    ctx.state.save()
    return ctx, ctx.state.get("certificate")["arn"]


# --- request ------------------------------------------------------------------

def test_dns_request_is_tagged_and_writes_the_validation_cname(dns_cfg):
    ctx = quiet_context(dns_cfg)
    calls = requested(ctx)
    certificate.request(ctx)
    arn = ctx.state.get("certificate")["arn"]
    assert certificates() == [arn] and ctx.outputs["Certificate"] == arn
    tags = {t["Key"]: t["Value"] for t in acm().list_tags_for_certificate(CertificateArn=arn)["Tags"]}
    assert tags == {"stack": "demo", "managed-by": "rds-edge-api", "validation": "dns"}
    [call] = calls
    assert call["ValidationMethod"] == "DNS" and "DomainValidationOptions" not in call
    assert re.fullmatch(r"\w{1,32}", call["IdempotencyToken"])
    rr = acm().describe_certificate(CertificateArn=arn)["Certificate"]["DomainValidationOptions"][0]["ResourceRecord"]
    assert cnames(dns_cfg.domain.hosted_zone_id) == {rr["Name"]: [rr["Value"]]}


def test_email_request_names_the_validation_domain(email_cfg):
    ctx = quiet_context(email_cfg)
    calls = requested(ctx)
    certificate.request(ctx)
    [call] = calls
    assert call["ValidationMethod"] == "EMAIL"
    assert call["DomainValidationOptions"] == [{"DomainName": DOMAIN, "ValidationDomain": DOMAIN}]
    assert cnames(email_cfg.domain.hosted_zone_id) == {}
    tags = {t["Key"]: t["Value"] for t in acm().list_tags_for_certificate(
        CertificateArn=ctx.state.get("certificate")["arn"])["Tags"]}
    assert tags["validation"] == "email" and tags["validation-domain"] == DOMAIN


def test_a_parent_validation_domain_is_requested_and_its_five_mailboxes_named(load_config, hosted_zone, pending):
    cfg = load_config(validation="email", hosted_zone_id=hosted_zone, validation_domain="example.com")
    ctx = quiet_context(cfg)
    calls = requested(ctx)
    certificate.request(ctx)
    [call] = calls
    assert call["DomainValidationOptions"] == [{"DomainName": DOMAIN, "ValidationDomain": "example.com"}]
    ctx.sleep = Approver(pending, after=1)
    certificate_issued.wait(ctx)
    out = printed(ctx)
    for box in ("admin", "administrator", "hostmaster", "postmaster", "webmaster"):
        assert f"{box}@example.com" in out
    assert "s3://" not in out  # no bucket: the operator reads that mail


def test_a_changed_validation_domain_replaces_the_certificate(load_config, hosted_zone, pending):
    own = load_config(validation="email", hosted_zone_id=hosted_zone)
    _, old = requested_once(own)
    parent = load_config(validation="email", hosted_zone_id=hosted_zone, validation_domain="example.com")
    ctx = quiet_context(parent)
    certificate.request(ctx)
    new = ctx.state.get("certificate")["arn"]
    assert new != old and certificates() == [new]
    again = quiet_context(parent)
    certificate.request(again)
    assert again.clients.calls.changing == 0


def test_idempotency_token_is_deterministic_per_nonce_and_differs_per_method(dns_cfg, email_cfg):
    tokens = {certificate.idempotency_token(quiet_context(cfg), cfg.domain.validation.upper(), "n1")
              for cfg in (dns_cfg, dns_cfg, email_cfg)}
    assert len(tokens) == 2 and all(re.fullmatch(r"\w{1,32}", t) for t in tokens)
    ctx = quiet_context(dns_cfg)
    assert certificate.idempotency_token(ctx, "DNS", "n1") != certificate.idempotency_token(ctx, "DNS", "n2")


def test_a_request_after_a_teardown_gets_a_new_certificate(dns_cfg):
    ctx = quiet_context(dns_cfg)
    calls = requested(ctx)
    certificate.request(ctx)
    ctx.state.save()
    first = ctx.state.get("certificate")["arn"]
    certificate.destroy(rerun(dns_cfg))
    (dns_cfg.state_dir / "demo.json").unlink()  # teardown leaves no state
    again = quiet_context(dns_cfg)
    requested(again, calls)
    certificate.request(again)  # moto answers a deleted certificate's token with HTTP 500, AWS with its ARN
    second = again.state.get("certificate")["arn"]
    assert second != first and certificates() == [second]
    assert calls[0]["IdempotencyToken"] != calls[1]["IdempotencyToken"]
    assert again.state.get("certificate") == {"arn": second}  # the nonce is spent with the request


def crash_after(ctx, operation):
    """Make ctx's ACM client die right after AWS answered ``operation``: the response is lost."""
    class Crash(BaseException):
        pass

    def crash(model, **_):
        raise Crash(operation)

    ctx.edge("acm").meta.events.register(f"after-call.acm.{operation}", crash)
    return Crash


def test_a_request_retried_after_a_crash_finds_its_certificate_by_tag(dns_cfg, pending):
    ctx = quiet_context(dns_cfg)
    with pytest.raises(crash_after(ctx, "RequestCertificate")):
        certificate.request(ctx)
    [arn] = certificates()
    again = quiet_context(dns_cfg)
    certificate.request(again)
    assert again.state.get("certificate")["arn"] == arn and certificates() == [arn]
    assert again.clients.calls.changing_ops == ["ChangeResourceRecordSets"]  # only the CNAME the crash cut off


def test_a_retry_that_does_not_see_its_certificate_listed_yet_repeats_its_token(dns_cfg, pending):
    ctx = quiet_context(dns_cfg)
    calls = requested(ctx)
    with pytest.raises(crash_after(ctx, "RequestCertificate")):
        certificate.request(ctx)
    [arn] = certificates()
    again = quiet_context(dns_cfg)
    requested(again, calls)
    hide = lambda parsed, **_: parsed.update(CertificateSummaryList=[])  # noqa: E731 (listing lags behind)
    again.edge("acm").meta.events.register("after-call.acm.ListCertificates", hide)
    certificate.request(again)
    assert calls[0]["IdempotencyToken"] == calls[1]["IdempotencyToken"]
    assert again.state.get("certificate")["arn"] == arn and certificates() == [arn]


def test_an_arn_that_acm_does_not_know_is_never_used(dns_cfg):
    ctx = quiet_context(dns_cfg)
    calls = requested(ctx)
    ghost = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/00000000-0000-4000-8000-000000000000"
    answered = []

    def deleted_certificates_arn(parsed, **_):  # what AWS answers a token first used for a deleted certificate
        if not answered:
            answered.append(parsed["CertificateArn"])
            parsed["CertificateArn"] = ghost

    ctx.edge("acm").meta.events.register("after-call.acm.RequestCertificate", deleted_certificates_arn)
    certificate.request(ctx)
    arn = ctx.state.get("certificate")["arn"]
    assert arn != ghost and arn in certificates()
    assert len(calls) == 2 and calls[0]["IdempotencyToken"] != calls[1]["IdempotencyToken"]
    assert "does not know" in printed(ctx) and ctx.sleep  # it waited, bounded, for ACM to know the ARN
    assert sum(ctx.sleep) <= certificate.KNOWN_TIMEOUT


@pytest.mark.parametrize("state", ["kept", "lost"])
def test_rerun_picks_up_the_same_certificate_without_changes(dns_cfg, pending, state):
    _, arn = requested_once(dns_cfg)
    again = rerun(dns_cfg)
    if state == "lost":
        again.state.drop("certificate")
    certificate.request(again)
    assert again.state.get("certificate")["arn"] == arn
    assert again.clients.calls.changing == 0, again.clients.calls.changing_ops
    assert certificates() == [arn] and status(arn) == "PENDING_VALIDATION"


def test_a_pending_email_certificate_is_picked_up_not_requested_again(email_cfg, pending):
    _, arn = requested_once(email_cfg)
    again = quiet_context(email_cfg)  # state lost: found by tag, and its method is EMAIL as wanted
    again.state.drop("certificate")
    certificate.request(again)
    assert again.state.get("certificate")["arn"] == arn and again.clients.calls.changing == 0


def test_a_certificate_of_another_stack_is_not_adopted(dns_cfg):
    foreign = acm().request_certificate(DomainName=DOMAIN, ValidationMethod="DNS",
                                        Tags=[{"Key": "stack", "Value": "other"}])["CertificateArn"]
    ctx = quiet_context(dns_cfg)
    certificate.request(ctx)
    assert ctx.state.get("certificate")["arn"] != foreign and len(certificates()) == 2


@pytest.mark.parametrize("dead", ["FAILED", "VALIDATION_TIMED_OUT", "REVOKED", "EXPIRED"])
def test_a_dead_certificate_is_replaced_and_deleted(dns_cfg, dead):
    _, old = requested_once(dns_cfg)
    ctx = reported_as(rerun(dns_cfg), old, dead)
    certificate.request(ctx)
    new = ctx.state.get("certificate")["arn"]
    assert new != old and certificates() == [new]


def test_a_certificate_for_the_other_method_is_replaced(dns_cfg, email_cfg, pending):
    _, old = requested_once(email_cfg)
    ctx = quiet_context(dns_cfg)
    certificate.request(ctx)
    new = ctx.state.get("certificate")["arn"]
    assert new != old and certificates() == [new]


def test_without_the_method_tag_acm_says_which_method(dns_cfg, pending):
    old = acm().request_certificate(DomainName=DOMAIN, ValidationMethod="EMAIL", Tags=[
        {"Key": "stack", "Value": "demo"}, {"Key": "managed-by", "Value": "rds-edge-api"}])["CertificateArn"]
    ctx = quiet_context(dns_cfg)
    certificate.request(ctx)
    new = ctx.state.get("certificate")["arn"]
    assert new != old and certificates() == [new]


def test_a_replaced_certificate_still_in_use_is_kept(dns_cfg):
    _, old = requested_once(dns_cfg)
    distribution = f"arn:aws:cloudfront::{ACCOUNT}:distribution/E123"
    acm_backends[ACCOUNT]["us-east-1"].set_certificate_in_use_by(old, distribution)
    ctx = reported_as(rerun(dns_cfg), old, "EXPIRED")
    certificate.request(ctx)
    assert sorted(certificates()) == sorted([old, ctx.state.get("certificate")["arn"]])
    assert "Keeping replaced certificate" in printed(ctx)


def test_a_replaced_certificate_taken_into_use_meanwhile_is_kept(dns_cfg):
    _, old = requested_once(dns_cfg)
    ctx = reported_as(rerun(dns_cfg), old, "EXPIRED")

    def in_use(**_):
        raise aws_error("DeleteCertificate", "ResourceInUseException", "in use")

    ctx.edge("acm").delete_certificate = in_use
    certificate.request(ctx)
    assert old in certificates() and len(certificates()) == 2
    assert "Keeping replaced certificate" in printed(ctx) and ctx.sleep == []


def test_dns_without_a_zone_prints_the_cname(load_config, pending):
    cfg = load_config(validation="dns")
    ctx = quiet_context(cfg)
    certificate.request(ctx)
    assert boto3.client("route53", region_name="us-east-1").list_hosted_zones()["HostedZones"] == []
    rr = acm().describe_certificate(CertificateArn=ctx.state.get("certificate")["arn"])[
        "Certificate"]["DomainValidationOptions"][0]["ResourceRecord"]
    assert f"{rr['Name'].rstrip('.')}  CNAME  {rr['Value']}" in printed(ctx)


def test_planning_requests_nothing(dns_cfg):
    ctx = quiet_context(dns_cfg, planning=True)
    certificate.request(ctx)
    assert ctx.clients.calls.changing == 0 and certificates() == []
    assert ctx.report.changes == [("create", f"certificate for {DOMAIN} (dns validation)")]
    assert ctx.state.get("certificate")["arn"] == UNKNOWN
    certificate_issued.wait(ctx)
    assert "would wait" in printed(ctx) and ctx.sleep == []


@pytest.mark.parametrize("method, text", [("email", "approval again about 45 days before every expiry"),
                                          ("dns", "renews a DNS-validated")])
def test_the_renewal_caveat_is_said_once_per_run(load_config, hosted_zone, method, text):
    cfg = load_config(validation=method, hosted_zone_id=hosted_zone)
    ctx = quiet_context(cfg)
    certificate.request(ctx)
    certificate.request(ctx)
    certificate_issued.wait(ctx)
    assert printed(ctx).count(RENEWAL) == 1 and text in printed(ctx)
    next_run = rerun(cfg)
    certificate.request(next_run)
    assert printed(next_run).count(RENEWAL) == 1


# --- certificate_issued.wait ----------------------------------------------------

class Approver(list):
    """ctx.sleep for a run: records sleeps and plays the operator, approving after `after` sleeps."""

    def __init__(self, approve, after, when=lambda: True):
        super().__init__()
        self.approve, self.after, self.when, self.ready = approve, after, when, 0

    def __call__(self, seconds):
        self.append(seconds)
        if self.when():
            self.ready += 1
            if self.ready == self.after:
                self.approve()


def test_the_wait_returns_at_once_when_issued(dns_cfg):
    ctx, _ = requested_once(dns_cfg)
    certificate_issued.wait(ctx)
    assert ctx.sleep == []


def test_dns_wait_polls_until_issued(dns_cfg, pending):
    ctx, arn = requested_once(dns_cfg)
    ctx.sleep = Approver(pending, after=3)
    certificate_issued.wait(ctx)
    assert status(arn) == "ISSUED" and len(ctx.sleep) == 3


def test_the_wait_is_bounded_and_resumable(dns_cfg, pending, monkeypatch):
    monkeypatch.setattr(certificate_issued, "ISSUE_TIMEOUT", 60)
    ctx, arn = requested_once(dns_cfg)
    with pytest.raises(DeployError, match="run the same command again"):
        certificate_issued.wait(ctx)
    assert 0 < len(ctx.sleep) <= 60 / certificate_issued.ISSUE_INTERVAL
    resumed = rerun(dns_cfg)
    certificate.request(resumed)
    assert resumed.state.get("certificate")["arn"] == arn and resumed.clients.calls.changing == 0
    resumed.sleep = Approver(pending, after=1)
    certificate_issued.wait(resumed)
    assert status(arn) == "ISSUED"


@pytest.mark.parametrize("dead", ["FAILED", "VALIDATION_TIMED_OUT"])
def test_a_dead_certificate_stops_the_wait_with_what_to_do(dns_cfg, pending, dead):
    ctx, arn = requested_once(dns_cfg)
    reported_as(ctx, arn, dead)
    with pytest.raises(DeployError, match=f"{dead}.*run deploy again"):
        certificate_issued.wait(ctx)


def test_waiting_while_planning_only_says_so(dns_cfg, pending):
    _, arn = requested_once(dns_cfg)
    ctx = rerun(dns_cfg, planning=True)
    certificate_issued.wait(ctx)
    assert f"would wait for certificate {arn}" in printed(ctx)
    assert ctx.sleep == [] and status(arn) == "PENDING_VALIDATION"


def acm_mail(arn, link):
    """ACM's validation mail as SES stores it: quoted-printable, so long lines carry soft breaks."""
    msg = EmailMessage()
    msg["From"] = "Amazon Certificate Manager <no-reply@certificates.amazon.com>"
    msg["To"] = f"admin@{DOMAIN}"
    msg["Subject"] = f"Certificate request for {DOMAIN}"
    msg.set_content(f"Greetings from Amazon Web Services,\n\nDomain: {DOMAIN}\nAWS account ID: {ACCOUNT}\n"
                    f"AWS Region name: us-east-1\nCertificate Identifier: {arn}\n\n"
                    f"To approve this request, go to Amazon Certificate Approvals\n({link})\n"
                    "and follow the instructions on the page.\n", cte="quoted-printable")
    return msg.as_bytes()


def approval_link(arn):
    cert_id = arn.rsplit("/", 1)[-1]
    return (f"https://us-east-1.acm-certificates.amazon.com/approvals?code=0d7e1c53-5a2f-4e8b-9c1d-2f3e4a5b6c7d"
            f"&context={cert_id}-75732d656173742d31")


def test_email_wait_shows_the_approval_link_once_and_ends_when_issued(email_cfg, pending):
    mail.ensure(quiet_context(email_cfg))
    ctx, arn = requested_once(email_cfg)
    other_arn = arn.rsplit("/", 1)[0] + "/9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key="acm/AMAZON_SES_SETUP_NOTIFICATION", Body=b"Subject: setup\r\n\r\nok\r\n")
    s3.put_object(Bucket=BUCKET, Key="acm/older-mail", Body=acm_mail(other_arn, approval_link(other_arn)))
    s3.put_object(Bucket=BUCKET, Key="acm/spam", Body=b"\x00\xffnot mail")
    link = approval_link(arn)
    s3.put_object(Bucket=BUCKET, Key="acm/zz-acm-mail", Body=acm_mail(arn, link))
    assert b"=\n" in acm_mail(arn, link).replace(b"\r\n", b"\n")  # the link really is broken by soft breaks

    run = rerun(email_cfg)
    run.sleep = Approver(pending, after=3, when=lambda: link in printed(run))
    certificate_issued.wait(run)

    out = printed(run)
    assert out.count(link) == 1 and approval_link(other_arn) not in out
    assert status(arn) == "ISSUED" and len(run.sleep) == 3
    assert not any(secret in out for secret in SECRETS.values())


def test_email_wait_keeps_polling_until_the_mail_arrives(email_cfg, pending):
    mail.ensure(quiet_context(email_cfg))
    ctx, arn = requested_once(email_cfg)
    link = approval_link(arn)

    def deliver():  # ACM's mail lands after the first poll, as it does on AWS
        boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key="acm/late", Body=acm_mail(arn, link))

    run = rerun(email_cfg)
    delivery = Approver(deliver, after=1)
    approval = Approver(pending, after=1, when=lambda: link in printed(run))
    run.sleep = lambda seconds: (delivery(seconds), approval(seconds))
    certificate_issued.wait(run)
    assert printed(run).count(link) == 1 and status(arn) == "ISSUED"


def test_email_wait_without_a_mail_bucket_still_waits(email_cfg, pending):
    ctx, arn = requested_once(email_cfg)  # no mail step: the operator receives the mail elsewhere
    ctx.sleep = Approver(pending, after=2)
    certificate_issued.wait(ctx)
    assert status(arn) == "ISSUED"


# --- destroy ------------------------------------------------------------------

def test_destroy_deletes_the_certificate_and_its_cname(dns_cfg):
    requested_once(dns_cfg)
    zone = dns_cfg.domain.hosted_zone_id
    assert cnames(zone)
    ctx = rerun(dns_cfg)
    certificate.destroy(ctx)
    assert certificates() == [] and cnames(zone) == {}
    twice = rerun(dns_cfg)
    certificate.destroy(twice)
    assert twice.clients.calls.changing == 0


def test_destroy_without_state_finds_the_certificate_by_tag(dns_cfg):
    certificate.request(quiet_context(dns_cfg))  # the run ends before the step's state is saved
    ctx = quiet_context(dns_cfg)
    assert "arn" not in ctx.state.get("certificate")
    certificate.destroy(ctx)
    assert certificates() == []


def test_destroy_leaves_other_certificates_and_their_shared_cname(dns_cfg):
    requested_once(dns_cfg)
    foreign = acm().request_certificate(DomainName=DOMAIN, ValidationMethod="DNS")["CertificateArn"]
    certificate.destroy(rerun(dns_cfg))
    assert certificates() == [foreign]
    assert cnames(dns_cfg.domain.hosted_zone_id)  # ACM's CNAME is per domain: the other one needs it too


def test_destroy_retries_while_a_distribution_still_uses_the_certificate(dns_cfg):
    _, arn = requested_once(dns_cfg)
    ctx = rerun(dns_cfg)
    client = ctx.edge("acm")
    real, attempts = client.delete_certificate, []

    def delete_certificate(**kwargs):
        attempts.append(kwargs["CertificateArn"])
        if len(attempts) <= 2:
            raise aws_error("DeleteCertificate", "ResourceInUseException", "in use")
        return real(**kwargs)

    client.delete_certificate = delete_certificate
    certificate.destroy(ctx)
    assert attempts == [arn] * 3 and len(ctx.sleep) == 2
    assert certificates() == []
    assert "to be released by CloudFront" in printed(ctx)


def test_destroy_gives_up_on_a_certificate_in_use_after_a_bounded_wait(dns_cfg, monkeypatch):
    monkeypatch.setattr(certificate, "RELEASE_TIMEOUT", 60)
    _, arn = requested_once(dns_cfg)
    ctx = rerun(dns_cfg)

    def in_use(**_):
        raise aws_error("DeleteCertificate", "ResourceInUseException", "in use")

    ctx.edge("acm").delete_certificate = in_use
    with pytest.raises(DeployError, match="released by CloudFront"):
        certificate.destroy(ctx)
    # the record goes first (only the certificate knows its name): a re-run finds the certificate again
    assert certificates() == [arn] and not cnames(dns_cfg.domain.hosted_zone_id)


# --- renewal ------------------------------------------------------------------

def renewing(ctx, status):
    """moto has no RenewalSummary: add one to ctx's DescribeCertificate answers for issued certificates,
    as ACM reports it once a renewal has started."""
    def add(parsed, **_):
        cert = parsed.get("Certificate") or {}
        if cert.get("Status") == "ISSUED":
            cert["RenewalSummary"] = {"RenewalStatus": status, "DomainValidationOptions": [
                {"DomainName": DOMAIN, "ValidationDomain": DOMAIN, "ValidationStatus": status}]}

    ctx.edge("acm").meta.events.register("after-call.acm.DescribeCertificate", add)


def expiry(arn):
    return acm().describe_certificate(CertificateArn=arn)["Certificate"]["NotAfter"].strftime("%Y-%m-%d")


def renewal_link(arn):
    return approval_link(arn).replace("0d7e1c53", "7a1b2c3d")


def test_a_renewal_waiting_for_approval_shows_the_renewal_mails_link(email_cfg):
    mail.ensure(quiet_context(email_cfg))
    _, arn = requested_once(email_cfg)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key="acm/0-first-issue", Body=acm_mail(arn, approval_link(arn)))
    s3.put_object(Bucket=BUCKET, Key="acm/z-renewal", Body=acm_mail(arn, renewal_link(arn)))
    first = s3_backends[ACCOUNT]["aws"].buckets[BUCKET].keys["acm/0-first-issue"]
    first.last_modified -= datetime.timedelta(days=153)  # the first mail is older; S3 lists by name
    ctx = rerun(email_cfg)
    renewing(ctx, "PENDING_VALIDATION")
    certificate_issued.wait(ctx)
    out = printed(ctx)
    assert "Approve the renewal of the certificate" in out
    assert renewal_link(arn) in out and approval_link(arn) not in out
    assert f"before {expiry(arn)}" in out
    assert ctx.sleep == [] and ctx.clients.calls.changing == 0  # the certificate still serves: no wait


def test_a_renewal_whose_mail_has_not_arrived_names_the_mailboxes(email_cfg):
    mail.ensure(quiet_context(email_cfg))
    _, arn = requested_once(email_cfg)
    ctx = rerun(email_cfg)
    renewing(ctx, "PENDING_VALIDATION")
    certificate_issued.wait(ctx)
    out = printed(ctx)
    assert f"admin@{DOMAIN}, administrator@{DOMAIN}, hostmaster@{DOMAIN}" in out
    assert "not arrived yet" in out and "run deploy again" in out and ctx.sleep == []


def test_a_renewal_by_a_parent_domains_mailboxes_says_where_to_look(load_config, hosted_zone):
    cfg = load_config(validation="email", hosted_zone_id=hosted_zone, validation_domain="example.com")
    requested_once(cfg)
    ctx = rerun(cfg)
    renewing(ctx, "PENDING_VALIDATION")
    certificate_issued.wait(ctx)
    out = printed(ctx)
    assert "webmaster@example.com" in out and "s3://" not in out
    assert not any(service == "s3" for service, _ in ctx.clients._cache)


@pytest.mark.parametrize("method", ["email", "dns"])
@pytest.mark.parametrize("status, said", [(None, "not started"), ("SUCCESS", "SUCCESS"),
                                          ("PENDING_AUTO_RENEWAL", "PENDING_AUTO_RENEWAL")])
def test_otherwise_one_line_says_expiry_and_renewal_status(load_config, hosted_zone, method, status, said):
    cfg = load_config(validation=method, hosted_zone_id=hosted_zone)
    _, arn = requested_once(cfg)
    ctx = rerun(cfg)
    if status:
        renewing(ctx, status)
    certificate_issued.wait(ctx)
    [line] = [line for line in printed(ctx).splitlines() if "valid until" in line]
    assert f"Certificate valid until {expiry(arn)}; renewal: {said}" in line
    assert "Approve" not in printed(ctx)
