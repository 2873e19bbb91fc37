"""verify: real requests against each wall of the deployed path, one table row per wall.

One set of checks, two kinds of target. On AWS (``verify``): through the
custom domain (the distribution's own domain until DNS points the domain at
it) and straight to the execute-api invoke URL, from this machine, whose
public address decides what the edge must answer. Locally (``verify --local``,
and ``deploy --local --serve --once``): the same checks against the served
path on loopback, where the caller's address is chosen with X-Forwarded-For,
so the blocked-address row and the rows that need a known key can be added.

Secrets come from the environment and are only sent, never printed. Every
request has a bounded timeout; a row that cannot connect says so.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from .. import runner
from ..context import locked, make_context
from ..errors import or_none
from ..steps import STEPS, api as api_step, cloudfront as cloudfront_step, function as function_step
from ..tags import is_ours

HELP = "Send real requests at each wall of the deployed API and say which hold (exit 0 only if all do)."
TIMEOUT = 10  # seconds per request; API Gateway itself gives up after 29 s
CHECKIP_URL = "https://checkip.amazonaws.com"
WRONG_AUTHORIZATION = "Bearer wrong-value-from-verify"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", metavar="K", default="42",
                        help="the key to look up through the edge (default 42); --local uses the sample rows' keys")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, metavar="S",
                        help=f"seconds per request (default {TIMEOUT})")


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


# ------------------------------------------------------------------------------------------- on AWS

def caller_address(timeout: float = TIMEOUT, url: str | None = None) -> tuple[str | None, str]:
    """This machine's public address, as a web service sees it; (None, why) when it cannot tell.

    The edge sees the address this machine reaches it from; over IPv6 that may differ from what an
    IPv4-only service reports, so the row says where the address came from.
    """
    url = url or CHECKIP_URL
    reply = get(url, {}, timeout)
    text = reply.body.strip()
    try:
        return str(ipaddress.ip_address(text)), f"from {urllib.parse.urlsplit(url).netloc}"
    except ValueError:
        return None, f"{url} answered {reply.describe()}"


def _resolved(host: str) -> tuple[str, set[str]]:
    """The canonical name at the end of the host's CNAME chain, and its addresses (none if it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP, flags=socket.AI_CANONNAME)
    except OSError:
        return host, set()
    return (infos[0][3] or host).rstrip(".").lower(), {str(info[4][0]) for info in infos}


def edge_host(domain: str, distribution_domain: str) -> tuple[str, str]:
    """The custom domain once DNS points it at the distribution, else the distribution's own domain; and why.

    Checked first because the requests carry the Authorization secret: it must not go to whatever
    the domain pointed at before (a CNAME to the distribution, or an alias sharing its addresses).
    """
    name, addresses = _resolved(domain)
    target, target_addresses = _resolved(distribution_domain)
    if addresses and (name == target or name == distribution_domain.lower() or addresses & target_addresses):
        return domain, f"{domain} resolves to the distribution"
    return distribution_domain, f"{domain} does not resolve to the distribution yet: through {distribution_domain}"


def deployed_urls(ctx) -> tuple[str, str] | None:
    """(distribution domain, execute-api invoke URL) read back from AWS; None if either is missing."""
    distribution = cloudfront_step.find(ctx)
    apigw, name = ctx.client("apigateway"), api_step.api_name(ctx.stack)
    api = next((a for page in apigw.get_paginator("get_rest_apis").paginate() for a in page["items"]
                if a["name"] == name and is_ours(a.get("tags"), ctx.stack)), None)
    if distribution is None or api is None:
        return None
    invoke = (f"https://{api_step.execute_api_domain(api['id'], ctx.region)}/{ctx.config.api.stage}/"
              f"{ctx.config.api.path}")
    return distribution["DomainName"], invoke


def aws_target(ctx, key: str, timeout: float = TIMEOUT) -> Target | None:
    """The deployed stack's target, read back from AWS; None when it is not deployed."""
    urls = deployed_urls(ctx)
    if urls is None:
        return None
    host, how = edge_host(ctx.config.domain.name, urls[0])
    ctx.out.note(how)
    caller, note = caller_address(timeout)
    return Target(edge_url=f"https://{host}/{ctx.config.api.path}", invoke_url=urls[1],
                  authorization=ctx.config.access.authorization.value, allowed_cidrs=ctx.config.access.allowed_cidrs,
                  caller=caller, caller_note=note, key=key, timeout=timeout)


def run(args, config, session, out) -> int:
    if args.local:
        return run_local(args, config, session, out)
    ctx = make_context(config, session=session, out=out)
    target = aws_target(ctx, args.key, args.timeout)
    if target is None:
        out.error(f"stack {config.stack.name} is not deployed (no distribution or REST API found); run deploy first")
        return 1
    good = show(check(target), out)
    out.note(idle_note(ctx))
    return 0 if good else 1


def idle_note(ctx) -> str:
    """What an idle function means for the first call, said more plainly when the function is Inactive now."""
    name = function_step.function_name(ctx.stack)
    config = or_none(ctx.client("lambda").get_function_configuration, "ResourceNotFoundException", FunctionName=name)
    if config and config.get("State") == "Inactive":
        return (f"Lambda function {name} is Inactive (idle for long: {config.get('StateReasonCode') or 'Idle'}): the "
                "first request fails once while Lambda restores it; run verify again in a minute (or deploy, which "
                "reactivates it and waits)")
    return ("After a long idle time (weeks without a request) the first call can fail once while Lambda restores "
            "the function; the next succeeds")


# ------------------------------------------------------------------------------------------- locally

def local_target(path, config, session, timeout: float = TIMEOUT) -> Target:
    """The served path's target: an allowed and a blocked address to claim, the sample keys, the API key."""
    from ..local import sample_data

    allowed, blocked = local_addresses(config.access.allowed_cidrs)
    apigw = session.client("apigateway", region_name=config.stack.region)
    pages = apigw.get_paginator("get_api_keys").paginate(nameQuery=config.stack.name, includeValues=True)
    key = next((k for page in pages for k in page["items"] if k["name"] == config.stack.name), None)
    return Target(edge_url=path.edge_url, invoke_url=path.invoke_url,
                  authorization=config.access.authorization.value, allowed_cidrs=config.access.allowed_cidrs,
                  caller="127.0.0.1", caller_note="claimed with X-Forwarded-For (local only)",
                  key=sample_data.KEY_WITH_TWO_ROWS, claim=allowed, blocked=blocked,
                  expect_items=2, missing_key=sample_data.KEY_WITHOUT_ROWS,
                  api_key=key["value"] if key else None, timeout=timeout)


def local_addresses(cidrs: tuple[str, ...]) -> tuple[str, str]:
    """An address inside the first allowed range (its 10th host: 203.0.113.10 for 203.0.113.0/24), and one outside."""
    network = ipaddress.ip_network(cidrs[0])
    allowed = network.network_address + min(10, network.num_addresses - 1)
    candidates = ("198.51.100.77", "192.0.2.99", "100.64.0.1", "100::1", "fd00::77")
    blocked = next(c for c in candidates if not inside(c, cidrs) and ipaddress.ip_address(c).version == network.version)
    return str(allowed), blocked


def run_local(args, config, session, out) -> int:
    """verify --local: deploy into the empty emulator, serve the path on free ports, check it, stop."""
    from ..local.serve import LocalPath

    out.console.print(f"[bold]Deploying stack {config.stack.name}[/] into the empty emulator first, "
                      f"so there is something to verify")
    with locked(config, "verify --local", session=session, out=out) as ctx:
        runner.deploy(ctx, STEPS)
    out.console.print("[bold]Serving the path locally[/] and checking every wall")
    with LocalPath(config, session, port=0) as path:
        return 0 if show(check(local_target(path, config, session, args.timeout)), out) else 1
