"""The domain's record pointing at the distribution: the last step, so the domain goes live last.

With a hosted zone: alias A and AAAA records at the domain, targeting the
distribution; they share the name with the mail step's MX, which stays so
that ACM's renewal mail arrives. The AAAA alias only when an IPv6 range is
allowed (as IPv6 on the distribution: cloudfront.ipv6): a dual-stack caller
would otherwise connect over IPv6 and fall outside an IPv4-only allow-list.
A deploy that drops the IPv6 ranges removes the stack's AAAA alias. Without one: the CNAME the operator must
create is printed.

Pitfalls:
- a CNAME cannot share its name with other records, and email validation of
  the domain itself needs an MX there at every renewal: an operator without a
  hosted zone is told so plainly, with the ways out (an ALIAS/ANAME record at
  their DNS provider, a hosted zone, a parent validation domain, or DNS
  validation);
- the A and AAAA record sets are read at once; they are written one after the
  other, as Route 53 may refuse a change to a zone while the previous one is
  being processed (PriorRequestNotComplete, Route 53 API reference,
  ChangeResourceRecordSets);
- records carry no tags, so ownership is judged by value: teardown removes
  the A/AAAA records only if they alias the stack's distribution (the
  state's if CloudFront still has it as the stack's, else found by its
  comment and tags). If the distribution is
  unknown, the records are left alone with a note: an alias to some other
  distribution may well be the operator's, and deleting a live domain's
  record is worse than leaving a dangling one for the operator to remove.
"""
from __future__ import annotations

from ..aws import dns
from ..config import Config
from ..context import UNKNOWN, Context
from ..errors import DeployError
from ..registry import Account, Step
from ..together import together
from . import cloudfront

NAME = "domain_record"
TYPES = ("A", "AAAA")


def stack_target(ctx: Context, *, fresh: bool = False) -> str | None:
    """The stack's distribution domain: the state's, unless ``fresh``; then as CloudFront has it now
    (``cloudfront.find``: the state's id if it is still the stack's, else by comment and tag), so that a
    state file made stale by another machine's teardown and deploy never makes the stack's own record look
    foreign. With no distribution left, the target the state recorded (an alias to the deleted one)."""
    known = ctx.state.get(NAME).get("alias_target") or ctx.state.get(cloudfront.NAME).get("domain_name")
    if known and not fresh:
        return known
    found = cloudfront.find(ctx)
    return found["DomainName"] if found else known


def ensure(ctx: Context) -> None:
    domain, zone = ctx.config.domain.name, ctx.config.domain.hosted_zone_id
    target = ctx.state.get(cloudfront.NAME).get("domain_name")
    if not target:
        if not ctx.planning:
            raise DeployError("the domain record needs the CloudFront distribution, and the state has no record "
                              "of it; run deploy, which runs the cloudfront step first")
        target = UNKNOWN
    if zone is None:
        cname = dns.Record(domain, "CNAME", (target,)).text()
        if ctx.config.domain.receives_mail:
            ctx.out.notice("DNS record to create at your DNS provider: the MX problem", _mx_conflict(ctx, cname))
        else:
            ctx.out.notice("DNS record to create at your DNS provider", cname)
    else:
        a, aaaa = _current(ctx, zone)
        dns.ensure(ctx, zone, dns.Record(domain, "A", alias_target=target), existing=a)
        if cloudfront.ipv6(ctx):
            dns.ensure(ctx, zone, dns.Record(domain, "AAAA", alias_target=target), existing=aaaa)
        elif target != UNKNOWN:
            dns.remove(ctx, zone, domain, "AAAA", only_if=dns.Record(domain, "AAAA", alias_target=target),
                       existing=aaaa)
    if target != UNKNOWN:
        ctx.state.put(NAME, {"alias_target": target})


def _current(ctx: Context, zone: str) -> list[dict | None]:
    """The domain's A and AAAA record sets, read at once."""
    return together(ctx, *(lambda c, rtype=rtype: dns.current(c, zone, c.config.domain.name, rtype) for rtype in TYPES))


def _mx_conflict(ctx: Context, cname: str) -> str:
    domain, mx = ctx.config.domain.name, dns.validation_mx(ctx.config)
    parent = domain.split(".", 1)[1]
    return (f"{domain} must point at CloudFront, and a CNAME cannot share its name with the MX record that brings "
            f"ACM's mail to SES:\n  {mx.text()}\n"
            "Replace the MX with a CNAME and the certificate works until its renewal (ACM mails the approval about "
            "45 days before expiry, twice a year or more often), then lapses: the mail has nowhere to go.\n\n"
            "Ways out, best first:\n"
            f"  - an ALIAS, ANAME or flattened CNAME record at your DNS provider, beside the MX:\n      "
            f"{domain}  ALIAS  {cname.split()[-1]}\n"
            "  - a Route 53 hosted zone for the domain (domain.hosted_zone_id): this toolkit then writes alias A/AAAA "
            "records beside the MX;\n"
            f"  - domain.validation_domain = \"{parent}\": ACM mails admin@{parent} and the like instead, "
            "mailboxes you read;\n"
            "  - domain.validation = \"dns\": ACM renews by itself.\n\n"
            f"If you create the CNAME anyway (remove the MX first):\n  {cname}")


def destroy(ctx: Context) -> None:
    domain, zone = ctx.config.domain.name, ctx.config.domain.hosted_zone_id
    target = stack_target(ctx, fresh=True)  # a stale state's target would leave the live alias behind
    if zone is None:
        if target:
            ctx.out.notice("DNS record to remove at your DNS provider",
                           dns.Record(domain, "CNAME", (target,)).text())
        return
    for rtype, existing in zip(TYPES, _current(ctx, zone)):
        if target:
            dns.remove(ctx, zone, domain, rtype, only_if=dns.Record(domain, rtype, alias_target=target),
                       existing=existing)
        elif existing:
            ctx.out.note(f"Leaving DNS record {domain} {rtype}: the stack's distribution is unknown, so it cannot "
                         "tell whether the record is its own; remove it by hand if it points nowhere")


# --- the step, declared (provision/registry.py) ---------------------------------



def leaves(config: Config, account: Account) -> list[str]:
    """With a hosted zone: the domain's A alias, and its AAAA alias when an IPv6 range is allowed."""
    if not config.domain.hosted_zone_id:
        return []
    return [dns.listed(config.domain.name, rtype) for rtype in TYPES if rtype == "A" or config.access.ipv6_cidrs]


STEP = Step(NAME, "Domain record", ensure, destroy, needs=("cloudfront", "mail"),
            inventory=(dns.inventory,), leaves=leaves, arns={"route53": dns.arns}, creates=("ChangeResourceRecordSets",),
            removes=("ChangeResourceRecordSets",))
