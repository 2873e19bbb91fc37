"""A step, declared once: in its own module, as ``STEP = Step(...)``, beside its ensure, destroy and observe.

``provision/steps/__init__.py`` only lists the step modules in order; everything that needs the steps
(the runner's graph, the operator's policy, the call recorder, the tests' inventories and crash points)
reads these declarations, so nothing keeps a copy of the step list. A declaration says:
- the graph: ``needs``, the steps whose resources or state it uses (it starts once they are done), and of
  those the ``loose`` ones AWS does not hold on to (teardown does not wait for them); ``observe``, its
  reads alone, started with the run (``sees_needs`` False: it reads only its own resources, so it runs
  even before its needs are done);
- what it owns (nothing for a step that only waits):
  - ``inventory``: listers that read the step's resources back with plain boto3 (by the stack's tags,
    or by name where AWS cannot tag), never through the step's own find code, so a test that counts
    what a stack made trusts AWS's answer, not the toolkit's lookups (``tests/support.py``'s
    ``inventory``). A lister shared by several steps (the log groups, the DNS records) is named by each
    and run once.
  - ``leaves``: what a deploy of a config leaves of the step's, as those listers name it without the ids
    AWS generates (``tests/support.py``'s ``kinds``): the tests' expected inventories are these, joined
    over the steps, for the config and the account the test made (``tests/support.py``'s ``expected``).
  - ``arns``: per IAM service prefix, the stack's resource ARNs of that service the operator's policy
    grants (``provision/iam/policy.py``); the patterns of several steps for one service are joined.
  - ``creates``: the calls that create the step's resources, in the order the step makes them: the
    points a crash test stops a deploy right after (``tests/test_resilience.py``); ``removes``: the calls
    that remove them, where a crash test stops a teardown.
  - ``beyond``: what AWS checks for the step's calls beyond their own IAM action (tags on create, a role
    passed, ...), each with the documentation that says so, and ``only_when``: its recorded calls a config
    needs only with some setting; the operator's policy (``provision/iam/permissions.py``) joins them with
    the few calls no step makes (the lease table's);
  - ``drift``: changes to the step's resources made behind the stack's back, each through the session it
    is given (not the toolkit's) for the config's stack, that the next deploy repairs (or that teardown
    copes with): the call recorder makes them all, in step order, after a deploy of that config and
    before the next, so the repairing calls are in the catalog the operator's policy is built from.

Adding a step is then its module (with ``STEP``), its place in ``provision/steps/__init__.py``'s list,
its config section, its test and its docs; ``tests/test_registry.py`` names what a declaration lacks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

if TYPE_CHECKING:
    import boto3

    from .config import Config


class Names(Protocol):
    """How the policy writes an ARN of this stack's (``provision.iam.policy.Names``)."""
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
Leaves = Callable[["Config", "Account"], list[str]]  # (config, account) -> ["<kind> <name>", ...] a deploy leaves
Patterns = Callable[[Names, str], list[str]]  # (names, IAM action) -> the ARNs it is granted on
Drift = Callable[["boto3.Session", "Config"], None]  # (another session, config): change the stack's resources


@dataclass(frozen=True)
class Account:
    """What the names a deploy leaves depend on beyond the config: the operator's account and database, as
    the account holds them (a test reads them with plain boto3, ``tests/support.py``'s ``expected``)."""
    id: str
    database_group: str  # the name of the database's security group, which the stack adds its rules to
    instance_class: str  # the database's: whether its connection limit is known (the connections alarm)


@dataclass(frozen=True)
class Beyond:
    """Permissions AWS checks for one call beyond its own action."""
    service: str                     # boto3's name
    operation: str
    actions: tuple[str, ...]         # IAM actions checked too
    source: str                      # where AWS documents it
    # action -> the resource types (Service Authorization Reference names) AWS checks it on for this call,
    # where they are not the action's usual ones
    resources: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class OnlyWhen:
    """A recorded call that a config needs only with some setting."""
    applies: Callable[["Config"], bool]  # config -> needed?
    why: str


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    ensure: Callable
    destroy: Callable
    needs: tuple[str, ...] = ()
    loose: tuple[str, ...] = ()  # of the needs, those AWS does not hold on to: teardown does not wait for them
    observe: Callable | None = None  # the step's reads alone, started with the run; ensure(ctx, seen=) then
    sees_needs: bool = True  # whether observe reads what the steps it needs change; False: only its own resources
    inventory: tuple[Lister, ...] = ()
    leaves: Leaves | None = None  # what a deploy of a config leaves of the step's, as its listers name it
    arns: dict[str, Patterns] = field(default_factory=dict)
    creates: tuple[str, ...] = ()
    removes: tuple[str, ...] = ()
    drift: tuple[Drift, ...] = ()
    beyond: tuple[Beyond, ...] = ()  # what AWS checks for the step's calls beyond their own actions
    only_when: dict[tuple[str, str], OnlyWhen] = field(default_factory=dict)  # its calls a config needs only so

    @property
    def owns_nothing(self) -> bool:
        """A step that only waits (certificate_issued): nothing to list, grant, create or remove."""
        return not (self.inventory or self.leaves or self.arns or self.creates or self.removes or self.drift or self.beyond)


def nothing(ctx) -> None:
    """The destroy of a step that only waits: waiting leaves nothing to remove."""


def listers(steps: Iterable[Step]) -> list[Lister]:
    """Every inventory lister of these steps, each once (in the order first named)."""
    return list(dict.fromkeys(lister for step in steps for lister in step.inventory))


def drifts(steps: Iterable[Step]) -> list[Drift]:
    """Every drift of these steps, in step order, each once."""
    return list(dict.fromkeys(change for step in steps for change in step.drift))


def services(steps: Iterable[Step]) -> set[str]:
    """The IAM service prefixes whose resources these steps name."""
    return {service for step in steps for service in step.arns}


def arns(steps: Iterable[Step], names: Names, action: str) -> list[str] | None:
    """The ARNs the steps owning the action's service grant it on, joined in step order; None when no
    step names that service."""
    service = action.split(":")[0]
    patterns = [step.arns[service] for step in steps if service in step.arns]
    if not patterns:
        return None
    return list(dict.fromkeys(arn for pattern in patterns for arn in pattern(names, action)))
