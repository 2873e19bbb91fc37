"""The WAFv2 web ACL in front of CloudFront: listed source IPs AND the exact Authorization header.

Scope CLOUDFRONT, so everything lives in us-east-1. IPv4 and IPv6 ranges
need separate IP sets (`<stack>-ipv4`, `<stack>-ipv6`); only the ones the
config needs exist. The web ACL `<stack>` blocks by default and has two
rules, in this order:
- `per-caller-limit` (priority 0): a rate-based rule aggregating by source
  IP, ``[access] rate_limit`` requests per ``rate_window_s``; the excess is
  blocked with 429 and a JSON body (a custom response: WAF developer guide,
  "Sending custom responses for Block actions"). It comes first, so one
  allowed caller's runaway script is stopped at the edge before it uses the
  usage plan's throttle that every caller shares; it counts every request
  it sees, allowed callers' or not. WAF counts about every 10 seconds and
  "does not guarantee an exact match" to the limit (developer guide,
  "Rate-based rule caveats"): a burst may pass it by a few seconds' worth.
- `allow-listed-callers` (priority 1): source IP in the set(s) AND header
  `authorization` EXACTLY the secret.
Each rule has its own CloudWatch metric (`<stack>-<rule>`).

Request sampling is off, for the rule and for the default action: a sampled
request keeps every header as sent, the Authorization value too, readable
through GetSampledRequests and the console for three hours. The log's
RedactedFields "has no impact on request sampling" (LoggingConfiguration);
the web ACL's data protection would cover sampling, but the request log
(waf_logging, Authorization redacted) already shows every request, so
sampling adds nothing worth a second place the secret could leak from (and
moto 5.2.5 accepts DataProtectionConfig but drops it, so no test could read
it back).

Pitfalls:
- every update needs the LockToken from a fresh read; changes are made in
  place (update_ip_set / update_web_acl), never by a new ACL, so CloudFront
  keeps its WebACLId;
- the byte match's SearchString comes back as bytes: compare it as bytes,
  and never put it in a description, note, state or error;
- an IP set still referenced by the ACL cannot be deleted: the ACL is
  updated first, then the set no longer needed is removed;
- an IP set created a moment ago may not be visible to the ACL yet
  (WAFUnavailableEntityException): that one error is retried, bounded;
- the ACL cannot be deleted while a distribution still uses it: a disabled
  distribution releases it only once its change has propagated.

Both are found by name (unique per scope) and confirmed by tag: one list
call each. The lookups go out together (``observe``): both lists at once,
beside the tags of the ARNs the state file recorded (a record that still
names the listed resource saves a round trip; one that does not only costs
the tags read again), then each found resource's full read (GetIPSet,
GetWebACL: the lock token) at once. Changes keep AWS's order: the two IP sets at once (neither
needs the other), then the ACL that references both; on teardown the ACL
first, then both sets at once.

Rotating the Authorization value (``rotate authorization``): for a while the
rule accepts the old value OR the new one. The rule itself is the record of
that window (the old value is read back from it, never stored): a plain
deploy keeps a window whose new value is the configured one, whether or not
the state file remembers it; only ``--finish`` drops the old value.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import boto3

from .. import waits
from ..aws_errors import WAF_ASSOCIATED_ITEM_EXCEPTION, WAF_NONEXISTENT_ITEM_EXCEPTION, WAF_UNAVAILABLE_ENTITY_EXCEPTION
from ..config import Config
from ..context import EDGE_REGION, UNKNOWN, Context
from ..errors import DeployError, is_code, or_none
from ..registry import Account, Beyond, Names, Step
from ..tags import as_dict, is_ours
from ..together import together

NAME = "waf"
SCOPE = "CLOUDFRONT"
RULE = "allow-listed-callers"
RATE_RULE = "per-caller-limit"
RATE_BODY = "rate-limited"  # the key of the 429's body among the ACL's CustomResponseBodies
TOO_MANY = 429
VERSIONS = {4: "IPV4", 6: "IPV6"}
RELEASE_TIMEOUT = 20 * 60  # CloudFront releases the ACL once a disabled distribution has deployed
SET_RELEASE_TIMEOUT = 3 * 60  # an IP set dropped from the ACL is free within seconds
SET_VISIBLE_TIMEOUT = 3 * 60  # a new IP set can be referenced within seconds


def acl_name(stack: str) -> str:
    return stack


def ip_set_name(stack: str, version: int) -> str:
    return f"{stack}-ipv{version}"


def wanted_ranges(config: Config) -> dict[int, tuple[str, ...]]:
    """IP version -> the allowed ranges of it, for the versions the config allows any of (each an IP set)."""
    return {v: cidrs for v, cidrs in ((4, config.access.ipv4_cidrs), (6, config.access.ipv6_cidrs)) if cidrs}


def _listed(call, key: str) -> list[dict]:
    """Every summary from a WAFv2 list call (NextMarker paging; boto3 has no paginator for these)."""
    items, marker = [], None
    while True:
        page = call(Scope=SCOPE, Limit=100, **({"NextMarker": marker} if marker else {}))
        items += page.get(key, [])
        marker = page.get("NextMarker")
        if not marker or not page.get(key):
            return items


@dataclass
class Found:
    """One resource as listed, with its tags and (for ensure) its full read: the LockToken comes from it."""
    summary: dict
    tags: list | None
    got: dict | None = field(default=None, repr=False)  # a web ACL's holds the Authorization value(s)


@dataclass
class Seen:
    """What observe read, as AWS answered: the stack's IP sets by IP version and its web ACL, None where
    nothing has the name. Whether each is the stack's is ensure's (or destroy's) to judge."""
    ip_sets: dict[int, Found | None]
    acl: Found | None


def observe(ctx: Context, full: bool = True) -> Seen:
    """Both lists at once, beside the tags of the ARNs the state recorded; then the tags the record did
    not cover and (full) every named resource's read, at once.

    The resources are still found by name in the listing; the recorded ARNs only let their tags be
    asked before the listing answers. full=False (teardown) leaves out GetIPSet and GetWebACL: a
    delete takes the listed LockToken.
    """
    waf = ctx.edge("wafv2")
    known = ctx.state.get(NAME)
    recorded = [arn for arn in (known.get("ipv4_set_arn"), known.get("ipv6_set_arn"), known.get("web_acl_arn"))
                if arn]
    sets, acls, *answers = together(ctx, lambda c: _listed(waf.list_ip_sets, "IPSets"),
                                    lambda c: _listed(waf.list_web_acls, "WebACLs"),
                                    *(lambda c, arn=arn: or_none(waf.list_tags_for_resource,
                                                                 WAF_NONEXISTENT_ITEM_EXCEPTION, ResourceARN=arn)
                                      for arn in recorded))
    tagged = {arn: answer["TagInfoForResource"].get("TagList") for arn, answer in zip(recorded, answers) if answer}
    named: dict[int | str, dict | None] = {v: _named(sets, ip_set_name(ctx.stack, v)) for v in VERSIONS}
    named["acl"] = _named(acls, acl_name(ctx.stack))
    listed = {key: summary for key, summary in named.items() if summary is not None}
    looks = together(ctx, *(lambda c, key=key, summary=summary: _look(c, summary, key == "acl", full, tagged)
                            for key, summary in listed.items()))
    found = dict(zip(listed, looks))
    return Seen({version: found.get(version) for version in VERSIONS}, found.get("acl"))


def _look(ctx: Context, summary: dict, is_acl: bool, full: bool, tagged: dict[str, list | None]) -> Found:
    """One listed resource's tags (unless already read by its ARN) and (full) its read, at once."""
    waf = ctx.edge("wafv2")
    get = waf.get_web_acl if is_acl else waf.get_ip_set
    arn = summary["ARN"]
    tags, got = together(ctx, lambda c: tagged[arn] if arn in tagged else _tags(c, arn),
                         lambda c: get(Name=summary["Name"], Scope=SCOPE, Id=summary["Id"]) if full else None)
    return Found(summary, tags, got)


def _named(summaries: list[dict], name: str) -> dict | None:
    return next((s for s in summaries if s["Name"] == name), None)


def _tags(ctx: Context, arn: str) -> list | None:
    return ctx.edge("wafv2").list_tags_for_resource(ResourceARN=arn)["TagInfoForResource"].get("TagList")


def _ours(ctx: Context, found: Found | None, what: str, destroying: bool = False) -> Found | None:
    """found, if it is this stack's.

    Names are unique per scope, so a same-named resource without our tags
    would be someone else's: ensure stops, destroy leaves it alone.
    """
    if found is None or is_ours(found.tags, ctx.stack):
        return found
    name = found.summary["Name"]
    if destroying:
        ctx.out.note(f"Leaving {what} {name}: it is not tagged as this stack's ({as_dict(found.tags)})")
        return None
    raise DeployError(f"{what} {name} exists in us-east-1 (scope CLOUDFRONT) but is not tagged as stack "
                      f"{ctx.stack}'s; delete or rename it, or choose another stack name")


def _find(ctx: Context, call, key: str, name: str, what: str, destroying: bool = False) -> dict | None:
    """The summary of the resource with that name, if it is this stack's (one resource, looked up alone)."""
    summary = _named(_listed(call, key), name)
    found = summary and _ours(ctx, Found(summary, _tags(ctx, summary["ARN"])), what, destroying)
    return found.summary if found else None


def _find_ip_set(ctx: Context, version: int, destroying: bool = False) -> dict | None:
    return _find(ctx, ctx.edge("wafv2").list_ip_sets, "IPSets", ip_set_name(ctx.stack, version), "IP set",
                 destroying)


def _find_acl(ctx: Context, destroying: bool = False) -> dict | None:
    return _find(ctx, ctx.edge("wafv2").list_web_acls, "WebACLs", acl_name(ctx.stack), "web ACL", destroying)


def _addresses(cidrs) -> list[str]:
    """CIDRs in one canonical, sorted form, so AWS's spelling never looks like a change."""
    return sorted(ipaddress.ip_network(c).compressed for c in cidrs)


def _ensure_ip_set(ctx: Context, version: int, cidrs: tuple[str, ...], seen: Found | None) -> str:
    """Create or update one IP set (seen: as observe found it); its ARN (UNKNOWN for a planned create)."""
    waf, name = ctx.edge("wafv2"), ip_set_name(ctx.stack, version)
    description = f"rds-edge-api stack {ctx.stack}: callers allowed to reach the API"
    mine = _ours(ctx, seen, "IP set")
    if mine is None:
        created = ctx.change("create", f"IP set {name}", waf.create_ip_set, Name=name, Scope=SCOPE,
                             IPAddressVersion=VERSIONS[version], Addresses=list(cidrs),
                             Description=description, Tags=ctx.tag_list,
                             find=lambda: (found := _find_ip_set(ctx, version)) and {"Summary": found})
        return created["Summary"]["ARN"] if created else UNKNOWN
    found, current = mine.summary, mine.got or waf.get_ip_set(Name=name, Scope=SCOPE, Id=mine.summary["Id"])
    if _addresses(current["IPSet"]["Addresses"]) != _addresses(cidrs):
        ctx.change("update", f"IP set {name} ({len(cidrs)} ranges)", waf.update_ip_set, Name=name, Scope=SCOPE,
                   Id=found["Id"], Addresses=list(cidrs), Description=description,
                   LockToken=current["LockToken"],  # spent once applied: after a lost answer, look instead
                   find=lambda: {} if _addresses(waf.get_ip_set(Name=name, Scope=SCOPE, Id=found["Id"])["IPSet"]
                                                 ["Addresses"]) == _addresses(cidrs) else None)
    return found["ARN"]


def _visibility(metric: str) -> dict:
    """Metrics on, sampling off: "Request sampling doesn't provide a field redaction option" (WAFv2 API
    reference, VisibilityConfig), so a sample would show the Authorization value."""
    return {"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": True, "MetricName": metric}


def _header_match(value: bytes) -> dict:
    return {"ByteMatchStatement": {
        "SearchString": value,
        "FieldToMatch": {"SingleHeader": {"Name": "authorization"}},
        "TextTransformations": [{"Priority": 0, "Type": "NONE"}],
        "PositionalConstraint": "EXACTLY",
    }}


def _rule(ctx: Context, set_arns: list[str], values: list[bytes]) -> dict:
    """The one Allow rule: source IP in the set(s) AND the exact Authorization header (one of two
    values while a rotation is under way)."""
    references = [{"IPSetReferenceStatement": {"ARN": arn}} for arn in set_arns]
    source = references[0] if len(references) == 1 else {"OrStatement": {"Statements": references}}
    matches = [_header_match(value) for value in values]
    header = matches[0] if len(matches) == 1 else {"OrStatement": {"Statements": matches}}
    return {"Name": RULE, "Priority": 1, "Action": {"Allow": {}},
            "Statement": {"AndStatement": {"Statements": [source, header]}},
            "VisibilityConfig": _visibility(f"{ctx.stack}-{RULE}")}


def _rate_rule(ctx: Context) -> dict:
    """The per-caller limit, before the Allow rule: more than rate_limit requests from one address within
    the window are blocked with 429 while the address stays over it."""
    access = ctx.config.access
    return {"Name": RATE_RULE, "Priority": 0,
            "Action": {"Block": {"CustomResponse": {"ResponseCode": TOO_MANY, "CustomResponseBodyKey": RATE_BODY}}},
            "Statement": {"RateBasedStatement": {"Limit": access.rate_limit, "AggregateKeyType": "IP",
                                                 "EvaluationWindowSec": access.rate_window_s}},
            "VisibilityConfig": _visibility(f"{ctx.stack}-{RATE_RULE}")}


def _bodies(ctx: Context) -> dict:
    access = ctx.config.access
    text = (f'{{"message": "Too many requests from this address: at most {access.rate_limit} in '
            f'{access.rate_window_s} seconds"}}')
    return {RATE_BODY: {"ContentType": "APPLICATION_JSON", "Content": text}}


def accepted_values(acl: dict | None) -> list[bytes]:
    """The Authorization values the Allow rule accepts, oldest first (two only during a rotation).

    Secrets: compare them, never show them.
    """
    rule = next((r for r in (acl or {}).get("Rules", []) if r.get("Name") == RULE), None)
    statements = ((rule or {}).get("Statement") or {}).get("AndStatement", {}).get("Statements") or [{}]
    header = statements[-1]
    matches = (header.get("OrStatement") or {}).get("Statements") or [header]
    return [_plain(m)["ByteMatchStatement"]["SearchString"] for m in matches if "ByteMatchStatement" in m]


def current_acl(ctx: Context) -> dict | None:
    """The stack's web ACL as AWS has it now, or None."""
    found = _find_acl(ctx)
    if found is None:
        return None
    return ctx.edge("wafv2").get_web_acl(Name=acl_name(ctx.stack), Scope=SCOPE, Id=found["Id"])["WebACL"]


def wanted_values(ctx: Context, accepted: list[bytes], rotation: str | None = None) -> list[bytes]:
    """The values the rule should accept: the configured one, and the old one while a window is open.

    rotation "start" opens the window (old from the rule, new from the config), "finish" closes it;
    None (a plain deploy) keeps an open window whose new value is the configured one.
    """
    new = ctx.config.access.authorization.value.encode()
    old = [value for value in accepted if value != new]
    if rotation == "finish" or not old or (rotation is None and new not in accepted):
        return [new]
    return old[-1:] + [new]


def _plain(value):
    """A comparable form of what AWS returns: no None fields, SearchString (a blob) always as bytes.

    boto3 returns the blob as bytes; the comparison never shows it.
    """
    if isinstance(value, dict):
        return {k: (v.encode() if k == "SearchString" and isinstance(v, str) else _plain(v))
                for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _owned(acl: dict) -> dict:
    """The parts of a web ACL this step decides, in comparable form."""
    keys = ("Name", "Priority", "Action", "Statement", "VisibilityConfig")
    rules = [{k: rule.get(k) for k in keys} for rule in acl.get("Rules", [])]
    return _plain({"DefaultAction": acl.get("DefaultAction"), "Rules": rules,
                   "VisibilityConfig": acl.get("VisibilityConfig"),
                   "CustomResponseBodies": acl.get("CustomResponseBodies") or {}})


def _until_sets_visible(ctx: Context, call):
    """WAF may not yet see an IP set created a moment ago (WAFUnavailableEntityException): retry that only."""
    return waits.retry_while(ctx, "WAF to see the new IP set", call,
                             lambda exc: is_code(exc, WAF_UNAVAILABLE_ENTITY_EXCEPTION), timeout=SET_VISIBLE_TIMEOUT)


def ensure(ctx: Context, rotation: str | None = None, seen: Seen | None = None) -> None:
    """rotation: "start" or "finish" from ``rotate authorization``; None for deploy (keeps a window open).
    seen: what observe read (else it is read now)."""
    seen = seen or observe(ctx)
    for found_one, what in [*((f, "IP set") for f in seen.ip_sets.values()), (seen.acl, "web ACL")]:
        _ours(ctx, found_one, what)  # someone else's resource of the name stops the deploy before any change
    wanted = wanted_ranges(ctx.config)
    arns = together(ctx, *(lambda c, version=version, cidrs=cidrs: _ensure_ip_set(c, version, cidrs,
                                                                                    seen.ip_sets[version])
                           for version, cidrs in wanted.items()))
    set_arns = dict(zip(wanted, arns))
    ensured = _ensure_acl(ctx, seen.acl, list(set_arns.values()), rotation)
    if ensured is None:
        return
    found, overlap = ensured
    together(ctx, *(lambda c, version=version: _delete_ip_set(c, version, seen.ip_sets[version], destroying=False)
                    for version in sorted(VERSIONS.keys() - wanted.keys())))
    _record(ctx, found, set_arns, overlap)


def _ensure_acl(ctx: Context, seen: Found | None, set_arns: list[str],
                rotation: str | None) -> tuple[dict, bool] | None:
    """Create or update the web ACL (seen: as observe found it); (its summary, whether the old and the new
    Authorization value are both accepted), or None for a planned create."""
    acl = _ours(ctx, seen, "web ACL")
    current = None if acl is None else acl.got or ctx.edge("wafv2").get_web_acl(
        Name=acl_name(ctx.stack), Scope=SCOPE, Id=acl.summary["Id"])
    values = wanted_values(ctx, accepted_values(current and current["WebACL"]), rotation)
    desired = {"DefaultAction": {"Block": {}},
               "Rules": [_rate_rule(ctx), _rule(ctx, set_arns, values)],
               "VisibilityConfig": _visibility(ctx.stack), "CustomResponseBodies": _bodies(ctx)}
    overlap = len(values) > 1
    if acl is None or current is None:
        created = _create_acl(ctx, desired)
        return None if created is None else (created, overlap)
    if _owned(current["WebACL"]) != _owned(desired):
        _update_acl(ctx, acl.summary, current["LockToken"], desired, overlap)
    return acl.summary, overlap


def _acl_description(stack: str) -> str:
    return f"rds-edge-api stack {stack}: listed IPs with the Authorization header"


def _create_acl(ctx: Context, desired: dict) -> dict | None:
    """The new web ACL's summary, or None for a planned create."""
    waf, name = ctx.edge("wafv2"), acl_name(ctx.stack)
    created = ctx.change("create", f"web ACL {name} (default Block, rules {RATE_RULE}, {RULE})",
                         _until_sets_visible, ctx,
                         lambda: waf.create_web_acl(Name=name, Scope=SCOPE, Description=_acl_description(ctx.stack),
                                                    Tags=ctx.tag_list, **desired),
                         find=lambda: (found := _find_acl(ctx)) and {"Summary": found})
    return created and created["Summary"]


def _update_acl(ctx: Context, found: dict, lock_token: str, desired: dict, overlap: bool) -> None:
    waf, name = ctx.edge("wafv2"), acl_name(ctx.stack)
    window = " (old and new Authorization value accepted)" if overlap else ""
    ctx.change("update", f"web ACL {name} (rules {RATE_RULE}, {RULE}){window}", _until_sets_visible, ctx,
               lambda: waf.update_web_acl(Name=name, Scope=SCOPE, Id=found["Id"],
                                          Description=_acl_description(ctx.stack), LockToken=lock_token, **desired),
               find=lambda: {} if _owned(waf.get_web_acl(Name=name, Scope=SCOPE, Id=found["Id"])["WebACL"])
               == _owned(desired) else None)


def _record(ctx: Context, found: dict, set_arns: dict[int, str], overlap: bool) -> None:
    """The state and the outputs of an ensured ACL."""
    ctx.state.put(NAME, {"web_acl_arn": found["ARN"], "web_acl_id": found["Id"],
                         "ipv4_set_arn": set_arns.get(4), "ipv6_set_arn": set_arns.get(6),
                         "authorization_rotation": "overlap" if overlap else None})
    ctx.outputs["Web ACL"] = found["ARN"]
    if overlap:
        ctx.outputs["Authorization rotation"] = ("old and new value accepted; when every caller sends the new one: "
                                                 "rds-edge-api rotate authorization --finish")


def _delete_ip_set(ctx: Context, version: int, seen: Found | None, destroying: bool) -> None:
    waf, name = ctx.edge("wafv2"), ip_set_name(ctx.stack, version)
    mine = _ours(ctx, seen, "IP set", destroying)
    if mine is None:
        return
    found = mine.summary
    ctx.change("delete", f"IP set {name}", waits.retry_while, ctx,
               f"web ACL {acl_name(ctx.stack)} to release IP set {name}",
               lambda: waf.delete_ip_set(Name=name, Scope=SCOPE, Id=found["Id"], LockToken=found["LockToken"]),
               lambda exc: is_code(exc, WAF_ASSOCIATED_ITEM_EXCEPTION), timeout=SET_RELEASE_TIMEOUT)


def destroy(ctx: Context) -> None:
    """The web ACL first (once CloudFront has let go of it), then the IP sets it referenced, both at once."""
    waf, name = ctx.edge("wafv2"), acl_name(ctx.stack)
    seen = observe(ctx, full=False)
    acl = _ours(ctx, seen.acl, "web ACL", destroying=True)
    if acl is not None:
        found = acl.summary
        ctx.change("delete", f"web ACL {name}", waits.retry_while, ctx,
                   f"CloudFront to release web ACL {name} (a distribution still uses it)",
                   lambda: waf.delete_web_acl(Name=name, Scope=SCOPE, Id=found["Id"], LockToken=found["LockToken"]),
                   lambda exc: is_code(exc, WAF_ASSOCIATED_ITEM_EXCEPTION), timeout=RELEASE_TIMEOUT, interval=10)
    together(ctx, *(lambda c, version=version: _delete_ip_set(c, version, seen.ip_sets[version], destroying=True)
                    for version in VERSIONS))


# --- the step, declared (provision/registry.py) ---------------------------------



def inventory(config: Config) -> list[str]:
    """The stack's web ACLs and IP sets (by tag), read back with plain boto3 (scope CLOUDFRONT, us-east-1)."""
    waf, found = boto3.client("wafv2", region_name=EDGE_REGION), []
    for kind, listing, key in (("web acl", waf.list_web_acls, "WebACLs"), ("ip set", waf.list_ip_sets, "IPSets")):
        for item in listing(Scope="CLOUDFRONT")[key]:
            tags = waf.list_tags_for_resource(ResourceARN=item["ARN"])["TagInfoForResource"].get("TagList")
            if is_ours(tags, config.stack.name):
                found.append(f"{kind} {item['Name']}")
    return found


def _arns(names: Names, action: str) -> list[str]:
    stack = names.config.stack.name
    return [names.arn("wafv2", EDGE_REGION, f"global/webacl/{acl_name(stack)}/*"),
            *(names.arn("wafv2", EDGE_REGION, f"global/ipset/{ip_set_name(stack, v)}/*") for v in (4, 6))]


BEYOND = (
    Beyond("wafv2", "CreateWebACL", ("wafv2:TagResource",),
           "AWS WAF developer guide, tagging: tags given at creation need wafv2:TagResource"),
    Beyond("wafv2", "CreateIPSet", ("wafv2:TagResource",),
           "AWS WAF developer guide, tagging: tags given at creation need wafv2:TagResource"),
)


def leaves(config: Config, account: Account) -> list[str]:
    """The web ACL and an IP set per IP version the allowed ranges use."""
    return [f"web acl {acl_name(config.stack.name)}",
            *(f"ip set {ip_set_name(config.stack.name, v)}" for v in wanted_ranges(config))]


STEP = Step(NAME, "WAF web ACL", ensure, destroy, observe=observe,
            inventory=(inventory,), leaves=leaves, arns={"wafv2": _arns}, creates=("CreateIPSet", "CreateWebACL"),
            removes=("DeleteWebACL",), beyond=BEYOND)
