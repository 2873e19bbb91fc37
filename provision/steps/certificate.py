"""Steps "certificate" and "certificate_issued": the domain's ACM certificate, in us-east-1.

CloudFront takes certificates from us-east-1 only. Validation takes minutes
(DNS) to as long as the operator needs to click a link (email), so the
certificate is requested early (``request``) and awaited only right before
CloudFront needs it (``wait_issued``), overlapping the steps in between.

- DNS validation: ACM's CNAME goes into the hosted zone (or is printed); ACM
  renews such a certificate by itself while the CNAME stays.
- Email validation: ACM mails the validation domain (the domain itself, or
  the parent set as ``validation_domain``). For the domain itself the mail
  step's SES rule stores the mail in S3, where ``wait_issued`` finds the
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

from ..aws_errors import NO_SUCH_BUCKET, RESOURCE_IN_USE_EXCEPTION, RESOURCE_NOT_FOUND_EXCEPTION
from ..config import Config
from ..context import EDGE_REGION, UNKNOWN, Context
from ..errors import DeployError, is_code, or_none
from ..registry import Names, Owns
from ..tags import as_dict, is_ours
from ..together import together
from ..waits import retry_while, wait_until
from . import approval, dns, mail

VALIDATION_TAG = "validation"  # "dns" or "email", beside the stack's tags
VALIDATION_DOMAIN_TAG = "validation-domain"  # the domain ACM mails, for email validation
MAILBOXES = ("admin", "administrator", "hostmaster", "postmaster", "webmaster")  # ACM mails these, nothing else
ALL_STATUSES = ["PENDING_VALIDATION", "ISSUED", "INACTIVE", "EXPIRED", "VALIDATION_TIMED_OUT", "REVOKED", "FAILED"]
USABLE = ("ISSUED", "PENDING_VALIDATION")
DEAD = ("FAILED", "VALIDATION_TIMED_OUT", "EXPIRED", "REVOKED", "INACTIVE")
ISSUE_TIMEOUT = 60 * 60          # ACM itself gives up after 72 h; re-running resumes the wait
ISSUE_INTERVAL = 15
RECORD_TIMEOUT = 120             # ACM publishes the DNS validation record within seconds
KNOWN_TIMEOUT = 60               # a new certificate is described within seconds; a deleted one never
RELEASE_TIMEOUT = 20 * 60        # CloudFront lets go of a certificate minutes after a distribution is deleted
MAX_MAIL_BYTES = 1024 * 1024     # ACM's mail is a few kB; anything else mailed to the domain is skipped


def observe(ctx: Context) -> list[dict]:
    """This stack's certificates for the domain (the state's, else all by tag), described with their tags."""
    return _hinted(ctx) or _ours(ctx)


def request(ctx: Context, seen: list[dict] | None = None) -> None:
    """Find this stack's certificate for the domain, or request one; never wait for ISSUED here.
    seen: what observe found (None: look now)."""
    method = _method(ctx)
    certs = observe(ctx) if seen is None else seen
    cert = next((c for c in certs if _usable(c, ctx)), None)
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


def observe_issued(ctx: Context) -> tuple[str, dict | None] | None:
    """The certificate the last run recorded (a hint: the certificate step may request another), described."""
    arn = ctx.state.earlier("certificate").get("arn")
    return (arn, _describe(ctx.edge("acm"), arn)) if arn and arn != UNKNOWN else None


def wait_issued(ctx: Context, seen: tuple[str, dict | None] | None = None) -> None:
    """Wait (bounded, resumable) until the certificate is ISSUED; for email, show the approval link.
    seen: observe_issued's (ARN, description), used when the ARN is still the certificate step's."""
    acm, domain, method = ctx.edge("acm"), ctx.config.domain.name, _method(ctx)
    arn = ctx.state.get("certificate").get("arn")
    if seen is not None and seen[0] == arn:
        cert = seen[1]
    else:
        cert = _describe(acm, arn) if arn and arn != UNKNOWN else None
    if cert is None and arn != UNKNOWN:
        cert = next((c for c in _ours(ctx) if _usable(c, ctx)), None)
    if cert is None:
        if ctx.planning:
            ctx.out.note(f"would wait for the new certificate for {domain} to be issued ({method.lower()} validation)")
            return
        raise DeployError(f"no certificate for {domain} was found; run deploy again (its certificate step "
                          "requests one)")
    arn = cert["CertificateArn"]
    _fail_if_dead(cert)
    if cert["Status"] == "ISSUED":
        _renewal_status(ctx, cert)
        return
    if ctx.planning:
        ctx.out.note(f"would wait for certificate {arn} ({cert['Status']}) to be issued ({method.lower()} validation)")
        return
    if method == "EMAIL":
        _wait_for_approval(ctx, arn)
        return
    how = ("once the validation CNAME resolves" if ctx.config.domain.hosted_zone_id
           else "once you have created the validation CNAME shown earlier")
    wait_until(ctx, f"certificate for {domain} to be issued (ACM checks DNS every few minutes; {how})",
               lambda: _issued(acm, arn), timeout=ISSUE_TIMEOUT, interval=ISSUE_INTERVAL)


def destroy(ctx: Context) -> None:
    """Remove each certificate's validation CNAME, then the certificate.

    In that order because only the certificate knows the record's name: a run
    that died between the two must leave the certificate, not the record.
    """
    acm, zone = ctx.edge("acm"), ctx.config.domain.hosted_zone_id
    listed = _listed(ctx)
    others = any(not is_ours(tags, ctx.stack) for tags, _ in listed)  # ACM's CNAME is per domain, shared
    for cert in _ours(ctx, listed):
        record = _record_in(cert, ctx.config.domain.name)
        if record and zone and not others:
            dns.remove(ctx, zone, record.name, record.type, only_if=record)
        _delete(ctx, acm, cert["CertificateArn"], wait_for_release=True)


# --- finding ------------------------------------------------------------------

def _method(ctx: Context) -> str:
    return ctx.config.domain.validation.upper()


def _describe(acm, arn: str) -> dict | None:
    found = or_none(acm.describe_certificate, RESOURCE_NOT_FOUND_EXCEPTION, CertificateArn=arn)
    return found and found["Certificate"]


def _hinted(ctx: Context) -> list[dict]:
    """The state's certificate, if it is still ours, for the domain and usable: saves the listing."""
    arn = ctx.state.get("certificate").get("arn")
    if not arn or arn == UNKNOWN:
        return []
    cert = _with_tags(ctx, ctx.edge("acm"), arn)
    if (cert is None or cert.get("DomainName") != ctx.config.domain.name or not is_ours(cert["Tags"], ctx.stack)
            or not _usable(cert, ctx)):
        return []
    return [cert]


def _with_tags(ctx: Context, acm, arn: str) -> dict | None:
    """The description plus its tags (which say the stack, and the validation method it was requested with),
    read at once; None when ACM does not know the ARN."""
    cert, tags = together(ctx, lambda c: _describe(acm, arn),
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
        cert, tags = together(ctx, lambda c: _describe(acm, arn),
                              lambda c: or_none(acm.list_tags_for_certificate, RESOURCE_NOT_FOUND_EXCEPTION,
                                                CertificateArn=arn))
        found = as_dict((tags or {}).get("Tags"))
        return found, cert and {**cert, "Tags": found}
    return together(ctx, *[lambda c, arn=s["CertificateArn"]: tagged(arn) for s in _domain_certificates(ctx)])


def _ours(ctx: Context, listed: list[tuple[dict, dict | None]] | None = None) -> list[dict]:
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


def _usable(cert: dict, ctx) -> bool:
    """Issued or pending, for the validation method (and, for email, the validation domain) configured."""
    method = _method(ctx)
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
        wait_until(ctx, f"ACM to describe certificate {arn}", lambda: _describe(acm, arn) is not None,
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
        lambda: _record_in(_describe(ctx.edge("acm"), arn), domain), timeout=RECORD_TIMEOUT, interval=5)
    zone = ctx.config.domain.hosted_zone_id
    if zone:
        dns.ensure(ctx, zone, record)
    elif (cert or {}).get("Status") != "ISSUED":
        ctx.out.notice(f"Create this DNS record for {domain}",
                       f"{record.text()}\n\nACM issues the certificate once it resolves, and renews it "
                       "while it stays: keep it.")


def _addresses(validation_domain: str) -> str:
    return ", ".join(f"{box}@{validation_domain}" for box in MAILBOXES)


def _renewal_note(ctx: Context, method: str) -> None:
    """How this certificate renews, once per run, in the words of the validation mode."""
    domain, validation_domain = ctx.config.domain.name, ctx.config.domain.validation_domain
    if method == "DNS":
        text = "ACM renews a DNS-validated certificate by itself while the validation CNAME stays."
    elif not ctx.config.domain.receives_mail:
        text = (f"ACM mails {_addresses(validation_domain)} to approve this certificate, now and about 45 days "
                "before every expiry; approve each mail, or the certificate lapses.")
    else:
        text = (f"ACM mails the approval again about 45 days before every expiry; the MX record, the SES rule and "
                f"the mail bucket stay so that it reaches s3://{mail.bucket_name(ctx)}/{mail.PREFIX}, and "
                f"'deploy' then shows the approval link for {domain}.")
    ctx.out.once("certificate-renewal", f"Renewal: {text}")


def _renewal_status(ctx: Context, cert: dict) -> None:
    """An issued certificate: its renewal's approval link if one waits for it, else one line of status."""
    arn, domain = cert["CertificateArn"], ctx.config.domain.name
    summary = cert.get("RenewalSummary") or {}
    renewal = summary.get("RenewalStatus")
    expiry = _day(cert.get("NotAfter"))
    if renewal == "PENDING_VALIDATION" and _method(ctx) == "EMAIL":
        where = ctx.config.domain.validation_domain
        link = (_find_link(ctx.mail("s3"), mail.bucket_name(ctx), arn, set())
                if ctx.config.domain.receives_mail else None)
        if link:
            ctx.out.notice(f"Approve the renewal of the certificate for {domain}",
                           f"ACM's renewal mail has arrived. Open this link and choose Approve before {expiry}, "
                           f"or the certificate expires:\n\n{link}\n\nCertificate: {arn}")
        else:
            ctx.out.notice(f"Approve the renewal of the certificate for {domain}",
                           f"ACM waits for the renewal to be approved by mail before {expiry}. It mailed "
                           f"{_addresses(where)}"
                           + (f"; SES stores that mail in s3://{mail.bucket_name(ctx)}/{mail.PREFIX}, where it has "
                              "not arrived yet: run deploy again to see the link."
                              if ctx.config.domain.receives_mail else ": open the mail and choose Approve."))
        return
    state = renewal or "not started (ACM starts 45 days before expiry)"
    ctx.out.note(f"Certificate valid until {expiry}; renewal: {state}"
                 + (f" ({summary['RenewalStatusReason']})" if summary.get("RenewalStatusReason") else ""))


def _day(value) -> str:
    return value.strftime("%Y-%m-%d") if hasattr(value, "strftime") else str(value or "unknown")


def _fail_if_dead(cert: dict) -> None:
    if cert["Status"] in DEAD:
        reason = f" ({cert['FailureReason']})" if cert.get("FailureReason") else ""
        raise DeployError(f"certificate {cert['CertificateArn']} is {cert['Status']}{reason}; run deploy again: its "
                          "certificate step requests a new one (for email validation, have the approval mail "
                          "answered within 72 hours)")


def _issued(acm, arn: str) -> bool:
    cert = _describe(acm, arn)
    if cert is None:
        raise DeployError(f"certificate {arn} was deleted while waiting for it; run deploy again")
    _fail_if_dead(cert)
    return cert["Status"] == "ISSUED"


def _wait_for_approval(ctx: Context, arn: str) -> None:
    """Look for ACM's mail in the bucket, show its link once, wait until the certificate is ISSUED.

    With a parent validation domain there is no bucket: the operator reads the mail there.
    """
    acm, s3, domain = ctx.edge("acm"), ctx.mail("s3"), ctx.config.domain.name
    bucket, receives = mail.bucket_name(ctx), ctx.config.domain.receives_mail
    seen: set[str] = set()
    shown: list[str] = []
    if receives:
        ctx.out.note(f"ACM mails {_addresses(domain)}; SES stores the mail in s3://{bucket}/{mail.PREFIX} and the "
                     "approval link will show here")
    else:
        ctx.out.notice(f"Approve the certificate for {domain} by mail",
                       f"ACM mails {_addresses(ctx.config.domain.validation_domain)}. Open the mail from "
                       f"no-reply@certificates.amazon.com naming\n{arn}\nfollow its link and choose Approve; "
                       "this run waits until the certificate is issued.")

    def check() -> bool:
        if receives and not shown:
            link = _find_link(s3, bucket, arn, seen)
            if link:
                shown.append(link)
                ctx.out.notice(f"Approve the certificate for {domain}",
                               f"ACM's approval mail has arrived. Open this link and choose Approve:\n\n{link}\n\n"
                               f"Certificate: {arn}\nThis run waits until the certificate is issued.")
        return _issued(acm, arn)

    what = (f"certificate for {domain} to be approved by mail and issued (the link appears when ACM's mail "
            "arrives; run deploy again to resume)")
    wait_until(ctx, what, check, timeout=ISSUE_TIMEOUT, interval=ISSUE_INTERVAL)


def _find_link(s3, bucket: str, arn: str, seen: set[str]) -> str | None:
    """The approval link in the newest mail about this certificate; each mail is read once per run."""
    try:
        pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=mail.PREFIX))
    except ClientError as exc:
        if is_code(exc, NO_SUCH_BUCKET):
            return None
        raise
    objects = sorted((o for page in pages for o in page.get("Contents", [])),
                     key=lambda o: o["LastModified"], reverse=True)  # a renewal's mail before the first
    for obj in objects:
        if obj["Key"] in seen:
            continue
        seen.add(obj["Key"])
        if obj.get("Size", 0) > MAX_MAIL_BYTES:
            continue
        raw = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        link = approval.find_approval_link(raw, arn)
        if link:
            return link
    return None


# --- what the step owns (provision/registry.py) ---------------------------------



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


OWNS = Owns(inventory=(inventory, dns.inventory), arns={"acm": _certificate_arns, "route53": dns.arns},
            creates=("RequestCertificate", "ChangeResourceRecordSets"),
            removes=("DeleteCertificate",))
