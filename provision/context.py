"""What every step receives: config, clients per region, tags, state, output, sleep."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .clients import Clients
from .config import Config
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
    _account_id: str | None = None

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
        if self._account_id is None:
            self._account_id = self.client("sts").get_caller_identity()["Account"]
        return self._account_id

    def change(self, kind: str, what: str, call: Callable[..., Any], /, *args, **kwargs) -> Any:
        """Make (or, when planning, only announce) one change: kind is create, update or delete."""
        self.report.changes.append((kind, what))
        self.out.change(kind, what, self.planning)
        if self.planning:
            return None
        return call(*args, **kwargs)


def make_context(config: Config, *, session=None, planning: bool = False,
                 sleep: Callable[[float], None] = time.sleep, out: Output | None = None) -> Context:
    """The one way a Context is built, by the commands and by the tests alike."""
    from .clients import make_clients
    from .state import State

    out = out or Output()
    clients = make_clients(session, sleep=sleep, on_retry=out.waiting)
    clients.planning = planning
    state = State.load(config.state_dir / f"{config.stack.name}.json", config.stack.name)
    return Context(config=config, clients=clients, out=out, state=state, planning=planning, sleep=sleep)
