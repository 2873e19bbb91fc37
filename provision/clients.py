"""The one place AWS clients are made: shared config, call counting, plan guard.

boto3's own credential chain and AWS_ENDPOINT_URL are honoured as they are;
no endpoint is ever set here. botocore's built-in retries are switched off so
that ``waits.transient_retry_hook`` is the only retry policy.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import boto3
from botocore.config import Config as BotoConfig

from . import waits

USER_AGENT = "rds-edge-api/0.1"
READ_PREFIXES = ("Describe", "Get", "List", "Head", "Check", "Search", "Lookup", "Test", "Filter")
CLIENT_CONFIG = BotoConfig(
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=10,
    read_timeout=60,
    user_agent_extra=USER_AGENT,
)


def is_changing(operation_name: str) -> bool:
    """Whether an API operation changes anything (by AWS's naming convention)."""
    return not operation_name.startswith(READ_PREFIXES)


class PlanWouldChange(RuntimeError):
    """A changing call was attempted during --plan: a bug, never sent to AWS."""


class Stopped(BaseException):
    """The run is stopping (Ctrl-C, or another step failed): no further call goes out."""


@dataclass
class CallCounter:
    """Counts API calls (not retries), and those that change something."""
    total: int = 0
    changing: int = 0
    changing_ops: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, model, **_) -> None:
        with self._lock:  # steps call side by side
            self.total += 1
            if is_changing(model.name):
                self.changing += 1
                self.changing_ops.append(model.name)


@dataclass
class Clients:
    """boto3 clients per (service, region) from one session, each with this run's hooks.

    The hooks go on each client, not on the session: a session shared by two runs
    (a test, the call recorder) would otherwise carry the first run's plan guard
    and counter into the second."""
    session: boto3.Session
    calls: CallCounter
    retry_hook: Callable
    planning: bool = False
    stopping: threading.Event = field(default_factory=threading.Event)
    _cache: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, service: str, region: str):
        key = (service, region)
        with self._lock:  # a boto3 session is not thread-safe; the clients it makes are
            if key not in self._cache:
                client = self.session.client(service, region_name=region, config=CLIENT_CONFIG)
                client.meta.events.register("before-call", self.plan_guard)
                client.meta.events.register("before-call", self.calls)
                client.meta.events.register("needs-retry", self.retry_hook)
                self._cache[key] = client
            return self._cache[key]

    def plan_guard(self, model, **_) -> None:
        if self.stopping.is_set():
            raise Stopped(model.name)
        if self.planning and is_changing(model.name):
            raise PlanWouldChange(f"{model.name} attempted while planning")


def make_clients(session: boto3.Session | None, *, sleep: Callable[[float], None],
                 on_retry: Callable[[str], None]) -> Clients:
    """Clients that count calls, refuse changes while planning and retry transient errors."""
    return Clients(session=session or boto3.Session(), calls=CallCounter(),
                   retry_hook=waits.transient_retry_hook(sleep, on_retry))
