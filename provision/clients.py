"""The one place AWS clients are made: shared config, call counting, plan guard, lost answers.

boto3's own credential chain and AWS_ENDPOINT_URL are honoured as they are;
no endpoint is ever set here. botocore's built-in retries are switched off so
that ``waits.transient_retry_hook`` is the only retry policy.

A changing call whose answer is lost (the connection dropped after AWS got it,
or a 5xx) may have been done: it is never sent again blindly. Each client's
changing calls go through ``waits.after_lost_answer``, with what this module
knows about the operation: whether a second send can make a second resource
(a create AWS does not refuse by name, token or caller reference:
``CreateRestApi``, ``CreateApiKey``, ``CreateUsagePlan``,
``CreateRequestValidator``, and any create not listed below), and which error
a second send gets when the first had done it. The step's ``find`` (given to
``ctx.change``) looks for what the lost call made.
"""
from __future__ import annotations

import functools
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import boto3
from botocore.config import Config as BotoConfig

from . import waits
from .aws_errors import (
    ALREADY_EXISTS,
    BUCKET_ALREADY_OWNED_BY_YOU,
    CACHE_POLICY_ALREADY_EXISTS,
    CONFLICT_EXCEPTION,
    DB_PROXY_ALREADY_EXISTS_FAULT,
    ENTITY_ALREADY_EXISTS,
    INVALID_GROUP_DUPLICATE,
    INVALID_GROUP_NOT_FOUND,
    INVALID_PERMISSION_DUPLICATE,
    INVALID_PERMISSION_NOT_FOUND,
    NO_SUCH_BUCKET,
    NO_SUCH_DISTRIBUTION,
    NO_SUCH_ENTITY,
    NOT_FOUND,
    NOT_FOUND_EXCEPTION,
    RESOURCE_ALREADY_EXISTS_EXCEPTION,
    RESOURCE_CONFLICT_EXCEPTION,
    RESOURCE_IN_USE_EXCEPTION,
    RESOURCE_NOT_FOUND_EXCEPTION,
    WAF_DUPLICATE_ITEM_EXCEPTION,
    WAF_NONEXISTENT_ITEM_EXCEPTION,
)
from .errors import LeaseLost, PlanWouldChange, Stopped

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


# Creates that a second send cannot double: AWS refuses a second resource of that name (or caller
# reference) with the error in DONE_ON_RESEND, or answers with the same one (CreateTopic by name:
# https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html; RequestCertificate, not a create
# by name, carries an IdempotencyToken). CreateDeployment may make a second deployment: a snapshot
# inside the stack's own API, never referenced, removed with the API, not a resource of its own.
RESENT_CREATES = frozenset({
    "CreateRole", "CreateFunction", "CreateLogGroup", "CreateSecurityGroup", "CreateIPSet", "CreateWebACL",
    "CreateBucket", "CreateReceiptRuleSet", "CreateReceiptRule", "CreateStage", "CreateResource",
    "CreateUsagePlanKey", "CreateTopic", "CreateDistributionWithTags", "CreateDeployment", "CreateTable",
    "CreateDBProxy",
    "CreateCachePolicy",
})
# What a second send answers when the lost first one had done the work.
DONE_ON_RESEND: dict[str, tuple[str, ...]] = {
    "CreateRole": (ENTITY_ALREADY_EXISTS,),
    "CreateTable": (RESOURCE_IN_USE_EXCEPTION,),  # the lease table, by name (DynamoDB API reference, CreateTable)
    "CreateDBProxy": (DB_PROXY_ALREADY_EXISTS_FAULT,),  # by name (RDS API reference, CreateDBProxy)
    "CreateFunction": (RESOURCE_CONFLICT_EXCEPTION,),
    "AddPermission": (RESOURCE_CONFLICT_EXCEPTION,),
    "CreateLogGroup": (RESOURCE_ALREADY_EXISTS_EXCEPTION,),
    "CreateSecurityGroup": (INVALID_GROUP_DUPLICATE,),
    "AuthorizeSecurityGroupIngress": (INVALID_PERMISSION_DUPLICATE,),
    "AuthorizeSecurityGroupEgress": (INVALID_PERMISSION_DUPLICATE,),
    "RevokeSecurityGroupIngress": (INVALID_PERMISSION_NOT_FOUND,),
    "RevokeSecurityGroupEgress": (INVALID_PERMISSION_NOT_FOUND,),
    "CreateIPSet": (WAF_DUPLICATE_ITEM_EXCEPTION,),
    "CreateWebACL": (WAF_DUPLICATE_ITEM_EXCEPTION,),
    "CreateBucket": (BUCKET_ALREADY_OWNED_BY_YOU,),
    "CreateReceiptRuleSet": (ALREADY_EXISTS,),
    "CreateCachePolicy": (CACHE_POLICY_ALREADY_EXISTS,),  # names are unique in the account (CloudFront API reference)
    "CreateReceiptRule": (ALREADY_EXISTS,),
    "CreateStage": (CONFLICT_EXCEPTION,),
    "CreateResource": (CONFLICT_EXCEPTION,),
    "CreateUsagePlanKey": (CONFLICT_EXCEPTION,),
    "PutMethod": (CONFLICT_EXCEPTION,),
    "DeleteRestApi": (NOT_FOUND_EXCEPTION,), "DeleteApiKey": (NOT_FOUND_EXCEPTION,),
    "DeleteUsagePlan": (NOT_FOUND_EXCEPTION,), "DeleteUsagePlanKey": (NOT_FOUND_EXCEPTION,),
    "DeleteStage": (NOT_FOUND_EXCEPTION,), "DeleteResource": (NOT_FOUND_EXCEPTION,),
    "DeleteMethod": (NOT_FOUND_EXCEPTION,),
    "DeleteFunction": (RESOURCE_NOT_FOUND_EXCEPTION,), "RemovePermission": (RESOURCE_NOT_FOUND_EXCEPTION,),
    "DeleteRole": (NO_SUCH_ENTITY,), "DeleteRolePolicy": (NO_SUCH_ENTITY,), "DetachRolePolicy": (NO_SUCH_ENTITY,),
    "DeleteLogGroup": (RESOURCE_NOT_FOUND_EXCEPTION,),
    "DeleteDelivery": (RESOURCE_NOT_FOUND_EXCEPTION,), "DeleteDeliverySource": (RESOURCE_NOT_FOUND_EXCEPTION,),
    "DeleteDeliveryDestination": (RESOURCE_NOT_FOUND_EXCEPTION,),
    "DeleteSecurityGroup": (INVALID_GROUP_NOT_FOUND,),
    "DeleteIPSet": (WAF_NONEXISTENT_ITEM_EXCEPTION,), "DeleteWebACL": (WAF_NONEXISTENT_ITEM_EXCEPTION,),
    "DeleteLoggingConfiguration": (WAF_NONEXISTENT_ITEM_EXCEPTION,),
    "DeleteDistribution": (NO_SUCH_DISTRIBUTION,),
    "DeleteCertificate": (RESOURCE_NOT_FOUND_EXCEPTION,),
    "DeleteRule": (RESOURCE_NOT_FOUND_EXCEPTION,),
    "DeleteBucket": (NO_SUCH_BUCKET,),
    "Unsubscribe": (NOT_FOUND,),
}


# Operations AWS allows about once per second per account and region, however many callers: a run that
# sends two at once (steps side by side, or one step's reads together) is throttled. They are spaced by
# ``PACE_SECONDS`` (a margin over the documented second, for clock and network jitter) within the
# process; refusals caused by other processes are throttles, retried by the transient hook.
# - WAF: "a maximum of one request per second, per account, per AWS Region for API calls to any
#   individual Create, Put, or Update action" (AWS WAF quotas, as quoted in "Security Automations for
#   AWS WAF", Quotas); a refusal is ThrottlingException "Rate exceeded"
#   (aws-solutions/aws-waf-security-automations#152).
# - SES (v1): each receipt-rule and identity operation below: "You can execute this operation no more
#   than once per second" (Amazon SES API reference, e.g. DescribeReceiptRuleSet).
PACE_SECONDS = 1.1
PACED_SES = frozenset({
    "CreateReceiptRule", "CreateReceiptRuleSet", "DeleteReceiptRule", "DeleteReceiptRuleSet",
    "DescribeActiveReceiptRuleSet", "DescribeReceiptRule", "DescribeReceiptRuleSet", "SetActiveReceiptRuleSet",
    "UpdateReceiptRule", "ReorderReceiptRuleSet", "SetReceiptRulePosition", "CloneReceiptRuleSet",
    "ListReceiptRuleSets", "DeleteIdentity", "VerifyDomainIdentity", "VerifyEmailIdentity",
})


def is_paced(service: str, operation: str) -> bool:
    """Whether AWS allows ``operation`` only about once per second per account and region."""
    if service == "wafv2":
        return operation.startswith(("Create", "Put", "Update"))
    return service == "ses" and operation in PACED_SES


class Pacer:
    """One call at a time per (service, region, operation) of those ``is_paced`` names, each sent at least
    ``PACE_SECONDS`` after the previous one ended. Shared by every run in the process (the quota is the
    account's). It waits with the run's sleep (``turn``) and measures with ``clock``: a test gives it the
    clock its injected sleeps move on, so that pacing costs the suite no real time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._ended: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def turn(self, key: tuple[str, str, str], sleep: Callable[[float], None]) -> Iterator[None]:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            wait = self._ended.get(key, float("-inf")) + PACE_SECONDS - self.clock()
            if wait > 0:
                sleep(wait)
            try:
                yield
            finally:
                self._ended[key] = self.clock()


PACER = Pacer()


def resendable(operation_name: str) -> bool:
    """Whether sending the call again after a lost answer cannot make a second resource."""
    return not operation_name.startswith("Create") or operation_name in RESENT_CREATES


def stoppable(stopping: threading.Event, sleep: Callable[[float], None]) -> Callable[[float], None]:
    """``sleep``, cut short when the run stops (``Stopped``): the real one waits on ``stopping`` instead,
    so Ctrl-C or another step's failure ends the wait at once; an injected one (a test's) is not called
    once the run stops."""
    def pause(seconds: float) -> None:
        if sleep is time.sleep:
            stopped = stopping.wait(seconds)
        else:
            stopped = stopping.is_set()
            if not stopped:
                sleep(seconds)
        if stopped:
            raise Stopped("sleep")
    return pause


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
    sleep: Callable[[float], None]
    on_retry: Callable[[str], None]
    planning: bool = False
    lost: str | None = None  # why the run no longer holds its lease (lease.py): every further call is refused
    leased_in: set[str] = field(default_factory=set)  # regions whose lease table holds this run's stack lease
    stopping: threading.Event = field(default_factory=threading.Event)
    # per thread (steps run side by side): how the change under way finds what its call made
    _finding: threading.local = field(default_factory=threading.local, repr=False)
    _cache: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _account: str | None = None
    _account_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, service: str, region: str):
        key = (service, region)
        made = self._cache.get(key)
        if made is not None:  # most calls: no wait behind another thread making a new client (tens of ms)
            return made
        with self._lock:  # a boto3 session is not thread-safe; the clients it makes are
            if key not in self._cache:
                client = self.session.client(service, region_name=region, config=CLIENT_CONFIG)
                client.meta.events.register("before-call", self.plan_guard)
                client.meta.events.register("before-call", self.calls)
                client.meta.events.register("needs-retry", self.retry_hook)
                self._cache[key] = LostAnswerGuard(client, self)
            return self._cache[key]

    def account_id(self, region: str) -> str:
        """The caller's account, asked of STS once for the run, whichever thread asks first."""
        with self._account_lock:
            if self._account is None:
                self._account = self("sts", region).get_caller_identity()["Account"]
            return self._account

    def plan_guard(self, model, **_) -> None:
        if self.lost is not None:
            raise LeaseLost(self.lost)
        if self.stopping.is_set():
            raise Stopped(model.name)
        if self.planning and is_changing(model.name):
            raise PlanWouldChange(f"{model.name} attempted while planning")

    @contextmanager
    def finding(self, find: Callable[[], Any] | None) -> Iterator[None]:
        """For one change: how to find what its call made, should the answer be lost."""
        previous = getattr(self._finding, "find", None)
        self._finding.find = find
        try:
            yield
        finally:
            self._finding.find = previous

    def changing_call(self, method: Callable, operation: str, /, *args, **kwargs) -> Any:
        return waits.after_lost_answer(lambda: method(*args, **kwargs), operation=operation,
                                       resend=resendable(operation), done_codes=DONE_ON_RESEND.get(operation, ()),
                                       find=getattr(self._finding, "find", None),
                                       sleep=stoppable(self.stopping, self.sleep), on_retry=self.on_retry)

    def paced_call(self, method: Callable, key: tuple[str, str, str], /, *args, **kwargs) -> Any:
        """A call AWS allows about once per second, in its turn (``Pacer``)."""
        with PACER.turn(key, stoppable(self.stopping, self.sleep)):
            return method(*args, **kwargs)


class LostAnswerGuard:
    """A boto3 client whose changing calls go through ``Clients.changing_call``, and whose calls AWS allows
    about once per second through ``Clients.paced_call``; the rest is the client's."""

    def __init__(self, client, clients: Clients):
        self._client, self._clients = client, clients

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        operation = self._client.meta.method_to_api_mapping.get(name)
        if operation is None:
            return attr
        meta = self._client.meta
        if is_paced(meta.service_model.service_name, operation):
            attr = functools.partial(self._clients.paced_call, attr,
                                     (meta.service_model.service_name, meta.region_name, operation))
        if not is_changing(operation):
            return attr
        return functools.partial(self._clients.changing_call, attr, operation)


def make_clients(session: boto3.Session | None, *, sleep: Callable[[float], None],
                 on_retry: Callable[[str], None]) -> Clients:
    """Clients that count calls, refuse changes while planning, retry transient errors and never
    send a changing call again blindly after a lost answer."""
    stopping = threading.Event()  # set by the runner: the backoffs end, raising Stopped
    return Clients(session=session or boto3.Session(), calls=CallCounter(),
                   retry_hook=waits.transient_retry_hook(stoppable(stopping, sleep), on_retry, changing=is_changing),
                   sleep=sleep, on_retry=on_retry, stopping=stopping)
