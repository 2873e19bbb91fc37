"""The wait for the stack's certificate to be ISSUED: a step of its own, so that the rest of the stack
is built while ACM validates, and only CloudFront waits for it.

For email validation it shows ACM's approval link as soon as the mail lands in the stack's bucket (and
again for a renewal's mail); for DNS validation it waits for ACM to see the validation CNAME. It owns no
resource: teardown has nothing to do for it.
"""
from __future__ import annotations

from botocore.exceptions import ClientError

from ..aws import approval
from ..aws_errors import NO_SUCH_BUCKET
from ..context import UNKNOWN, Context
from ..errors import DeployError, is_code
from ..registry import Step, nothing
from ..waits import wait_until
from . import certificate, mail

ISSUE_TIMEOUT = 60 * 60          # ACM itself gives up after 72 h; re-running resumes the wait
ISSUE_INTERVAL = 15
MAX_MAIL_BYTES = 1024 * 1024     # ACM's mail is a few kB; anything else mailed to the domain is skipped


def observe(ctx: Context) -> tuple[str, dict | None] | None:
    """The certificate the last run recorded (a hint: the certificate step may request another), described."""
    arn = ctx.state.earlier("certificate").get("arn")
    return (arn, certificate.described(ctx.edge("acm"), arn)) if arn and arn != UNKNOWN else None


def wait(ctx: Context, seen: tuple[str, dict | None] | None = None) -> None:
    """Wait (bounded, resumable) until the certificate is ISSUED; for email, show the approval link.
    seen: observe's (ARN, description), used when the ARN is still the certificate step's."""
    acm, domain, method = ctx.edge("acm"), ctx.config.domain.name, certificate.validation_method_of(ctx)
    arn = ctx.state.get("certificate").get("arn")
    if seen is not None and seen[0] == arn:
        cert = seen[1]
    else:
        cert = certificate.described(acm, arn) if arn and arn != UNKNOWN else None
    if cert is None and arn != UNKNOWN:
        cert = next((c for c in certificate.ours(ctx) if certificate.usable(c, ctx)), None)
    if cert is None:
        if ctx.planning:
            ctx.out.note(f"would wait for the new certificate for {domain} to be issued ({method.lower()} validation)")
            return
        raise DeployError(f"no certificate for {domain} was found; run deploy again (its certificate step "
                          "requests one)")
    arn = cert["CertificateArn"]
    fail_if_dead(cert)
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



def _renewal_status(ctx: Context, cert: dict) -> None:
    """An issued certificate: its renewal's approval link if one waits for it, else one line of status."""
    arn, domain = cert["CertificateArn"], ctx.config.domain.name
    summary = cert.get("RenewalSummary") or {}
    renewal = summary.get("RenewalStatus")
    expiry = _day(cert.get("NotAfter"))
    if renewal == "PENDING_VALIDATION" and certificate.validation_method_of(ctx) == "EMAIL":
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
                           f"{certificate.addresses(where)}"
                           + (f"; SES stores that mail in s3://{mail.bucket_name(ctx)}/{mail.PREFIX}, where it has "
                              "not arrived yet: run deploy again to see the link."
                              if ctx.config.domain.receives_mail else ": open the mail and choose Approve."))
        return
    state = renewal or "not started (ACM starts 45 days before expiry)"
    ctx.out.note(f"Certificate valid until {expiry}; renewal: {state}"
                 + (f" ({summary['RenewalStatusReason']})" if summary.get("RenewalStatusReason") else ""))


def _day(value) -> str:
    return value.strftime("%Y-%m-%d") if hasattr(value, "strftime") else str(value or "unknown")


def fail_if_dead(cert: dict) -> None:
    if cert["Status"] in certificate.DEAD:
        reason = f" ({cert['FailureReason']})" if cert.get("FailureReason") else ""
        raise DeployError(f"certificate {cert['CertificateArn']} is {cert['Status']}{reason}; run deploy again: its "
                          "certificate step requests a new one (for email validation, have the approval mail "
                          "answered within 72 hours)")


def _issued(acm, arn: str) -> bool:
    cert = certificate.described(acm, arn)
    if cert is None:
        raise DeployError(f"certificate {arn} was deleted while waiting for it; run deploy again")
    fail_if_dead(cert)
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
        ctx.out.note(f"ACM mails {certificate.addresses(domain)}; SES stores the mail in s3://{bucket}/{mail.PREFIX} and the "
                     "approval link will show here")
    else:
        ctx.out.notice(f"Approve the certificate for {domain} by mail",
                       f"ACM mails {certificate.addresses(ctx.config.domain.validation_domain)}. Open the mail from "
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


STEP = Step("certificate_issued", "Certificate issued", wait, nothing, needs=("certificate",), observe=observe)
