"""The served path as the commands use it: served for a person until Ctrl-C, or checked once.

``deploy --local --serve`` serves what was deployed into the emulator and says
how to call it; with ``--once``, and for ``verify --local``, the walls'
checks (provision/walls.py) run against it instead, claiming an allowed and a
blocked caller with X-Forwarded-For and using the sample rows' keys.
"""
from __future__ import annotations

import ipaddress
import signal
import threading

from ..context import make_context
from ..output import Output
from ..steps import api as api_step
from ..walls import TIMEOUT, Target, check, inside, show
from . import sample_data
from .serve import LocalPath


def local_addresses(cidrs: tuple[str, ...]) -> tuple[str, str]:
    """An address inside the first allowed range (its 10th host: 203.0.113.10 for 203.0.113.0/24), and one outside."""
    network = ipaddress.ip_network(cidrs[0])
    allowed = network.network_address + min(10, network.num_addresses - 1)
    candidates = ("198.51.100.77", "192.0.2.99", "100.64.0.1", "100::1", "fd00::77")
    blocked = next(c for c in candidates if not inside(c, cidrs) and ipaddress.ip_address(c).version == network.version)
    return str(allowed), blocked


def api_key_value(config, session) -> str | None:
    """The value of the stack's newest API key, found as the API step finds its keys (by name and tag);
    read-only: the plan guard refuses any changing call."""
    ctx = make_context(config, session=session, planning=True, read_state=False, out=Output())
    keys = api_step.stack_keys(ctx)
    if not keys:
        return None
    return ctx.client("apigateway").get_api_key(apiKey=keys[-1]["id"], includeValue=True).get("value")


def local_target(path: LocalPath, config, session, timeout: float = TIMEOUT) -> Target:
    """The served path's target: an allowed and a blocked address to claim, the sample keys, the API key."""
    allowed, blocked = local_addresses(config.access.allowed_cidrs)
    return Target(edge_url=path.edge_url, invoke_url=path.invoke_url,
                  authorization=config.access.authorization.value, allowed_cidrs=config.access.allowed_cidrs,
                  caller="127.0.0.1", caller_note="claimed with X-Forwarded-For (local only)",
                  key=sample_data.KEY_WITH_TWO_ROWS, claim=allowed, blocked=blocked,
                  expect_items=2, missing_key=sample_data.KEY_WITHOUT_ROWS,
                  api_key=api_key_value(config, session), timeout=timeout)


def check_once(config, session, out, timeout: float = TIMEOUT) -> bool:
    """Serve the deployed path on free ports, check every wall, print the table, stop: whether all hold."""
    with LocalPath(config, session, port=0) as path:
        return show(check(local_target(path, config, session, timeout)), out)


def serve(config, session, out, *, port: int, once: bool, throwaway_secrets: list[str]) -> int:
    """Serve the deployed path on ``port`` (the API stand-in on the next) until Ctrl-C, or with ``once``
    check it and exit with the result."""
    out.console.print("[bold]Serving the deployed path locally[/] (starting a throwaway MariaDB with sample rows)")
    with LocalPath(config, session, port=port, log=None if once else _printer(out)) as path:
        out.notice("The deployed path, served locally", "\n".join(_how_to_call(config, throwaway_secrets, path)))
        if once:
            return 0 if show(check(local_target(path, config, session)), out) else 1
        out.console.print("Serving until Ctrl-C; each request is logged below.")
        _until_stopped()
        out.console.print("Stopping the servers and MariaDB, removing their files.")
    return 0


def _how_to_call(config, throwaway_secrets: list[str], path: LocalPath) -> list[str]:
    """Where each part listens, and curl lines for an allowed and a blocked caller."""
    allowed, blocked = local_addresses(config.access.allowed_cidrs)
    header = _authorization_header(config, throwaway_secrets, path)
    assert path.database is not None  # LocalPath started its MariaDB on entering
    lines = [
        *_aligned({"edge (CloudFront + WAF)": path.edge_url,
                   f"API stand-in (stage {config.api.stage})": f"{path.invoke_url}  (API key required)",
                   f"MariaDB (table {config.database.table})":
                       f"127.0.0.1:{path.database.port}  (keys 42 and 7 have rows; TLS from a throwaway CA)"}),
        *(["The function signs in to MariaDB with a throwaway password: IAM database authentication "
           "is RDS's own."] if path.iam_stood_in else []),
        "Every caller here is 127.0.0.1, so, locally only, the edge takes the caller's address",
        "from the first X-Forwarded-For entry. Try an allowed and a blocked caller:",
        f"  curl -i {header} -H 'X-Forwarded-For: {allowed}' '{path.edge_url}?key=42'",
        f"  curl -i {header} -H 'X-Forwarded-For: {blocked}' '{path.edge_url}?key=42'",
    ]
    if header.startswith("-H @"):
        lines.append("(that file holds this run's throwaway Authorization value; it is removed when serving stops)")
    return lines


def _until_stopped() -> None:
    """Wait for Ctrl-C or SIGTERM, even where a shell started us with SIGINT ignored (`cmd &`)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _authorization_header(config, throwaway: list[str], path: LocalPath) -> str:
    """curl's header argument: the variable's name for the operator's own secret; for a throwaway one, a
    header file (mode 0600, removed when serving stops), since the operator's shell does not have it."""
    env = config.access.authorization.env
    if env not in throwaway:
        return f'-H "Authorization: ${env}"'
    file = path.private_file("authorization.header", f"Authorization: {config.access.authorization.value}\n")
    return f"-H @{file}"


def _printer(out):
    return lambda line: out.console.print(line, markup=False, highlight=False)


def _aligned(rows: dict[str, str]) -> list[str]:
    width = max(map(len, rows)) + 2
    return [f"{(label + ':').ljust(width)}{value}" for label, value in rows.items()]
