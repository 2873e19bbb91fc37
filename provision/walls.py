"""The walls of the deployed path, checked by real requests: one table row per wall.

One set of checks for two kinds of target: the deployed stack on AWS
(``verify``, provision/commands/verify.py) and the path served on loopback
(``verify --local`` and ``deploy --local --serve --once``,
provision/local/serving.py), where the caller's address is claimed with
X-Forwarded-For, so the blocked-address row and the rows that need a known key
can be added. Secrets are only sent, never shown; every request has a bounded
timeout, and a row that cannot connect says so.
"""
from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

TIMEOUT = 10  # seconds per request; API Gateway itself gives up after 29 s
WRONG_AUTHORIZATION = "Bearer wrong-value-from-verify"


@dataclass(frozen=True)
class Target:
    """Where the checks go, and what they may assume; a None field leaves its row out."""
    edge_url: str  # GET <edge_url>?key=K passes the edge (CloudFront + WAF)
    invoke_url: str  # the API's own URL (execute-api), behind which there is only the API key
    authorization: str  # the right Authorization value: sent, never shown
    allowed_cidrs: tuple[str, ...]
    caller: str | None  # the caller's address as the edge sees it; None when it could not be found
    key: str
    caller_note: str = ""  # how the caller's address was found
    claim: str | None = None  # local: the address to claim with X-Forwarded-For
    blocked: str | None = None  # local: an address outside allowed_cidrs to claim
    expect_items: int | None = None  # local: how many items `key` has
    missing_key: str | None = None  # local: a key with no rows
    api_key: str | None = None  # local: the API key value, to show that the API itself works with it
    timeout: float = TIMEOUT


@dataclass(frozen=True)
class Row:
    wall: str
    request: str
    expected: str
    got: str
    ok: bool


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no answer (the reason is in body)
    body: str

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def describe(self) -> str:
        if self.status is None:
            return self.body
        return f"{self.status} {self.body.strip()[:60]}"


def get(url: str, headers: dict[str, str], timeout: float) -> Reply:
    """One GET; any HTTP status is an answer, anything else a reason."""
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Reply(None, f"cannot connect: {reason}")


def inside(address: str | None, cidrs: tuple[str, ...]) -> bool:
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(c) for c in cidrs)


def check(target: Target) -> list[Row]:
    """Every row the target allows, in the order a request meets the walls."""
    caller = target.claim or target.caller
    allowed = inside(caller, target.allowed_cidrs)
    rows = [Row("caller address", "the caller's address as the edge sees it",
                "known, and inside allowed_cidrs", _caller_text(caller, allowed, target),
                caller is not None)]
    return rows + _edge_rows(target, allowed) + _api_key_rows(target)


def _edge(target: Target, query: dict[str, str], authorization: str | None, source: str | None = None) -> Reply:
    """A GET through the edge, claiming ``source`` (or the target's claim) as the caller's address."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    claim = source or target.claim
    if claim:
        headers["X-Forwarded-For"] = claim
    url = target.edge_url + ("?" + urllib.parse.urlencode(query) if query else "")
    return get(url, headers, target.timeout)


def _row(wall: str, request: str, expected: str, reply: Reply, ok: bool) -> Row:
    return Row(wall, request, expected, reply.describe(), ok and reply.status is not None)


def _edge_rows(target: Target, allowed: bool) -> list[Row]:
    """The requests through CloudFront and WAF: from outside allowed_cidrs each expects WAF's 403."""
    outside = "" if allowed else " (the caller is outside allowed_cidrs: WAF blocks)"
    rows = [_function_row(target, allowed, outside)]
    if target.missing_key is not None:
        reply = _edge(target, {"key": target.missing_key}, target.authorization)
        rows.append(_row("function: no rows", f"right Authorization, key={target.missing_key}",
                         "404 with the API's JSON" if allowed else "403" + outside, reply,
                         reply.status == 404 and isinstance(reply.json(), dict) if allowed else reply.status == 403))
    reply = _edge(target, {}, target.authorization)
    rows.append(_row("API validator", "right Authorization, no key parameter",
                     "400" if allowed else "403" + outside, reply, reply.status == (400 if allowed else 403)))
    reply = _edge(target, {"key": target.key}, WRONG_AUTHORIZATION)
    rows.append(_row("WAF: Authorization", "wrong Authorization", "403", reply, reply.status == 403))
    if target.blocked is not None:
        reply = _edge(target, {"key": target.key}, target.authorization, source=target.blocked)
        rows.append(_row("WAF: source address", f"right Authorization from {target.blocked}", "403", reply,
                         reply.status == 403))
    return rows


def _function_row(target: Target, allowed: bool, outside: str) -> Row:
    """The right request reaches the function: its rows (as many as expected, if known), or its 404."""
    found = _edge(target, {"key": target.key}, target.authorization)
    wall, request = "WAF + API + function", f"right Authorization, key={target.key}"
    if not allowed:
        return _row(wall, request, "403" + outside, found, found.status == 403)
    body = found.json()
    if target.expect_items is not None:
        items = body.get("items") if isinstance(body, dict) else None
        return _row(wall, request, f"200, JSON with {target.expect_items} items", found,
                    found.status == 200 and isinstance(items, list) and len(items) == target.expect_items)
    return _row(wall, request, "200 JSON, or 404 with the API's JSON (the function was reached)", found,
                isinstance(body, dict) and (found.status == 200 and "items" in body
                                            or found.status == 404 and "message" in body))


def _api_key_rows(target: Target) -> list[Row]:
    """Straight to the stage, past the edge: refused without the API key, answered with it (if known)."""
    direct = target.invoke_url + "?" + urllib.parse.urlencode({"key": target.key})
    reply = get(direct, {}, target.timeout)
    rows = [_row("API key", "straight to the API, without the API key", "403", reply, reply.status == 403)]
    if target.api_key is not None:
        reply = get(direct, {"x-api-key": target.api_key}, target.timeout)
        rows.append(_row("API key", "straight to the API, with the API key", "200", reply, reply.status == 200))
    return rows


def _caller_text(caller: str | None, allowed: bool, target: Target) -> str:
    if caller is None:
        return f"unknown ({target.caller_note})" if target.caller_note else "unknown"
    where = "inside allowed_cidrs" if allowed else "OUTSIDE allowed_cidrs: the edge rows expect 403"
    return f"{caller}, {where}" + (f" ({target.caller_note})" if target.caller_note else "")


def show(rows: list[Row], out) -> bool:
    """Print the table; whether every row holds."""
    table = Table(title="verify", show_lines=False)
    for column in ("", "wall", "request", "expected", "got"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row("[green]ok[/]" if r.ok else "[red]FAIL[/]", *map(escape, (r.wall, r.request, r.expected, r.got)))
    out.console.print(table)
    good = all(r.ok for r in rows)
    failed = sum(not r.ok for r in rows)
    out.console.print("[green]every wall holds[/]" if good else f"[red]{failed} of {len(rows)} rows do not hold[/]")
    return good
