"""Helpers shared by the tests: config files, contexts, command and step runs, AWS errors, resource counting."""
from __future__ import annotations

import io
import json
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from botocore.exceptions import ClientError
from rich.console import Console

from provision.clients import is_changing
from provision.context import Context, make_context
from provision.output import Output

EXAMPLE = "stack.example.toml"  # the README's example config, deployed by --local and the served path
SERVE_AUTHORIZATION = "Bearer serve-test-NEVER-SHOWN"  # the served path's Authorization value
ALLOWED, BLOCKED = "203.0.113.10", "198.51.100.77"  # a caller inside the example's allowed_cidrs, one outside
SECRETS = {
    "TEST_DB_PASSWORD": "db-pass-NEVER-SHOWN-7f3a",
    "TEST_AUTHORIZATION": "Bearer auth-NEVER-SHOWN-91c2",
    "TEST_SHORT_VALUE": "too-short",
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


class TestTime:
    """The suite's time, as the strict rules (tests/aws_rules.py) count it: the real clock plus every sleep
    the toolkit was given instead of waiting (``Sleeps``, ``aws_rules.Clock``), so that a throttled call
    retried after an injected sleep of 2 s meets the quota 2 s later, though no time passed."""

    def __init__(self) -> None:
        self.slept = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() + self.slept

    def passes(self, seconds: float) -> None:
        with self._lock:  # steps sleep side by side
            self.slept += max(0.0, seconds)


TEST_TIME = TestTime()


class Sleeps(list):
    """An injectable sleep that records instead of waiting (and moves ``TEST_TIME`` on)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        TEST_TIME.passes(seconds)


def quiet_output(width: int = 250) -> Output:
    """Output into a buffer (``out.console.file.getvalue()``), never the terminal."""
    return Output(Console(file=io.StringIO(), width=width, force_terminal=False))


def quiet_context(config, planning: bool = False, session=None) -> Context:
    """A Context whose output goes to a buffer (ctx.out.console.file) and whose sleep never waits."""
    return make_context(config, session=session, planning=planning, sleep=Sleeps(), out=quiet_output(200))


def printed(ctx: Context) -> str:
    return ctx.out.console.file.getvalue()


def changing_ops(ctx: Context) -> list[str]:
    return list(ctx.clients.calls.changing_ops)


def aws_error(operation: str, code: str, message: str = "injected", status: int = 400,
              headers: dict | None = None) -> ClientError:
    """The ClientError botocore raises for an AWS error answer."""
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}},
                       operation)


def inject(session, event: str, fail_times: int, code: str, message: str = "injected", status: int = 400):
    """Make the first ``fail_times`` calls matching a botocore event fail with ``code``; count attempts.

    ``event`` is like "before-call.lambda.CreateFunction". Returns the list of attempt numbers,
    so a test can check how many times the call was tried.
    """
    attempts = []

    def handler(**kwargs):
        attempts.append(len(attempts) + 1)
        if len(attempts) <= fail_times:
            raise aws_error(event.rsplit(".", 1)[-1], code, message, status)

    session.events.register(event, handler)
    return attempts


class _Body:
    """The raw body botocore reads an answer from."""

    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


def response(status: int, body: str, headers: dict | None = None):
    """A raw HTTP answer from AWS, as botocore's before-send hook may return one."""
    from botocore.awsrequest import AWSResponse

    return AWSResponse("https://example.invalid", status, headers or {}, _Body(body.encode()))


def failing(client, operation: str, times: int, failure):
    """Fail the first ``times`` sends of the operation; return the list of attempts."""
    attempts = []

    def before_send(request, **_):
        attempts.append(request)
        if len(attempts) <= times:
            return failure()
        return None

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"before-send.{service}.{operation}", before_send)
    return attempts


class Run:
    """One ``rds-edge-api <command> --config <path> <args>`` in-process: its exit code, what it printed,
    the AWS calls made through ``session`` and those that change something (``clients.is_changing``).
    Unpacks as (code, text)."""

    def __init__(self, command: str, path, *args: str, session=None):
        import boto3

        from provision import cli

        self.out = quiet_output()
        self.session = session or boto3.Session()
        self.calls: list[str] = []
        self.session.events.register("before-call", lambda model, **_: self.calls.append(model.name))
        self.code = cli.main([command, "--config", str(path), *map(str, args)], session=self.session, out=self.out)
        self.text = self.out.console.file.getvalue()

    @property
    def changing(self) -> list[str]:
        return [name for name in self.calls if is_changing(name)]

    def __iter__(self) -> Iterator:
        return iter((self.code, self.text))


def run_once(config, *actions: Callable[[Context], object], planning: bool = False, state: dict | None = None,
             drop: tuple[str, ...] = ()) -> Context:
    """One command run of step actions: a fresh context (the state file as the last run saved it, minus
    ``drop``, plus ``state`` as earlier steps would leave it), the actions in order, the state saved as
    the runner would (not while planning)."""
    ctx = quiet_context(config, planning=planning)
    for step in drop:
        ctx.state.drop(step)
    for step, values in (state or {}).items():
        ctx.state.put(step, values)
    for action in actions:
        action(ctx)
    if not planning:
        ctx.state.save()
    return ctx


def run_steps(config, *modules, planning: bool = False, destroy: bool = False) -> Context:
    """One run of the given step modules in a fresh context (ensure in order, or destroy in reverse)."""
    ctx = quiet_context(config, planning=planning)
    for module in (reversed(modules) if destroy else modules):
        (module.destroy if destroy else module.ensure)(ctx)
    return ctx


def gather(tmp_path_factory, topic: str, name: str, value, expected: set[str]) -> dict | None:
    """Share JSON values across this run's test processes (pytest-xdist workers or one process): store
    ``value`` as ``name`` of ``topic``; to whichever test stores the last of ``expected``, return them all
    (name -> value), else None. So a check over every parametrized case runs once all of them ran."""
    import os

    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / f"gathered-{topic}"
    folder.mkdir(exist_ok=True)
    partial = folder / f".{name}.{os.getpid()}"
    partial.write_text(json.dumps(value), encoding="utf-8")
    partial.rename(folder / f"{name}.json")  # atomic: a reader never sees half a value
    found = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in folder.glob("*.json")}
    return found if expected <= set(found) else None


def kinds(found: list[str]) -> list[str]:
    """Inventory without generated ids, to compare two deploys."""
    found = [re.sub(r"Execution-Logs_[a-z0-9]+/", "Execution-Logs_<api>/", item) for item in found]  # the API's id
    found = [re.sub(r" [0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", "", item) for item in found]  # a cache policy's
    return sorted(re.sub(r"^delivery [A-Za-z0-9]{16}$", "delivery",  # CloudWatch Logs' delivery id
                         re.sub(r"_[0-9a-f]{32}\.", "_<token>.", re.sub(r" [A-Z0-9]{10,}$", "", item)))
                  for item in found)


def inventory(config) -> list[str]:
    """Everything of the stack's that exists, read with plain boto3 in every region the stack uses, by each
    step's own inventory listers (its module's ``STEP``, provision/registry.py), never its find code:
    resources tagged managed-by=rds-edge-api and stack=<name> (log groups include WAF's in us-east-1),
    our rule on the database's group, and the untaggable ones (SES rule sets and identities, SNS
    subscriptions, DNS records) by name."""
    from provision.registry import listers
    from provision.steps import STEPS

    return sorted(item for lister in listers(STEPS) for item in lister(config))


def seeded_account():
    """The account and database as the emulator seeds them (provision/local/emulator.py): for a declaration's
    ``leaves`` where nothing is deployed (the recorder's configs, test_registry)."""
    from provision.registry import Account

    return Account("123456789012", "orders-db-db", "db.t4g.micro")


def expected(config) -> list[str]:
    """What a deploy of the config leaves, as ``kinds`` shows the inventory: each step's declared ``leaves``
    (provision/registry.py), for the account and database the test made, read here with plain boto3."""
    import boto3

    from provision.registry import Account
    from provision.steps import STEPS

    region = config.stack.region
    [instance] = boto3.client("rds", region_name=region).describe_db_instances(
        DBInstanceIdentifier=config.database.instance_id)["DBInstances"]
    [group] = boto3.client("ec2", region_name=region).describe_security_groups(
        GroupIds=[instance["VpcSecurityGroups"][0]["VpcSecurityGroupId"]])["SecurityGroups"]
    account = Account(boto3.client("sts").get_caller_identity()["Account"], group["GroupName"],
                      instance["DBInstanceClass"])
    return sorted(item for step in STEPS if step.leaves for item in step.leaves(config, account))


def moto_evaluates_secure_transport(monkeypatch) -> None:
    """The mail bucket's TLS-only statement evaluated as AWS does for boto3's https calls
    (provision/local/moto_workarounds.py says why), for the rest of the test."""
    from moto.s3.models import FakeBucket

    from provision.local.moto_workarounds import get_permission_without_tls_deny

    monkeypatch.setattr(FakeBucket, "get_permission", get_permission_without_tls_deny(FakeBucket.get_permission))
