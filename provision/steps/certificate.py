"""Step "certificate": the domain's ACM certificate, in us-east-1.

CloudFront takes certificates from us-east-1 only. Validation takes minutes
(DNS) to as long as the operator needs to click a link (email), so the
certificate is requested early (``request``) and awaited only right before
CloudFront needs it (step ``certificate_issued``), overlapping the steps in between.

- DNS validation: ACM's CNAME goes into the hosted zone (or is printed); ACM
  renews such a certificate by itself while the CNAME stays.
- Email validation: ACM mails the validation domain (the domain itself, or
  the parent set as ``validation_domain``). For the domain itself the mail
  step's SES rule stores the mail in S3, where ``certificate_issued`` finds the
  approval link for THIS certificate and shows it. Renewal needs the same
  approval by mail about 45 days before every expiry: a deploy while
  ``RenewalSummary.RenewalStatus`` is PENDING_VALIDATION shows the renewal
  mail's link the same way; otherwise it says the expiry date and renewal
  status in one line.

Pitfalls:
- A pending certificate is picked up again (state, else tags), never
  requested twice; a failed, expired or revoked one, or one for the other
  validation method or validation domain, is replaced (and deleted once
  nothing uses it).
- ACM answers a repeated ``IdempotencyToken`` within the hour with the first
  request's ARN, without looking at the request, even when that certificate
  was deleted since (a teardown). So the token carries a nonce kept in the
  state from just before the request until the certificate is known, and a
  new nonce after that: a request retried after a crash repeats its token
  (and a lookup by tag, which RequestCertificate sets atomically, finds the
  certificate first anyway); a request after a teardown, whose state is gone,
  gets a new certificate; and an ARN that DescribeCertificate does not know
  is never used.
- DescribeCertificate may not know a new certificate, or its validation
  record, for a few seconds: read them with a bounded wait.
- A certificate cannot be deleted while a distribution uses it, and
  CloudFront lets go of it minutes after the distribution is gone.
"""
from __future__ import annotations

import datetime
import hashlib
import secrets
from typing import Any

import boto3
from botocore.exceptions import ClientError

from ..aws import dns
from ..aws_errors import RESOURCE_IN_USE_EXCEPTION, RESOURCE_NOT_FOUND_EXCEPTION
from ..config import Config
from ..context import EDGE_REGION, UNKNOWN, Context
from ..errors import DeployError, is_code, or_none
from ..registry import Account, Beyond, Names, Step
from ..tags import as_dict, is_ours
from ..together import together
from ..waits import retry_while, wait_until
from . import mail

VALIDATION_TAG = "validation"  # "dns" or "email", beside the stack's tags
VALIDATION_DOMAIN_TAG = "validation-domain"  # the domain ACM mails, for email validation
MAILBOXES = ("admin", "administrator", "hostmaster", "postmaster", "webmaster")  # ACM mails these, nothing else
ALL_STATUSES = ["PENDING_VALIDATION", "ISSUED", "INACTIVE", "EXPIRED", "VALIDATION_TIMED_OUT", "REVOKED", "FAILED"]
USABLE = ("ISSUED", "PENDING_VALIDATION")
DEAD = ("FAILED", "VALIDATION_TIMED_OUT", "EXPIRED", "REVOKED", "INACTIVE")
RECORD_TIMEOUT = 120             # ACM publishes the DNS validation record within seconds
KNOWN_TIMEOUT = 60               # a new certificate is described within seconds; a deleted one never
RELEASE_TIMEOUT = 20 * 60        # CloudFront lets go of a certificate minutes after a distribution is deleted


def observe(ctx: Context) -> list[dict]:
    """This stack's certificates for the domain (the state's, else all by tag), described with their tags."""
    return _hinted(ctx) or ours(ctx)


def request(ctx: Context, seen: list[dict] | None = None) -> None:
    """Find this stack's certificate for the domain, or request one; never wait for ISSUED here.
    seen: what observe found (None: look now)."""
    method = validation_method_of(ctx)
    certs = observe(ctx) if seen is None else seen
    cert = next((c for c in certs if usable(c, ctx)), None)
    if cert is None:
        arn = _request(ctx, method)
    else:
        arn = cert["CertificateArn"]
    for old in certs:
        if old is not cert:
            _retire(ctx, old)
    if method == "DNS":
        _validation_record(ctx, arn, cert)
    _renewal_note(ctx, method)
    ctx.state.put("certificate", {"arn": arn})  # the request's nonce is spent: the next request gets a new one
    ctx.outputs["Certificate"] = arn


def destroy(ctx: Context) -> None:
    """Remove each certificate's validation CNAME, then the certificate.

    In that order because only the certificate knows the record's name: a run
    that died between the two must leave the certificate, not the record.
    """
    acm, zone = ctx.edge("acm"), ctx.config.domain.hosted_zone_id
    listed = _listed(ctx)
    others = any(not is_ours(tags, ctx.stack) for tags, _ in listed)  # ACM's CNAME is per domain, shared
    for cert in ours(ctx, listed):
        record = _record_in(cert, ctx.config.domain.name)
        if record and zone and not others:
            dns.remove(ctx, zone, record.name, record.type, only_if=record)
        _delete(ctx, acm, cert["CertificateArn"], wait_for_release=True)


# --- finding ------------------------------------------------------------------

def validation_method_of(ctx: Context) -> str:
    return ctx.config.domain.validation.upper()


def described(acm, arn: str) -> dict | None:
    found = or_none(acm.describe_certificate, RESOURCE_NOT_FOUND_EXCEPTION, CertificateArn=arn)
    return found and found["Certificate"]


def _hinted(ctx: Context) -> list[dict]:
    """The state's certificate, if it is still ours, for the domain and usable: saves the listing."""
    arn = ctx.state.get("certificate").get("arn")
    if not arn or arn == UNKNOWN:
        return []
    cert = _with_tags(ctx, ctx.edge("acm"), arn)
    if (cert is None or cert.get("DomainName") != ctx.config.domain.name or not is_ours(cert["Tags"], ctx.stack)
            or not usable(cert, ctx)):
        return []
    return [cert]


def _with_tags(ctx: Context, acm, arn: str) -> dict | None:
    """The description plus its tags (which say the stack, and the validation method it was requested with),
    read at once; None when ACM does not know the ARN."""
    cert, tags = together(ctx, lambda c: described(acm, arn),
                          lambda c: or_none(acm.list_tags_for_certificate, RESOURCE_NOT_FOUND_EXCEPTION,
                                            CertificateArn=arn))
    return None if cert is None or tags is None else {**cert, "Tags": as_dict(tags.get("Tags"))}


def _domain_certificates(ctx: Context) -> list[dict]:
    """Summaries of every certificate in us-east-1 for the domain, whatever its status."""
    pages = ctx.edge("acm").get_paginator("list_certificates").paginate(CertificateStatuses=ALL_STATUSES)
    return [s for page in pages for s in page["CertificateSummaryList"]
            if s.get("DomainName") == ctx.config.domain.name]


def _listed(ctx: Context) -> list[tuple[dict, dict | None]]:
    """Every certificate for the domain: its tags and its description with them (None: gone since the
    listing), each certificate's two read at once and the certificates side by side."""
    acm = ctx.edge("acm")

    def tagged(arn: str) -> tuple[dict, dict | None]:
        cert, tags = together(ctx, lambda c: described(acm, arn),
                              lambda c: or_none(acm.list_tags_for_certificate, RESOURCE_NOT_FOUND_EXCEPTION,
                                                CertificateArn=arn))
        found = as_dict((tags or {}).get("Tags"))
        return found, cert and {**cert, "Tags": found}
    return together(ctx, *[lambda c, arn=s["CertificateArn"]: tagged(arn) for s in _domain_certificates(ctx)])


def ours(ctx: Context, listed: list[tuple[dict, dict | None]] | None = None) -> list[dict]:
    """This stack's certificates for the domain (by tag), described, the most useful first."""
    found = [cert for tags, cert in (_listed(ctx) if listed is None else listed)
             if cert is not None and is_ours(tags, ctx.stack)]
    rank = {"ISSUED": 0, "PENDING_VALIDATION": 1}
    return sorted(found, key=lambda c: (rank.get(c["Status"], 2), -_created(c)))


def _created(cert: dict) -> float:
    created = cert.get("CreatedAt")
    return created.timestamp() if isinstance(created, datetime.datetime) else float(created or 0)


def _validation_method(cert: dict) -> str | None:
    """How the certificate is validated: the tag it was requested with, else what ACM says (None: not yet).

    The tag is set in the same call as the method and neither ever changes; moto reports
    every certificate as DNS-validated, so without the tag --local would replace an
    email-validated certificate on every run.
    """
    if cert.get("Tags", {}).get(VALIDATION_TAG):
        return cert["Tags"][VALIDATION_TAG].upper()
    for option in cert.get("DomainValidationOptions", []):
        if option.get("DomainName") == cert.get("DomainName") and option.get("ValidationMethod"):
            return option["ValidationMethod"]
    return None


def _validation_domain(cert: dict) -> str | None:
    """The domain ACM mails for the certificate: the tag it was requested with, else what ACM says."""
    if cert.get("Tags", {}).get(VALIDATION_DOMAIN_TAG):
        return cert["Tags"][VALIDATION_DOMAIN_TAG]
    for option in cert.get("DomainValidationOptions", []):
        if option.get("DomainName") == cert.get("DomainName"):
            return option.get("ValidationDomain")
    return None


def usable(cert: dict, ctx) -> bool:
    """Issued or pending, for the validation method (and, for email, the validation domain) configured."""
    method = validation_method_of(ctx)
    return (cert.get("Type") == "AMAZON_ISSUED" and cert.get("Status") in USABLE
            and _validation_method(cert) in (None, method)
            and (method != "EMAIL" or _validation_domain(cert) in (None, ctx.config.domain.validation_domain)))


# --- requesting and retiring --------------------------------------------------

def idempotency_token(ctx: Context, method: str, nonce: str) -> str:
    """Per stack, domain, method and request nonce: ACM's hour-long memory of a token returns the
    same certificate to a retried request, and only to it."""
    seed = "|".join([ctx.stack, ctx.config.domain.name, method, nonce])
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def _request(ctx: Context, method: str) -> str:
    """Request the certificate; an ARN that ACM does not know (a deleted certificate's) is never used."""
    nonce = ctx.state.get("certificate").get("nonce")
    for _attempt in range(2):
        nonce = nonce or secrets.token_hex(16)
        if not ctx.planning:  # kept until the certificate is known, so that a retry after a crash repeats it
            ctx.state.put("certificate", {"nonce": nonce})
            ctx.state.save()
        arn = _request_once(ctx, method, nonce)
        if arn == UNKNOWN or _known(ctx, arn):
            return arn
        ctx.out.note(f"ACM answered with certificate {arn}, which it does not know (deleted since its request "
                     "token was first used); requesting again with a new token")
        nonce = None
    ctx.state.drop("certificate")
    raise DeployError(f"ACM twice answered with a certificate it does not know ({arn}); run deploy again")


def _request_once(ctx: Context, method: str, nonce: str) -> str:
    domain = ctx.config.domain.name
    tags = ctx.tag_list + [{"Key": VALIDATION_TAG, "Value": method.lower()}]
    kwargs: dict[str, Any] = {"DomainName": domain, "ValidationMethod": method, "Tags": tags,
              "IdempotencyToken": idempotency_token(ctx, method, nonce)}
    what = f"certificate for {domain} ({method.lower()} validation)"
    if method == "EMAIL":
        validation_domain = ctx.config.domain.validation_domain
        tags.append({"Key": VALIDATION_DOMAIN_TAG, "Value": validation_domain})
        kwargs["DomainValidationOptions"] = [{"DomainName": domain, "ValidationDomain": validation_domain}]
        if validation_domain != domain:
            what = f"certificate for {domain} (email validation via {validation_domain})"
    result = ctx.change("create", what, ctx.edge("acm").request_certificate, **kwargs)
    return result["CertificateArn"] if result else UNKNOWN


def _known(ctx: Context, arn: str) -> bool:
    """Whether DescribeCertificate knows the ARN (a new one within seconds; a deleted one never)."""
    acm = ctx.edge("acm")
    try:
        wait_until(ctx, f"ACM to describe certificate {arn}", lambda: described(acm, arn) is not None,
                   timeout=KNOWN_TIMEOUT, interval=5)
    except DeployError:
        return False
    return True


def _retire(ctx: Context, cert: dict) -> None:
    """Delete a certificate that was replaced, unless something still uses it (a later run will)."""
    arn = cert["CertificateArn"]
    users = ", ".join(cert.get("InUseBy") or []) or "a distribution"
    if not cert.get("InUseBy"):
        try:
            _delete(ctx, ctx.edge("acm"), arn, wait_for_release=False)
            return
        except ClientError as exc:
            if not is_code(exc, RESOURCE_IN_USE_EXCEPTION):
                raise
    ctx.out.note(f"Keeping replaced certificate {arn} ({cert['Status']}) while {users} uses it; "
                 "a later run deletes it")


def _delete(ctx: Context, acm, arn: str, wait_for_release: bool) -> None:
    def delete():
        if not wait_for_release:
            return acm.delete_certificate(CertificateArn=arn)
        return retry_while(ctx, f"certificate {arn} to be released by CloudFront (minutes after its "
                                "distribution is deleted)",
                           lambda: acm.delete_certificate(CertificateArn=arn),
                           lambda exc: is_code(exc, RESOURCE_IN_USE_EXCEPTION),
                           timeout=RELEASE_TIMEOUT, interval=10, max_interval=60)
    try:
        ctx.change("delete", f"certificate {arn}", delete)
    except ClientError as exc:
        if not is_code(exc, RESOURCE_NOT_FOUND_EXCEPTION):
            raise


# --- validation ---------------------------------------------------------------

def _record_in(cert: dict | None, domain: str) -> dns.Record | None:
    for option in (cert or {}).get("DomainValidationOptions", []):
        rr = option.get("ResourceRecord")
        if option.get("DomainName") == domain and option.get("ValidationMethod", "DNS") == "DNS" and rr:
            return dns.Record(rr["Name"].rstrip("."), rr["Type"], (rr["Value"],))
    return None


def _validation_record(ctx: Context, arn: str, cert: dict | None) -> None:
    """Write ACM's validation CNAME to the zone (kept: renewal uses it too), or print it."""
    domain = ctx.config.domain.name
    if arn == UNKNOWN:
        ctx.out.note("The DNS validation record is known once the certificate is requested")
        return
    record = _record_in(cert, domain) or wait_until(
        ctx, "ACM to publish the DNS validation record",
        lambda: _record_in(described(ctx.edge("acm"), arn), domain), timeout=RECORD_TIMEOUT, interval=5)
    zone = ctx.config.domain.hosted_zone_id
    if zone:
        dns.ensure(ctx, zone, record)
    elif (cert or {}).get("Status") != "ISSUED":
        ctx.out.notice(f"Create this DNS record for {domain}",
                       f"{record.text()}\n\nACM issues the certificate once it resolves, and renews it "
                       "while it stays: keep it.")


def addresses(validation_domain: str) -> str:
    return ", ".join(f"{box}@{validation_domain}" for box in MAILBOXES)


def _renewal_note(ctx: Context, method: str) -> None:
    """How this certificate renews, once per run, in the words of the validation mode."""
    domain, validation_domain = ctx.config.domain.name, ctx.config.domain.validation_domain
    if method == "DNS":
        text = "ACM renews a DNS-validated certificate by itself while the validation CNAME stays."
    elif not ctx.config.domain.receives_mail:
        text = (f"ACM mails {addresses(validation_domain)} to approve this certificate, now and about 45 days "
                "before every expiry; approve each mail, or the certificate lapses.")
    else:
        text = (f"ACM mails the approval again about 45 days before every expiry; the MX record, the SES rule and "
                f"the mail bucket stay so that it reaches s3://{mail.bucket_name(ctx)}/{mail.PREFIX}, and "
                f"'deploy' then shows the approval link for {domain}.")
    ctx.out.once("certificate-renewal", f"Renewal: {text}")


# --- the step, declared (provision/registry.py) ---------------------------------



def inventory(config: Config) -> list[str]:
    """The stack's certificates (by tag), read back with plain boto3 in every region the stack uses."""
    found = []
    for region in config.regions:
        acm = boto3.client("acm", region_name=region)
        found += [f"certificate {cert['DomainName']} in {region}" for cert in acm.list_certificates()["CertificateSummaryList"]
                  if is_ours(acm.list_tags_for_certificate(CertificateArn=cert["CertificateArn"]).get("Tags"),
                             config.stack.name)]
    return found


def _certificate_arns(names: Names, action: str) -> list[str]:
    return [names.arn("acm", EDGE_REGION, "certificate/*")]  # its id is ACM's


BEYOND = (
    Beyond("acm", "RequestCertificate", ("acm:AddTagsToCertificate",),
           "ACM user guide, 'Tagging AWS Certificate Manager certificates': RequestCertificate with Tags needs "
           "acm:AddTagsToCertificate"),
)


def leaves(config: Config, account: Account) -> list[str]:
    """The certificate, in the region CloudFront reads it from, and with DNS validation into a hosted zone
    ACM's CNAME (its name is ACM's token, ``_<token>``)."""
    dns_record = config.domain.validation == "dns" and config.domain.hosted_zone_id
    return [f"certificate {config.domain.name} in {EDGE_REGION}",
            *([dns.listed(f"_<token>.{config.domain.name}", "CNAME")] if dns_record else [])]


STEP = Step("certificate", "Certificate request", request, destroy, needs=("mail",), loose=("mail",),
            observe=observe, sees_needs=False,
            inventory=(inventory, dns.inventory), leaves=leaves, arns={"acm": _certificate_arns, "route53": dns.arns},
            creates=("RequestCertificate", "ChangeResourceRecordSets"),
            removes=("DeleteCertificate",), beyond=BEYOND)
