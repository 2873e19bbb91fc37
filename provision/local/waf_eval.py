"""A small evaluator of a WAFv2 web ACL, for the locally served edge.

It understands the statement types the toolkit deploys, and a little more so
that a hand-made change in the emulator still gets a faithful answer:
AndStatement, OrStatement, NotStatement, IPSetReferenceStatement and
ByteMatchStatement (every positional constraint, the common text
transformations, the usual fields to match), and a rule's
RateBasedStatement aggregated by IP (Rates keeps the counts). Rules run in
priority order; the first Allow or Block ends the evaluation, Count goes on;
then the default action. Anything else raises Unsupported: the edge says so
rather than guess.

A rate-based rule counts each request it inspects (its scope-down statement,
if any, decides which) per source address over the evaluation window, and
matches while the address is over the limit. WAF itself counts about every
10 seconds and may let a burst pass the limit briefly ("Rate-based rule
caveats"); the edge counts exactly, so a test can name the request that is
refused.

As in WAF, a header that is absent matches no byte match, header names are
case-insensitive, and transformations apply, in priority order, to the field
before it is compared.

A component sent more than once (a header twice, ?a=1&a=2) is inspected value
by value, and matches when any value does. WAF documents this for a single
query parameter ("AWS WAF inspects all the values for a match, using OR
logic": developer guide, Request components, Single query parameter) and
says nothing of a single header sent twice; the edge reads a repeated header
the same way, so "wrong, then right" and "right, then wrong" answer alike.
"""
from __future__ import annotations

import base64
import html
import ipaddress
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Callable

MAX_COUNTED_ADDRESSES = 100_000  # the local edge's memory stays bounded whatever addresses callers claim


class Unsupported(Exception):
    """A statement, field or transformation this evaluator does not know."""


@dataclass(frozen=True)
class Request:
    source_ip: str
    method: str
    path: str
    query: str  # the raw query string, without '?'
    headers: dict[str, str | tuple[str, ...]]  # names in lower case; a header sent twice: its values, in order


@dataclass(frozen=True)
class Verdict:
    action: str  # "Allow" or "Block"
    rule: str | None  # the terminating rule's name; None for the default action
    custom: dict | None = None  # a Block's CustomResponse (ResponseCode, CustomResponseBodyKey), if it has one


class Rates:
    """Requests per (rule, source address), in one-second buckets over the longest window WAF allows (600 s)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.counts: dict[tuple[str, str], dict[int, int]] = {}
        self.lock = threading.Lock()  # the edge serves each request on its own thread

    def count(self, rule: str, address: str, window: int) -> int:
        """Count this request; the requests from the address within the window, this one included."""
        now = int(self.clock())
        with self.lock:
            if len(self.counts) >= MAX_COUNTED_ADDRESSES:
                self._forget(now)
            buckets = self.counts.setdefault((rule, address), {})
            buckets[now] = buckets.get(now, 0) + 1
            for second in [s for s in buckets if s <= now - 600]:
                del buckets[second]
            return sum(n for second, n in buckets.items() if second > now - window)

    def _forget(self, now: int) -> None:
        """Drop every address with nothing in the last 600 s (then, if still full, every count)."""
        self.counts = {k: b for k, b in self.counts.items() if any(s > now - 600 for s in b)}
        if len(self.counts) >= MAX_COUNTED_ADDRESSES:
            self.counts.clear()


def evaluate(acl: dict, request: Request, ip_set: Callable[[str], list[str]], rates: Rates | None = None) -> Verdict:
    """The web ACL's verdict; ``ip_set(arn)`` returns that IP set's addresses (CIDRs); ``rates`` keeps the
    rate-based rules' counts from one request to the next."""
    for rule in sorted(acl.get("Rules") or [], key=lambda r: r["Priority"]):
        if not _rule_matches(rule, request, ip_set, rates):
            continue
        action = next(iter(rule.get("Action") or {}), None)
        if action in ("Allow", "Block"):
            return Verdict(action, rule["Name"], (rule["Action"][action] or {}).get("CustomResponse"))
        if action not in ("Count", "Captcha", "Challenge"):
            raise Unsupported(f"rule {rule['Name']}: action {action or rule.get('OverrideAction')}")
    return Verdict(next(iter(acl["DefaultAction"])), None)


def _rule_matches(rule: dict, request: Request, ip_set: Callable[[str], list[str]], rates: Rates | None) -> bool:
    """A rate-based rule (only ever a rule's top statement) counts the request; any other rule matches."""
    body = rule["Statement"].get("RateBasedStatement")
    if body is None:
        return matches(rule["Statement"], request, ip_set)
    if rates is None or body.get("AggregateKeyType", "IP") != "IP" or body.get("ForwardedIPConfig"):
        raise Unsupported(f"rule {rule['Name']}: a rate-based rule other than by source IP")
    scope = body.get("ScopeDownStatement")
    if scope is not None and not matches(scope, request, ip_set):
        return False
    seen = rates.count(rule["Name"], request.source_ip, int(body.get("EvaluationWindowSec") or 300))
    return seen > int(body["Limit"])


def matches(statement: dict, request: Request, ip_set: Callable[[str], list[str]]) -> bool:
    (kind, body), = statement.items()
    if kind == "AndStatement":
        return all(matches(s, request, ip_set) for s in body["Statements"])
    if kind == "OrStatement":
        return any(matches(s, request, ip_set) for s in body["Statements"])
    if kind == "NotStatement":
        return not matches(body["Statement"], request, ip_set)
    if kind == "IPSetReferenceStatement":
        if body.get("IPSetForwardedIPConfig"):
            raise Unsupported("IPSetForwardedIPConfig")
        address = ipaddress.ip_address(request.source_ip)
        return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in ip_set(body["ARN"]))
    if kind == "ByteMatchStatement":
        return _byte_match(body, request)
    raise Unsupported(kind)


def _byte_match(body: dict, request: Request) -> bool:
    search = body["SearchString"]
    search = search.encode() if isinstance(search, str) else bytes(search)
    steps = sorted(body.get("TextTransformations") or [], key=lambda t: t["Priority"])
    for field in _field(body["FieldToMatch"], request):  # none: an absent component matches nothing
        value = field.encode("utf-8", "surrogateescape")
        for step in steps:
            value = _transform(step["Type"], value)
        if _positional(body["PositionalConstraint"], value, search):
            return True
    return False


def _field(field: dict, request: Request) -> tuple[str, ...]:
    """The component's values: one, none when absent, several for a header or argument sent more than once."""
    (kind, body), = field.items()
    if kind == "SingleHeader":
        values = request.headers.get(body["Name"].lower(), ())
        return (values,) if isinstance(values, str) else tuple(values)
    if kind == "UriPath":
        return (request.path,)
    if kind == "QueryString":
        return (request.query,)
    if kind == "Method":
        return (request.method,)
    if kind == "SingleQueryArgument":
        wanted = body["Name"].lower()
        pairs = urllib.parse.parse_qsl(request.query, keep_blank_values=True)
        return tuple(v for k, v in pairs if k.lower() == wanted)
    raise Unsupported(f"FieldToMatch {kind}")


def _positional(constraint: str, value: bytes, search: bytes) -> bool:
    if constraint == "EXACTLY":
        return value == search
    if constraint == "STARTS_WITH":
        return value.startswith(search)
    if constraint == "ENDS_WITH":
        return value.endswith(search)
    if constraint == "CONTAINS":
        return search in value
    if constraint == "CONTAINS_WORD":  # bounded by non-word characters or the ends
        return re.search(rb"(?<![A-Za-z0-9_])" + re.escape(search) + rb"(?![A-Za-z0-9_])", value) is not None
    raise Unsupported(f"PositionalConstraint {constraint}")


def _transform(kind: str, value: bytes) -> bytes:
    if kind == "NONE":
        return value
    if kind == "LOWERCASE":
        return value.lower()
    if kind == "UPPERCASE":
        return value.upper()
    if kind == "COMPRESS_WHITE_SPACE":
        return re.sub(rb"[ \t\n\r\f\v]+", b" ", value)
    if kind == "URL_DECODE":
        return urllib.parse.unquote_to_bytes(value)
    if kind == "HTML_ENTITY_DECODE":
        return html.unescape(value.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    if kind == "BASE64_DECODE":
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value  # WAF leaves what it cannot decode
    if kind == "REMOVE_NULLS":
        return value.replace(b"\0", b"")
    raise Unsupported(f"TextTransformation {kind}")
