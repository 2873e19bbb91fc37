"""The domain's record pointing at the distribution: the last step, so the domain goes live last.

With a hosted zone: alias A and AAAA records at the domain, targeting the
distribution. Without one: the CNAME the operator must create is printed.

Pitfalls:
- a CNAME cannot share its name with other records, and email validation
  put an MX at the domain: that MX (exactly the one the mail step wrote) is
  removed first, and the operator is told to remove it when we cannot;
- records carry no tags, so ownership is judged by value: teardown removes
  the A/AAAA records only if they alias the stack's distribution (known from
  the state, or found by its comment and tags). If the distribution is
  unknown, the records are left alone with a note: an alias to some other
  distribution may well be the operator's, and deleting a live domain's
  record is worse than leaving a dangling one for the operator to remove.
"""
from __future__ import annotations

from . import cloudfront, dns
from ..context import UNKNOWN
from ..errors import DeployError

STEP = "domain_record"
TYPES = ("A", "AAAA")


def _target(ctx) -> str | None:
    """The stack's distribution domain: from this step's or CloudFront's state, else looked up."""
    known = ctx.state.get(STEP).get("alias_target") or ctx.state.get(cloudfront.STEP).get("domain_name")
    if known:
        return known
    found = cloudfront.find(ctx)
    return found["DomainName"] if found else None


def ensure(ctx) -> None:
    domain, zone = ctx.config.domain.name, ctx.config.domain.hosted_zone_id
    target = ctx.state.get(cloudfront.STEP).get("domain_name")
    if not target:
        if not ctx.planning:
            raise DeployError("the domain record needs the CloudFront distribution, and the state has no record "
                              "of it; run deploy, which runs the cloudfront step first")
        target = UNKNOWN
    email = ctx.config.domain.validation == "email"
    if zone is None:
        mx = dns.validation_mx(ctx.config)
        first = (f"First remove the MX record used for certificate approval:\n  {mx.text()}\n\n" if email else "")
        ctx.out.notice("DNS record to create at your DNS provider",
                       f"{first}{dns.Record(domain, 'CNAME', (target,)).text()}")
    else:
        if email:
            dns.remove(ctx, zone, domain, "MX", only_if=dns.validation_mx(ctx.config))
        for rtype in TYPES:
            dns.ensure(ctx, zone, dns.Record(domain, rtype, alias_target=target))
    if target != UNKNOWN:
        ctx.state.put(STEP, {"alias_target": target})


def destroy(ctx) -> None:
    domain, zone = ctx.config.domain.name, ctx.config.domain.hosted_zone_id
    target = _target(ctx)
    if zone is None:
        if target:
            ctx.out.notice("DNS record to remove at your DNS provider",
                           dns.Record(domain, "CNAME", (target,)).text())
        return
    for rtype in TYPES:
        if target:
            dns.remove(ctx, zone, domain, rtype, only_if=dns.Record(domain, rtype, alias_target=target))
        elif dns.current(ctx, zone, domain, rtype):
            ctx.out.note(f"Leaving DNS record {domain} {rtype}: the stack's distribution is unknown, so it cannot "
                         "tell whether the record is its own; remove it by hand if it points nowhere")
