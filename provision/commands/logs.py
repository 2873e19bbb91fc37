"""logs: what happened to requests, from every log the stack keeps, merged by time.

Up to four CloudWatch Logs groups, one record per request in each:
- the function's ``/aws/lambda/<function>`` (stack region): the handler's JSON
  line (the caller's address CloudFront appended to X-Forwarded-For, the edge
  server's beside it, key length, rows, milliseconds, outcome);
- WAF's ``aws-waf-logs-<stack>`` (us-east-1): allowed or blocked, and who;
- the API stage's access log ``/aws/apigateway/<stack>/access`` ([logs]
  api_access): status and latency of every call API Gateway answered, also
  one straight to the execute-api URL; its address is whoever connected
  (CloudFront's edge, or a direct caller);
- CloudFront's standard log ``/aws/cloudfront/<stack>/access`` (us-east-1,
  [logs] cloudfront): status and time taken as the caller saw them.
Lines that are not a request (Lambda's START/END/REPORT) are skipped. Nothing
secret is shown: never a header (WAF redacts Authorization anyway), never the
key itself, only its length where a record has it.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qs

from rich.console import JustifyMethod
from rich.table import Table

from ..aws_errors import RESOURCE_NOT_FOUND_EXCEPTION
from ..context import EDGE_REGION, make_context
from ..errors import DeployError, or_none
from ..steps import api_access_log, cloudfront_logging
from ..steps.function import log_group_name

HELP = ("Show the requests the stack served or blocked: the function's log lines, WAF's, the API's access log and "
        "CloudFront's, merged by time.")
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
                        help="one JSON object per record (time, source, address, edge, outcome, key_length, ms) "
                             "instead of a table")


@dataclass(frozen=True)
class Record:
    time: str
    source: str           # "function", "waf", "api" (the stage's access log) or "cloudfront"
    address: str | None   # the caller's, where the record knows it (an API record: whoever connected)
    outcome: str          # "200", "400", "404", "500" from the function; "allowed"/"blocked" by WAF;
    key_length: int | None  # "<status> at API Gateway" / "<status> at CloudFront"
    ms: float | None
    edge: str | None = None  # the CloudFront edge server's address, where the record has it beside the caller
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
    # callerIp: the address CloudFront appended to X-Forwarded-For, edgeIp: its edge server's (lines from
    # before both were logged have sourceIp, the edge's); a request that bypassed CloudFront has no caller.
    address = line.get("callerIp") or line.get("edgeIp") or line.get("sourceIp")
    return Record(_when(event["timestamp"]), "function", address,
                  OUTCOMES.get(line["outcome"], str(line["outcome"])), line.get("keyLength"), line.get("ms"),
                  line.get("edgeIp") if line.get("callerIp") else None, event.get("eventId", ""), event["timestamp"])


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
                  None, event.get("eventId", ""), at)


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):  # API Gateway writes "-" for a variable it has no value for
        return None


def from_api(event: dict) -> Record | None:
    """One line of the stage's access log (api_access_log.FORMAT)."""
    line = _json_with(event["message"], "requestId")
    if line is None or "status" not in line:
        return None
    epoch = _number(line.get("requestTimeEpoch"))
    at = int(epoch) if epoch else event["timestamp"]
    return Record(_when(at), "api", line.get("ip"), f"{line['status']} at API Gateway", None,
                  _number(line.get("responseLatency")), None, event.get("eventId", ""), at)


def from_cloudfront(event: dict) -> Record | None:
    """One record of CloudFront's standard log (JSON, cloudfront_logging.RECORD_FIELDS)."""
    record = _json_with(event["message"], "sc-status")
    if record is None:
        return None
    at = event["timestamp"]
    try:
        at = int(datetime.strptime(f"{record['date']} {record['time']}", "%Y-%m-%d %H:%M:%S")
                 .replace(tzinfo=timezone.utc).timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        pass  # the delivery's time stands in
    taken = _number(record.get("time-taken"))
    return Record(_when(at), "cloudfront", record.get("c-ip"), f"{record['sc-status']} at CloudFront", None,
                  None if taken is None else taken * 1000, None, event.get("eventId", ""), at)


def _events(client, group: str, start_ms: int) -> list[dict]:
    pages = client.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=start_ms)
    return [event for page in pages for event in page.get("events", [])]


Source = tuple[str, Any, str, str, Callable[[dict], "Record | None"]]  # source, logs client, group, where, reader


def _sources(ctx) -> list[Source]:
    """(source, logs client, group, where, reader) for every log beside the function's that the config keeps."""
    sources: list[Source] = [("waf", ctx.edge("logs"), waf_log_group(ctx.stack), EDGE_REGION, from_waf)]
    if ctx.config.logs.api_access:
        sources.append(("api", ctx.client("logs"), api_access_log.log_group_name(ctx.stack), ctx.region, from_api))
    if ctx.config.logs.cloudfront:
        sources.append(("cloudfront", ctx.edge("logs"), cloudfront_logging.log_group_name(ctx.stack), EDGE_REGION,
                        from_cloudfront))
    return sources


def read(ctx, start_ms: int) -> tuple[list[Record], list[str]]:
    """Every record since start_ms, oldest first, and a note for each log that is not there (yet)."""
    function = or_none(_events, RESOURCE_NOT_FOUND_EXCEPTION, client=ctx.client("logs"),
                       group=log_group_name(ctx.stack), start_ms=start_ms)
    if function is None:
        raise DeployError(f"no log group {log_group_name(ctx.stack)} in {ctx.region}: is stack {ctx.stack} "
                          "deployed? (rds-edge-api outputs)")
    records, missing = [r for r in map(from_function, function) if r], []
    for source, client, group, where, reader in _sources(ctx):
        events = or_none(_events, RESOURCE_NOT_FOUND_EXCEPTION, client=client, group=group, start_ms=start_ms)
        if events is None:
            missing.append(f"no log group {group} in {where}: showing the others without {source}'s records")
        records += [r for r in map(reader, events or []) if r]
    return sorted(records, key=lambda r: (r.at, r.source)), missing


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
        records, missing = read(ctx, start_ms)
        for note in missing:
            ctx.out.once(note, note)
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
