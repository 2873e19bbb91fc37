"""What every step receives: config, clients per region, tags, state, output, sleep."""
from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from . import lease as account_lease, waits
from .clients import Clients
from .config import Config
from .errors import LeaseLost
from .lock import LOCK_POLL_INTERVAL, LOCK_WAIT_TIMEOUT, stack_lock
from .output import Output, StepReport
from .state import State
from .tags import stack_tags, tag_list

EDGE_REGION = "us-east-1"  # CloudFront, its certificates and CLOUDFRONT-scoped WAF live here
UNKNOWN = "(known after apply)"


@dataclass
class Context:
    config: Config
    clients: Clients
    out: Output
    state: State
    planning: bool = False
    sleep: Callable[[float], None] = time.sleep
    outputs: dict[str, str | None] = field(default_factory=dict)  # label -> value; None: a later step removes it
    report: StepReport = field(default_factory=lambda: StepReport(""))
    lookups: dict[str, Any] = field(default_factory=dict)  # read-only facts fetched once per run

    def client(self, service: str, region: str | None = None):
        """A client in the stack's region unless another is named."""
        return self.clients(service, region or self.config.stack.region)

    def edge(self, service: str):
        return self.clients(service, EDGE_REGION)

    def mail(self, service: str):
        return self.clients(service, self.config.domain.mail_region)

    @property
    def stack(self) -> str:
        return self.config.stack.name

    @property
    def region(self) -> str:
        return self.config.stack.region

    @property
    def tags(self) -> dict[str, str]:
        return stack_tags(self.stack)

    @property
    def tag_list(self) -> list[dict[str, str]]:
        return tag_list(self.tags)

    @property
    def account_id(self) -> str:
        """Asked once per run, by the first step that needs it (the others need not wait for it)."""
        return self.clients.account_id(self.region)

    def change(self, kind: str, what: str, call: Callable[..., Any], /, *args,
               find: Callable[[], Any] | None = None, **kwargs) -> Any:
        """Make (or, when planning, only announce) one change: kind is create, update or delete.

        find: how to see that the call took effect, so that after a lost answer AWS is looked at
        before the call is sent again (provision/clients.py): for a create, what it made, shaped like
        the create's answer; for an update that cannot simply be repeated (a spent ETag or lock
        token, a removal), ``{}`` once it shows; None when it has not.
        """
        if self.clients.lost is not None:  # the lease is no longer this run's: nothing more changes
            raise LeaseLost(self.clients.lost)
        self.report.changes.append((kind, what))
        self.out.change(kind, what, self.planning)
        if self.planning:
            return None
        with self.clients.finding(find):
            return call(*args, **kwargs)


def state_path(config: Config) -> Path:
    return config.state_dir / f"{config.stack.name}.json"


def lock_path(config: Config) -> Path:
    return config.state_dir / f"{config.stack.name}.lock"


def make_context(config: Config, *, session=None, planning: bool = False,
                 sleep: Callable[[float], None] = time.sleep, out: Output | None = None,
                 read_state: bool = True) -> Context:
    """The one way a Context is built, by the commands and by the tests alike.

    read_state=False leaves the state empty, for ``locked`` to read once the lock is held.
    """
    from .clients import make_clients

    out = out or Output()
    clients = make_clients(session, sleep=sleep, on_retry=out.waiting)
    clients.planning = planning
    path = state_path(config)
    state = State.load(path, config.stack.name) if read_state else State(path, config.stack.name)
    return Context(config=config, clients=clients, out=out, state=state, planning=planning, sleep=sleep)


@contextmanager
def locked(config: Config, command: str, *, session=None, out: Output | None = None, wait: bool = False,
           sleep: Callable[[float], None] = time.sleep, lease: bool = True,
           make_table: bool = True) -> Iterator[Context]:
    """The context of a run that changes the stack: the stack's lock held first (one machine), then its
    lease in the account (every machine: ``lease.py``), then the state read, so a run that starts right
    after another (or waited for it) starts from what that one left.

    wait: wait (bounded, visible) for the run that holds the lock instead of stopping at once.
    lease=False: the command takes the lease itself (``lease.held``) once its read-only checks pass, so
    that a run they stop writes nothing to the account (deploy's preflight).
    make_table=False: a run that never makes the lease table (teardown; ``lease.held``).
    """
    ctx = make_context(config, session=session, out=out, sleep=sleep, read_state=False)

    def waiting(what: str, try_take: Callable[[], bool]) -> None:
        waits.wait_until(ctx, what, try_take, timeout=LOCK_WAIT_TIMEOUT, interval=LOCK_POLL_INTERVAL)

    with ExitStack() as held:
        held.enter_context(stack_lock(lock_path(config), command, waiting if wait else None))
        if lease:
            held.enter_context(account_lease.held(ctx, command, wait=wait, make_table=make_table))
        ctx.state = State.load(ctx.state.path, ctx.stack)
        yield ctx
