"""What each step owns, said once in the step's module, so nothing else keeps a copy of the step list.

Every step module exports ``OWNS = Owns(...)``, and its line in ``STEPS`` passes it (``owns=``):
- ``inventory``: listers that read the step's resources back with plain boto3 (by the stack's tags,
  or by name where AWS cannot tag), never through the step's own find code, so a test that counts
  what a stack made trusts AWS's answer, not the toolkit's lookups (``tests/support.py``'s
  ``inventory``). A lister shared by several steps (the log groups, the DNS records) is named by each
  and run once.
- ``arns``: per IAM service prefix, the stack's resource ARNs of that service the operator's policy
  grants (``provision/policy.py``); the patterns of several steps for one service are joined.
- ``creates``: the calls that create the step's resources, in the order the step makes them: the
  points a crash test stops a deploy right after (``tests/test_resilience.py``); ``removes``: the calls
  that remove them, where a crash test stops a teardown.
- ``drift``: changes to the step's resources made behind the stack's back, each through the session it
  is given (not the toolkit's) for the config's stack, that the next deploy repairs (or that teardown
  copes with): the call recorder (``maintainer/recording.py``) makes them all, in STEPS order,
  after a deploy of that config and before the next, so the repairing calls are in the catalog the
  operator's policy is built from.

Adding a step is then its module (with ``OWNS``), one ``STEPS`` line and its config section.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

if TYPE_CHECKING:
    import boto3

    from .config import Config


class Names(Protocol):
    """How the policy writes an ARN of this stack's (``provision.policy.Names``)."""
    @property
    def config(self) -> Config: ...

    @property
    def account(self) -> str: ...

    def arn(self, service: str, region: str, resource: str) -> str:
        """arn:<partition>:<service>:<region>:<account>:<resource> (region "" for a global service)."""
        ...

    def unowned_arn(self, service: str, resource: str) -> str:
        """arn:<partition>:<service>:::<resource>, for ARNs without region or account (S3, Route 53)."""
        ...


Lister = Callable[["Config"], list[str]]  # config -> ["<kind> <name>", ...] of the stack's that exist
Patterns = Callable[[Names, str], list[str]]  # (names, IAM action) -> the ARNs it is granted on
Drift = Callable[["boto3.Session", "Config"], None]  # (another session, config): change the stack's resources


@dataclass(frozen=True)
class Owns:
    inventory: tuple[Lister, ...] = ()
    arns: dict[str, Patterns] = field(default_factory=dict)
    creates: tuple[str, ...] = ()
    removes: tuple[str, ...] = ()
    drift: tuple[Drift, ...] = ()


NOTHING = Owns()  # a step that only waits (certificate_issued) owns no resource


def listers(owned: Iterable[Owns]) -> list[Lister]:
    """Every inventory lister of these steps, each once (in the order first named)."""
    return list(dict.fromkeys(lister for owns in owned for lister in owns.inventory))


def drifts(owned: Iterable[Owns]) -> list[Drift]:
    """Every drift of these steps, in STEPS order, each once."""
    return list(dict.fromkeys(change for owns in owned for change in owns.drift))


def services(owned: Iterable[Owns]) -> set[str]:
    """The IAM service prefixes whose resources these steps name."""
    return {service for owns in owned for service in owns.arns}


def arns(owned: Iterable[Owns], names: Names, action: str) -> list[str] | None:
    """The ARNs the steps owning the action's service grant it on, joined in STEPS order; None when no
    step names that service."""
    service = action.split(":")[0]
    patterns = [owns.arns[service] for owns in owned if service in owns.arns]
    if not patterns:
        return None
    return list(dict.fromkeys(arn for pattern in patterns for arn in pattern(names, action)))
