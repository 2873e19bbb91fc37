"""Helpers shared by the tests: config files, contexts, resource counting."""
from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from provision.context import Context, make_context
from provision.output import Output

SECRETS = {
    "TEST_DB_PASSWORD": "db-pass-NEVER-SHOWN-7f3a",
    "TEST_AUTHORIZATION": "Bearer auth-NEVER-SHOWN-91c2",
}

BASE_CONFIG = {
    "stack": {"name": "demo", "region": "eu-west-1"},
    "database": {"instance_id": "orders-db", "name": "shop", "user": "api_reader",
                 "password_env": "TEST_DB_PASSWORD", "table": "orders", "key_column": "customer_id"},
    "access": {"allowed_cidrs": ["203.0.113.0/24", "2001:db8::/32"], "authorization_env": "TEST_AUTHORIZATION"},
    "domain": {"name": "api.example.com", "validation": "dns"},
}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def write_toml(path: Path, data: dict) -> Path:
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def merged(overrides: dict | None = None, drop: tuple[str, ...] = ()) -> dict:
    """BASE_CONFIG with overrides per section; drop names "section.key" or "section" to remove."""
    data = {s: dict(v) for s, v in BASE_CONFIG.items()}
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    for item in drop:
        section, _, key = item.partition(".")
        if key:
            data[section].pop(key, None)
        else:
            data.pop(section, None)
    return data


class Sleeps(list):
    """An injectable sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def quiet_context(config, planning: bool = False, session=None) -> Context:
    """A Context whose output goes to a buffer (ctx.out.console.file) and whose sleep never waits."""
    out = Output(Console(file=io.StringIO(), width=200, force_terminal=False))
    return make_context(config, session=session, planning=planning, sleep=Sleeps(), out=out)


def printed(ctx: Context) -> str:
    return ctx.out.console.file.getvalue()


def changing_ops(ctx: Context) -> list[str]:
    return list(ctx.clients.calls.changing_ops)


def inject(session, event: str, fail_times: int, code: str, message: str = "injected", status: int = 400):
    """Make the first ``fail_times`` calls matching a botocore event fail with ``code``; count attempts.

    ``event`` is like "before-call.lambda.CreateFunction". Returns the list of attempt numbers,
    so a test can check how many times the call was tried.
    """
    from botocore.exceptions import ClientError

    attempts = []

    def handler(**kwargs):
        attempts.append(len(attempts) + 1)
        if len(attempts) <= fail_times:
            raise ClientError({"Error": {"Code": code, "Message": message},
                               "ResponseMetadata": {"HTTPStatusCode": status}}, event.rsplit(".", 1)[-1])

    session.events.register(event, handler)
    return attempts


def run_steps(config, *modules, planning: bool = False, destroy: bool = False) -> Context:
    """One run of the given step modules in a fresh context (ensure in order, or destroy in reverse)."""
    ctx = quiet_context(config, planning=planning)
    for module in (reversed(modules) if destroy else modules):
        (module.destroy if destroy else module.ensure)(ctx)
    return ctx
