"""verify: real requests against each wall of the deployed path, one table row per wall.

The checks are provision/walls.py's. On AWS (``verify``): through the custom
domain (the distribution's own domain until DNS points the domain at it) and
straight to the execute-api invoke URL, from this machine, whose public
address decides what the edge must answer; the distribution and the REST API
are found by their steps' own ``find``. Locally (``verify --local``): deployed
into the emulator, then checked on the served path (provision/local/serving.py).

Secrets come from the environment and are only sent, never printed.
"""
from __future__ import annotations

import argparse
import ipaddress
import socket
import urllib.parse

from .. import runner
from ..aws_errors import RESOURCE_NOT_FOUND_EXCEPTION
from ..context import locked, make_context
from ..errors import or_none
from ..steps import (
    STEPS,
    alarms as alarms_step,
    api as api_step,
    cloudfront as cloudfront_step,
    function as function_step,
    proxy as proxy_step,
)
from ..together import together
from ..walls import TIMEOUT, Target, check, get, show

HELP = "Send real requests at each wall of the deployed API and say which hold (exit 0 only if all do)."
CHECKIP_URL = "https://checkip.amazonaws.com"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", metavar="K", default="42",
                        help="the key to look up through the edge (default 42); --local uses the sample rows' keys")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, metavar="S",
                        help=f"seconds per request (default {TIMEOUT})")


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
    distribution, api = together(ctx, cloudfront_step.find, api_step.find)
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
    rows, idle = together(ctx, lambda c: check(target), idle_note)  # the function's state read meanwhile
    good = show(rows, out)
    out.note(idle)
    if alarms_step.enabled(config):
        out.note(alarm_note(ctx))
    if config.database.proxy:  # the function reaches the database through the proxy
        through, note = proxy_step.reached_through(ctx)
        out.note(note)
        good = good and through
    return 0 if good else 1


def alarm_note(ctx) -> str:
    """Which of the stack's health alarms are in ALARM now (CloudWatch's state, read back)."""
    mine, firing = alarms_step.in_alarm(ctx)
    if not mine:
        return "Alarms: none found (deploy makes them with [alerts] email)"
    if not firing:
        return f"Alarms: none of {len(mine)} in ALARM"
    return f"Alarms: {len(firing)} of {len(mine)} in ALARM: {', '.join(firing)}"


def idle_note(ctx) -> str:
    """What an idle function means for the first call, said more plainly when the function is Inactive now."""
    name = function_step.function_name(ctx.stack)
    config = or_none(ctx.client("lambda").get_function_configuration, RESOURCE_NOT_FOUND_EXCEPTION, FunctionName=name)
    if config and config.get("State") == "Inactive":
        return (f"Lambda function {name} is Inactive (idle for long: {config.get('StateReasonCode') or 'Idle'}): the "
                "first request fails once while Lambda restores it; run verify again in a minute (or deploy, which "
                "reactivates it and waits)")
    return ("After a long idle time (weeks without a request) the first call can fail once while Lambda restores "
            "the function; the next succeeds")


# ------------------------------------------------------------------------------------------- locally

def run_local(args, config, session, out) -> int:
    """verify --local: deploy into the empty emulator, serve the path on free ports, check it, stop."""
    from ..local import serving

    out.console.print(f"[bold]Deploying stack {config.stack.name}[/] into the empty emulator first, "
                      f"so there is something to verify")
    with locked(config, "verify --local", session=session, out=out) as ctx:
        runner.deploy(ctx, STEPS)
    out.console.print("[bold]Serving the path locally[/] and checking every wall")
    return 0 if serving.check_once(config, session, out, args.timeout) else 1
