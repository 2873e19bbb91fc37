"""logs: what happened to requests, from the function's log lines and WAF's log records, merged by time.

Two CloudWatch Logs groups: the function's `/aws/lambda/<function>` (stack
region; the handler prints one JSON line per request: source address, key
length, rows, milliseconds, outcome) and, when WAF logging is set up,
`aws-waf-logs-<stack>` in us-east-1 (one JSON record per request WAF saw:
allowed or blocked). Lines that are not a request (Lambda's START/END/REPORT)
are skipped. Nothing secret is shown: never a header (WAF redacts
Authorization anyway), never the key itself, only its length.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qs

from rich.console import JustifyMethod
from rich.table import Table

from ..context import EDGE_REGION, make_context
from ..errors import DeployError, or_none
from ..steps.function import log_group_name

HELP = "Show the requests the stack served or blocked: the function's log lines and WAF's, merged by time."
LOCAL = False  # the emulator starts empty: no log line to show
POLL_SECONDS = 5.0
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
OUTCOMES = {"ok": "200", "bad_request": "400", "not_found": "404", "internal": "500"}


def waf_log_group(stack: str) -> str:
    return f"aws-waf-logs-{stack}"


def duration(text: str) -> float:
    """'90s', '10m', '2h', '1d' -> seconds."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30s, 10m, 2h or 1d")
    return int(match.group(1)) * UNITS[match.group(2)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=duration, default=duration("10m"), metavar="DURATION",
                        help="how far back to start: 30s, 10m (default), 2h, 1d")
    parser.add_argument("--follow", action="store_true",
                        help=f"keep polling (every {POLL_SECONDS:g} s) for new records until Ctrl-C")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per record (time, source, address, outcome, key_length, ms) "
                             "instead of a table")


@dataclass(frozen=True)
class Record:
    time: str
    source: str           # "function" or "waf"
    address: str | None
    outcome: str          # "200", "400", "404", "500" from the function; "allowed"/"blocked" by WAF
    key_length: int | None
    ms: float | None
    id: str = ""
    at: int = 0           # milliseconds since the epoch, for ordering


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _json_with(message: str, key: str) -> dict | None:
    """A log message that is a JSON object carrying ``key``; None for any other line."""
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) and key in value else None


def from_function(event: dict) -> Record | None:
    """The handler's JSON line, or None for anything else Lambda logs."""
    line = _json_with(event["message"], "outcome")
    if line is None:
        return None
    return Record(_when(event["timestamp"]), "function", line.get("sourceIp"),
                  OUTCOMES.get(line["outcome"], str(line["outcome"])), line.get("keyLength"), line.get("ms"),
                  event.get("eventId", ""), event["timestamp"])


def from_waf(event: dict) -> Record | None:
    """One WAF log record: who, allowed or blocked, and the length of ?key= (never its value, never headers)."""
    record = _json_with(event["message"], "action")
    if record is None:
        return None
    request = record.get("httpRequest") or {}
    keys = parse_qs(request.get("args") or "", keep_blank_values=True).get("key")
    at = int(record.get("timestamp") or event["timestamp"])
    action = str(record["action"]).lower()
    outcome = {"allow": "allowed by WAF", "block": "blocked by WAF"}.get(action, f"{action} by WAF")
    return Record(_when(at), "waf", request.get("clientIp"), outcome, len(keys[0]) if keys else None, None,
                  event.get("eventId", ""), at)


def _events(client, group: str, start_ms: int) -> list[dict]:
    pages = client.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=start_ms)
    return [event for page in pages for event in page.get("events", [])]


def read(ctx, start_ms: int) -> tuple[list[Record], bool]:
    """Every record since start_ms, oldest first, and whether WAF logging exists."""
    function = or_none(_events, "ResourceNotFoundException", client=ctx.client("logs"),
                       group=log_group_name(ctx.stack), start_ms=start_ms)
    if function is None:
        raise DeployError(f"no log group {log_group_name(ctx.stack)} in {ctx.region}: is stack {ctx.stack} "
                          "deployed? (rds-edge-api outputs)")
    waf = or_none(_events, "ResourceNotFoundException", client=ctx.edge("logs"), group=waf_log_group(ctx.stack),
                  start_ms=start_ms)
    records = [r for r in map(from_function, function) if r] + [r for r in map(from_waf, waf or []) if r]
    return sorted(records, key=lambda r: (r.at, r.source)), waf is not None


def _show(out, records: list[Record], as_json: bool, header: bool) -> None:
    if as_json:
        for r in records:
            body = {k: v for k, v in asdict(r).items() if k not in ("id", "at")}
            out.console.print(json.dumps(body), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(show_header=header, box=None, pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (("time (UTC)", "left"), ("source address", "left"),
                                                      ("outcome", "left"), ("key length", "right"), ("ms", "right"))
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=True)
    for r in records:
        table.add_row(r.time, r.address or "-", r.outcome, "-" if r.key_length is None else str(r.key_length),
                      "-" if r.ms is None else f"{r.ms:.1f}")
    out.console.print(table)


def show(ctx, since: float, follow: bool, as_json: bool, now=time.time) -> None:
    """Print the records since ``since`` seconds ago; with follow, poll (ctx.sleep) until Ctrl-C."""
    start_ms, seen, header = int((now() - since) * 1000), set(), True
    while True:
        records, waf = read(ctx, start_ms)
        if not waf:
            ctx.out.once("no-waf-logs", f"WAF logging is not set up (no log group {waf_log_group(ctx.stack)} in "
                                        f"{EDGE_REGION}): showing the function's lines only")
        fresh = [r for r in records if (r.source, r.id) not in seen]
        seen |= {(r.source, r.id) for r in fresh}
        if fresh or not follow:
            if not fresh and not as_json:
                ctx.out.note(f"no requests logged since {_when(start_ms)} UTC")
            else:
                _show(ctx.out, fresh, as_json, header)
                header = False
        if not follow:
            return
        if records:  # same-millisecond records are told apart by their ids
            start_ms = max(start_ms, records[-1].at)
        ctx.sleep(POLL_SECONDS)


def run(args, config, session, out) -> int:
    ctx = make_context(config, session=session, out=out)
    try:
        show(ctx, args.since, args.follow, args.json)
    except KeyboardInterrupt:  # the way --follow ends
        return 130
    return 0
