"""One run at a time per stack, across machines: a lease held in the account.

The file lock (``lock.py``) keeps two runs on one machine apart; an operator
on another laptop, or CI, never sees that file. So deploy, teardown and
rotate also take the stack's lease in the account right after the lock
(``context.locked``; deploy once its read-only preflight has passed), before
any change, and give it back when they end.

Why a DynamoDB item with a conditional write (and not an S3 object written
with ``If-None-Match``, or an SSM parameter created only if absent):
- taking a free lease and taking over a lapsed one is ONE atomic write
  (``attribute_not_exists(stack) OR expires < :now``); S3 needs a read and a
  second conditional write (``If-Match`` on the ETag) to replace a lapsed
  object, and SSM has no compare-and-swap at all, so two runs could both
  replace a lapsed parameter;
- renewing and giving back are conditional on this run's token, so a run
  that lost its lease can never extend or delete the next holder's;
- it is what Terraform's S3 backend used for a decade (``dynamodb_table``);
  an on-demand table with a few items costs nothing while idle.

The table ``rds-edge-api-leases`` is in the stack's region and SHARED by
every stack of the account there (one item per held lease, key ``stack``):
it is tagged ``managed-by = rds-edge-api`` and ``shared = all stacks`` (no
``stack`` tag), made by the first run that needs it and never deleted by a
teardown, since other stacks' runs use it.

The item names its owner (who: the AWS identity and the OS user; where: host
and pid; which command; since when) and an expiry ``expires`` (epoch
seconds), renewed every third of ``[lease] expiry_s`` by a thread while the
run lasts: a crashed or killed run's lease lapses by itself at most
``expiry_s`` later. Expiry is compared with the clock of the run that wants
the lease, so clocks more than ``expiry_s`` apart could take a live lease;
keep machines on NTP. A second run names the holder and exits 1, or with
``--wait`` polls until the lease is free (bounded, visible). --local runs
the same code against the emulator.

Lease calls use clients of their own: they are the run's bookkeeping, like
the state file, so they neither count as the stack's changes (a no-op
deploy still makes 0) nor meet the plan guard.
"""
from __future__ import annotations

import _thread
import getpass
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from botocore.exceptions import BotoCoreError, ClientError

from . import waits
from .clients import make_clients
from .context import LOCK_WAIT_TIMEOUT
from .errors import LockedError, describe, is_code, or_none
from .tags import MANAGED_BY, tag_list

TABLE = "rds-edge-api-leases"
SHARED_TAGS = {"managed-by": MANAGED_BY, "shared": "all stacks"}
TABLE_ACTIVE_TIMEOUT = 120
TAKEN = "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as its item says."""
    stack: str
    who: str
    where: str
    command: str
    since: str
    expires: float

    def describe(self, now: float) -> str:
        left = max(0, int(self.expires - now))
        return (f"{self.who} on {self.where} ({self.command}, since {self.since}; lapses in {left}s unless "
                "renewed)")

    @classmethod
    def from_item(cls, item: dict) -> "Holder":
        text = {k: v.get("S", "") for k, v in item.items() if "S" in v}
        return cls(stack=text.get("stack", ""), who=text.get("who", "?"), where=text.get("where", "?"),
                   command=text.get("command", "?"), since=text.get("since", "?"),
                   expires=float(item.get("expires", {}).get("N", "0")))


def holder(dynamodb, stack: str, now: float | None = None) -> Holder | None:
    """The live holder of the stack's lease, or None (no table, no item, or a lapsed one)."""
    found = or_none(dynamodb.get_item, "ResourceNotFoundException", TableName=TABLE,
                    Key={"stack": {"S": stack}}, ConsistentRead=True)
    if not found or "Item" not in found:
        return None
    held = Holder.from_item(found["Item"])
    return held if held.expires > (time.time() if now is None else now) else None


@contextmanager
def held(ctx, command: str, *, wait: bool = False) -> Iterator[None]:
    """Hold the stack's lease for the block; raise LockedError if another run holds it (or, with ``wait``,
    wait for it to be free)."""
    lease = _Lease(ctx, command)
    lease.take(wait)
    try:
        yield
    finally:
        lease.give_back()


class _Lease:
    def __init__(self, ctx, command: str):
        self.ctx, self.stack = ctx, ctx.config.stack.name
        self.expiry_s = ctx.config.lease.expiry_s
        self.clients = clients = make_clients(ctx.clients.session, sleep=ctx.sleep, on_retry=ctx.out.waiting)
        self.dynamodb = clients("dynamodb", ctx.config.stack.region)
        self.token = secrets.token_hex(16)
        self.owner = {"who": _who(clients("sts", ctx.config.stack.region)),
                      "where": f"{socket.gethostname()} pid {os.getpid()}", "command": command,
                      "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.stop = threading.Event()
        self.renewer: threading.Thread | None = None

    def take(self, wait: bool) -> None:
        self._ensure_table()
        if not self._try_take():
            if not wait:
                now = time.time()
                found = holder(self.dynamodb, self.stack, now)
                who = found.describe(now) if found else "another run (it has just let go: run again)"
                raise LockedError(f"stack {self.stack}'s lease in the account is held by {who}; wait for that "
                                  "run to finish, or run again with --wait")
            waits.wait_until(self.ctx, f"stack {self.stack}'s lease (held by another run)", self._try_take,
                             timeout=LOCK_WAIT_TIMEOUT, interval=max(1.0, self.expiry_s / 3))
        self.ctx.out.note(f"Holding stack {self.stack}'s lease in table {TABLE} ({self.ctx.config.stack.region}); "
                          f"it lapses {self.expiry_s}s after this run stops renewing it")
        self.renewer = threading.Thread(target=self._renew, name=f"lease-{self.stack}", daemon=True)
        self.renewer.start()

    def give_back(self) -> None:
        self.stop.set()
        if self.renewer is not None:
            self.renewer.join()
        try:
            self.dynamodb.delete_item(TableName=TABLE, Key={"stack": {"S": self.stack}},
                                      ConditionExpression="#t = :mine", ExpressionAttributeNames={"#t": "token"},
                                      ExpressionAttributeValues={":mine": {"S": self.token}})
        except ClientError as exc:
            if not is_code(exc, TAKEN):  # TAKEN: already taken over, nothing of ours to give back
                self._lapses(exc)
        except BotoCoreError as exc:
            self._lapses(exc)

    def _lapses(self, exc: BaseException) -> None:
        """The run is over either way: a lease that could not be given back is said, never raised."""
        self.ctx.out.note(f"could not give back stack {self.stack}'s lease ({describe(exc)}); it lapses by itself "
                          f"within {self.expiry_s}s")

    def _try_take(self) -> bool:
        now = time.time()
        item = {"stack": {"S": self.stack}, "token": {"S": self.token},
                "expires": {"N": str(int(now + self.expiry_s))},
                **{k: {"S": v} for k, v in self.owner.items()}}
        try:
            self.dynamodb.put_item(TableName=TABLE, Item=item,
                                   ConditionExpression="attribute_not_exists(#s) OR #e < :now",
                                   ExpressionAttributeNames={"#s": "stack", "#e": "expires"},
                                   ExpressionAttributeValues={":now": {"N": str(int(now))}})
        except ClientError as exc:
            if not is_code(exc, TAKEN):
                raise
            # Ours after all when a lost answer was resent (provision/clients.py) and the first had written it.
            found = or_none(self.dynamodb.get_item, "ResourceNotFoundException", TableName=TABLE,
                            Key={"stack": {"S": self.stack}}, ConsistentRead=True)
            return ((found or {}).get("Item", {}).get("token", {}).get("S")) == self.token
        return True

    def _renew(self) -> None:
        """Push the expiry out every third of it; a lease found taken over stops the run."""
        while not self.stop.wait(self.expiry_s / 3):
            try:
                self.dynamodb.update_item(
                    TableName=TABLE, Key={"stack": {"S": self.stack}}, UpdateExpression="SET #e = :later",
                    ConditionExpression="#t = :mine", ExpressionAttributeNames={"#e": "expires", "#t": "token"},
                    ExpressionAttributeValues={":later": {"N": str(int(time.time() + self.expiry_s))},
                                               ":mine": {"S": self.token}})
            except ClientError as exc:
                if is_code(exc, TAKEN):
                    self.ctx.out.error(f"stack {self.stack}'s lease was taken over by another run (this run "
                                       "could not renew it in time): stopping; run again when that one is done")
                    _thread.interrupt_main()
                    return
                self.ctx.out.waiting(f"could not renew the lease ({describe(exc)}); trying again")
            except BotoCoreError as exc:
                self.ctx.out.waiting(f"could not renew the lease ({describe(exc)}); trying again")

    def _ensure_table(self) -> None:
        """The shared table, made (tagged, on demand) by the first run in the region that needs it."""
        found = or_none(self.dynamodb.describe_table, "ResourceNotFoundException", TableName=TABLE)
        if found is None:
            try:
                self.ctx.change("create", f"DynamoDB table {TABLE} (stack leases, shared by the account's stacks "
                                          "in this region)", self._create_table)
            except ClientError as exc:
                if not is_code(exc, "ResourceInUseException"):  # another stack's run made it meanwhile
                    raise
        elif found["Table"].get("TableStatus") == "ACTIVE":
            return
        waits.wait_until(self.ctx, f"DynamoDB table {TABLE} to become ACTIVE", self._active,
                         timeout=TABLE_ACTIVE_TIMEOUT, interval=2)

    def _create_table(self) -> None:
        """CreateTable, looked for (DescribeTable) before it is sent again after a lost answer."""
        with self.clients.finding(lambda: or_none(self.dynamodb.describe_table, "ResourceNotFoundException",
                                                  TableName=TABLE)):
            self.dynamodb.create_table(
                TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "stack", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "stack", "KeyType": "HASH"}], Tags=tag_list(SHARED_TAGS))

    def _active(self) -> bool:
        """ResourceNotFoundException right after CreateTable is "not yet" (DynamoDB API reference, DescribeTable)."""
        found = or_none(self.dynamodb.describe_table, "ResourceNotFoundException", TableName=TABLE)
        return found is not None and found["Table"].get("TableStatus") == "ACTIVE"


def _who(sts) -> str:
    """The AWS identity and the OS user: an assumed role alone does not say which person or job it is."""
    try:
        arn = sts.get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError):
        arn = "unknown AWS identity"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown user"
    return f"{arn} (user {user})"
