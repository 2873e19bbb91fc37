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
``stack`` tag), made by the first deploy or rotate that needs it and never
deleted, since other stacks' runs use it; a teardown never makes it (with no
table, no run of any stack holds a lease there). The lease is taken with its
conditional write first; the table is looked at only when that write answers
that there is no table.

The item names its owner (who: the AWS identity and the OS user; where: host
and pid; which command; since when; and, for a holder on this machine, the
machine, its boot and pid namespace, and the process's start time) and an
expiry ``expires`` (epoch seconds), renewed every third of ``[lease]
expiry_s`` by a thread while the run lasts: a crashed or killed run's lease
lapses by itself at most ``expiry_s`` later. A holder on this same machine
whose process is gone (its pid is no process, or another process since) is
taken over at once, conditional on its token, as the file lock is freed by
the kernel when its process dies; a holder elsewhere is waited for.

Expiry is compared with the clock of the run that wants the lease. Right
before a renewal the item still has two thirds of ``expiry_s`` to run, so
clocks more than two thirds of ``expiry_s`` apart (less the time a renewal
takes) could take a live lease: keep machines on NTP. An expiry further out
than the longest ``expiry_s`` (``LEASE_EXPIRY_RANGE``) is no run's: it counts
as lapsed. A second run names the holder and exits 1, or with ``--wait``
polls until the lease is free (bounded, visible). --local runs the same code
against the emulator.

A run that cannot prove it holds its lease (taken over, removed with
``rds-edge-api unlock``, the table deleted, or not renewed in time) stops
changing AWS at once: every later call of the run's clients is refused
(``Clients.lost``), so the step under way fails at its next call and the run
exits 1 saying what to do. A table deleted during a run is never made again
by that run.

``account_held`` is the same lease for an account-wide thing several stacks
edit (the shared SES receipt rule set, API Gateway's logging role): an item
``account:<name>`` held for the seconds an edit takes, waited for (bounded,
visible) by a run that meets it; under it the caller reads what it edits
again before changing it.

Lease calls use clients of their own: they are the run's bookkeeping, like
the state file, so they neither count as the stack's changes (a no-op
deploy still makes 0) nor meet the plan guard.
"""
from __future__ import annotations

import getpass
import math
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from botocore.exceptions import BotoCoreError, ClientError

from . import waits
from .aws_errors import CONDITIONAL_CHECK_FAILED_EXCEPTION, RESOURCE_IN_USE_EXCEPTION, RESOURCE_NOT_FOUND_EXCEPTION
from .clients import make_clients
from .config import LEASE_EXPIRY_RANGE
from .errors import LeaseLost, LockedError, describe, is_code, or_none
from .lock import LOCK_WAIT_TIMEOUT
from .tags import MANAGED_BY, tag_list

TABLE = "rds-edge-api-leases"
SHARED_TAGS = {"managed-by": MANAGED_BY, "shared": "all stacks"}
TABLE_ACTIVE_TIMEOUT = 120
TAKEN = CONDITIONAL_CHECK_FAILED_EXCEPTION
NO_TABLE = RESOURCE_NOT_FOUND_EXCEPTION
ACCOUNT = "account:"  # an account lease's key: no stack name has a ':'
ACCOUNT_EXPIRY_S = 30  # an account lease is held for the seconds one edit takes
ACCOUNT_WAIT_TIMEOUT = 10 * 60
ACCOUNT_POLL_INTERVAL = 1.0
SHOWN = 120  # characters of a holder's field shown


def shown(value: str) -> str:
    """An item's text as data: what would break the line or reach the terminal raw is shown escaped."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


def unlock_hint(key: str, region: str) -> str:
    return f"rds-edge-api unlock --stack {key} --region {region}"


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as its item says; ``problem`` says why an item is no lease this tool wrote."""
    key: str
    token: str = ""
    who: str = "?"
    where: str = "?"
    command: str = "?"
    since: str = "?"
    expires: float = 0.0
    machine: str = ""
    pid: int | None = None
    started: str = ""
    problem: str = ""

    def lapsed(self, now: float) -> bool:
        """Lapsed, or so far out that no run wrote it; a bad item is neither: it is shown as bad."""
        return not self.problem and not now < self.expires <= now + LEASE_EXPIRY_RANGE[1]

    def describe(self, now: float) -> str:
        """Plain text, its fields escaped (``shown``); an Output escapes rich markup."""
        if self.problem:
            return f"an item that is not a lease ({self.problem})"
        return (f"{shown(self.who)} on {shown(self.where)} ({shown(self.command)}, since {shown(self.since)}; "
                f"lapses in {max(0, int(self.expires - now))}s unless renewed)")

    @classmethod
    def from_item(cls, key: str, item: dict) -> "Holder":
        def text(name: str) -> str | None:
            value = item.get(name)
            return value["S"] if isinstance(value, dict) and isinstance(value.get("S"), str) else None

        expires, problem = 0.0, ""
        raw = item.get("expires")
        try:
            expires = float(raw["N"])  # type: ignore[index]
            if not math.isfinite(expires):
                raise ValueError(expires)
        except (KeyError, TypeError, ValueError):
            problem = "its 'expires' is not a number of seconds"
        if text("token") is None:
            problem = problem or "it has no 'token' string"
        try:
            pid = int(item["pid"]["N"]) if "pid" in item else None
        except (KeyError, TypeError, ValueError):
            pid = None
        return cls(key=key, token=text("token") or "", who=text("who") or "?", where=text("where") or "?",
                   command=text("command") or "?", since=text("since") or "?", expires=expires,
                   machine=text("machine") or "", pid=pid, started=text("started") or "", problem=problem)


def read(dynamodb, key: str) -> Holder | None:
    """The item under ``key``, whatever it holds, or None (no table, no item)."""
    found = or_none(dynamodb.get_item, NO_TABLE, TableName=TABLE, Key={"stack": {"S": key}}, ConsistentRead=True)
    if not found or "Item" not in found:
        return None
    return Holder.from_item(key, found["Item"])


def holder(dynamodb, stack: str, now: float | None = None) -> Holder | None:
    """The live holder of the lease (or a bad item, which blocks it), or None (no table, no item, lapsed)."""
    found = read(dynamodb, stack)
    return None if found is None or found.lapsed(time.time() if now is None else now) else found


@contextmanager
def held(ctx, command: str, *, wait: bool = False, make_table: bool = True) -> Iterator[None]:
    """Hold the stack's lease for the block; raise LockedError if another run holds it (or, with ``wait``,
    wait for it to be free).

    make_table=False (teardown): with no table in the region, no run holds a lease there; the block runs
    without one, and the table is not made.
    """
    lease = _Lease(ctx, ctx.stack, ctx.region, ctx.config.lease.expiry_s, command)
    if not lease.take(wait, make_table):
        ctx.out.note(f"no lease table {TABLE} in {ctx.region}, so no run of any stack holds a lease there; "
                     "going on without one (a teardown does not make the table)")
        yield
        return
    ctx.out.note(f"Holding stack {ctx.stack}'s lease in table {TABLE} ({ctx.region}); it lapses "
                 f"{lease.expiry_s}s after this run stops renewing it")
    ctx.clients.leased_in.add(ctx.region)
    try:
        yield
    finally:
        ctx.clients.leased_in.discard(ctx.region)
        lease.give_back()


@contextmanager
def account_held(ctx, region: str, name: str, why: str) -> Iterator[None]:
    """Hold the account lease ``account:<name>`` in ``region``'s lease table for the block (seconds: one edit
    of an account-wide thing several stacks share), waiting (bounded, visible, saying for what) while
    another run holds it. The caller reads what it edits again inside the block.

    The table is made if missing, as for a stack's lease. A crashed holder's item lapses within
    ``ACCOUNT_EXPIRY_S``; one of this machine whose process is gone is taken over at once.
    """
    if ctx.clients.lost is not None:  # a run that lost its own lease takes no other (nor makes a table for one)
        raise LeaseLost(ctx.clients.lost)
    lease = _Lease(ctx, ACCOUNT + name, region, ACCOUNT_EXPIRY_S, f"stack {ctx.stack}: {why}")
    # Where this run holds its stack's lease the table exists: found missing, it was deleted during the run.
    if not lease.take(True, region not in ctx.clients.leased_in,
                      what=f"the account's lease on {name} ({why}; held by another run for seconds)",
                      timeout=ACCOUNT_WAIT_TIMEOUT, interval=ACCOUNT_POLL_INTERVAL):
        ctx.clients.lost = (f"stack {ctx.stack}'s lease is gone with its table {TABLE} ({region}), deleted during "
                            "the run: this run stopped before its next change to AWS; see what is there with "
                            "'rds-edge-api list', then run the same command again")
        raise LeaseLost(ctx.clients.lost)
    try:
        yield
    finally:
        lease.give_back()


class _Lease:
    def __init__(self, ctx, key: str, region: str, expiry_s: int, command: str):
        self.ctx, self.key, self.region, self.expiry_s = ctx, key, region, expiry_s
        self.clients = clients = make_clients(ctx.clients.session, sleep=ctx.sleep, on_retry=ctx.out.waiting)
        self.dynamodb = clients("dynamodb", region)
        self.token = secrets.token_hex(16)
        self.owner = {"who": _who(ctx, clients("sts", region)),
                      "where": f"{socket.gethostname()} pid {os.getpid()}", "command": command,
                      "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "machine": this_machine(), "started": process_started(os.getpid()) or ""}
        self.expires = 0.0  # as last written: the lease is this run's until then
        self.stop = threading.Event()
        self.renewer: threading.Thread | None = None

    def _name(self) -> str:
        return f"stack {self.key}'s lease" if not self.key.startswith(ACCOUNT) else f"the account's lease {self.key}"

    def take(self, wait: bool, make_table: bool, *, what: str = "", timeout: float = LOCK_WAIT_TIMEOUT,
             interval: float | None = None) -> bool:
        """Take the lease (True), or find no table when it is not to be made (False)."""
        taken = self._try_take(make_table)
        if taken is None:
            return False
        if not taken:
            if not wait:
                found = read(self.dynamodb, self.key)
                raise LockedError(self._held_by(found) + "; wait for that run to finish, or run again with --wait")
            waits.wait_until(self.ctx, what or f"stack {self.key}'s lease (held by another run)",
                             lambda: self._try_take(True), timeout=timeout,
                             interval=interval or max(1.0, self.expiry_s / 3))
        self.renewer = threading.Thread(target=self._renew, name=f"lease-{self.key}", daemon=True)
        self.renewer.start()
        return True

    def _held_by(self, found: Holder | None) -> str:
        if found is not None and found.problem:
            return self._bad(found)
        who = found.describe(time.time()) if found else "another run (it has just let go: run again)"
        return f"{self._name()} in the account is held by {who}"

    def _bad(self, found: Holder) -> str:
        return (f"{self._name()} in table {TABLE} ({self.region}) is held by an item that is not a lease "
                f"({found.problem}); if no run of it is under way, clear it with: {unlock_hint(self.key, self.region)}")

    def give_back(self) -> None:
        self.stop.set()
        if self.renewer is not None:
            self.renewer.join()
        try:
            self.dynamodb.delete_item(TableName=TABLE, Key={"stack": {"S": self.key}},
                                      ConditionExpression="#t = :mine", ExpressionAttributeNames={"#t": "token"},
                                      ExpressionAttributeValues={":mine": {"S": self.token}})
        except ClientError as exc:
            if not is_code(exc, TAKEN, NO_TABLE):  # taken over or gone: nothing of ours to give back
                self._lapses(exc)
        except BotoCoreError as exc:
            self._lapses(exc)

    def _lapses(self, exc: BaseException) -> None:
        """The run is over either way: a lease that could not be given back is said, never raised."""
        self.ctx.out.note(f"could not give back {self._name()} ({describe(exc)}); it lapses by itself "
                          f"within {self.expiry_s}s")

    def _item(self, now: float) -> dict:
        self.expires = now + self.expiry_s
        return {"stack": {"S": self.key}, "token": {"S": self.token}, "expires": {"N": str(int(self.expires))},
                "pid": {"N": str(os.getpid())}, **{k: {"S": v} for k, v in self.owner.items()}}

    def _try_take(self, make_table: bool, table_made: bool = False) -> bool | None:
        """True: taken; False: held by another run; None: no table, and it is not to be made.

        The conditional write goes first; only its NO_TABLE answer has the table looked at (and made)."""
        now = time.time()
        try:
            self.dynamodb.put_item(
                TableName=TABLE, Item=self._item(now),
                ConditionExpression="attribute_not_exists(#s) OR attribute_type(#e, :n) AND (#e < :now OR #e > :far)",
                ExpressionAttributeNames={"#s": "stack", "#e": "expires"},
                ExpressionAttributeValues={":now": {"N": str(int(now))}, ":n": {"S": "N"},
                                           ":far": {"N": str(int(now) + LEASE_EXPIRY_RANGE[1])}})
            return True
        except ClientError as exc:
            if is_code(exc, NO_TABLE) and not table_made:
                if not make_table:
                    return None
                self._ensure_table()
                return self._try_take(make_table, table_made=True)
            if not is_code(exc, TAKEN):
                raise
        found = read(self.dynamodb, self.key)
        if found is None:
            return False  # let go since: the next try takes it
        if found.token == self.token:
            return True  # a lost answer resent (provision/clients.py): the first had written it
        if found.problem:
            raise LockedError(self._bad(found))
        if gone(found):
            return self._take_from_gone(found)
        return False

    def _take_from_gone(self, found: Holder) -> bool:
        """A holder of this machine whose process is gone: its lease, taken over at once, on its token."""
        try:
            self.dynamodb.put_item(TableName=TABLE, Item=self._item(time.time()), ConditionExpression="#t = :theirs",
                                   ExpressionAttributeNames={"#t": "token"},
                                   ExpressionAttributeValues={":theirs": {"S": found.token}})
        except ClientError as exc:
            if is_code(exc, TAKEN):
                return False  # another run took it first
            raise
        self.ctx.out.note(f"took over {self._name()} from {shown(found.where)} ({shown(found.command)}): that "
                          "process on this machine is gone")
        return True

    def _renew(self) -> None:
        """Push the expiry out every third of it; a lease that cannot be proven held stops the run's changes."""
        interval = self.expiry_s / 3
        while not self.stop.wait(interval):
            later = time.time() + self.expiry_s
            try:
                self.dynamodb.update_item(
                    TableName=TABLE, Key={"stack": {"S": self.key}}, UpdateExpression="SET #e = :later",
                    ConditionExpression="#t = :mine", ExpressionAttributeNames={"#e": "expires", "#t": "token"},
                    ExpressionAttributeValues={":later": {"N": str(int(later))}, ":mine": {"S": self.token}})
                self.expires, interval = later, self.expiry_s / 3
                continue
            except ClientError as exc:
                if is_code(exc, TAKEN):
                    return self._lose("was taken over by another run, or removed (rds-edge-api unlock)")
                if is_code(exc, NO_TABLE):
                    return self._lose(f"is gone with its table {TABLE} ({self.region}), deleted during the run")
                failure: BaseException = exc
            except BotoCoreError as exc:
                failure = exc
            if time.time() >= self.expires - self.expiry_s / 3:  # another machine's clock may already see it lapse
                return self._lose(f"could not be renewed in time ({describe(failure)})")
            interval = 1.0
            self.ctx.out.waiting(f"could not renew {self._name()} ({describe(failure)}); trying again")

    def _lose(self, why: str) -> None:
        self.ctx.clients.lost = (f"{self._name()} {why}: this run stopped before its next change to AWS; see what "
                                 "is there with 'rds-edge-api list', then run the same command again")
        self.ctx.out.waiting(f"{self._name()} {why}: stopping at this run's next AWS call")

    def _ensure_table(self) -> None:
        """The shared table, made (tagged, on demand) by the first run in the region that needs it."""
        found = or_none(self.dynamodb.describe_table, NO_TABLE, TableName=TABLE)
        if found is None:
            try:
                self.ctx.change("create", f"DynamoDB table {TABLE} (leases, shared by the account's stacks "
                                          f"in {self.region})", self._create_table)
            except ClientError as exc:
                if not is_code(exc, RESOURCE_IN_USE_EXCEPTION):  # another stack's run made it meanwhile
                    raise
        elif found["Table"].get("TableStatus") == "ACTIVE":
            return
        waits.wait_until(self.ctx, f"DynamoDB table {TABLE} ({self.region}) to become ACTIVE", self._active,
                         timeout=TABLE_ACTIVE_TIMEOUT, interval=2)

    def _create_table(self) -> None:
        """CreateTable, looked for (DescribeTable) before it is sent again after a lost answer."""
        with self.clients.finding(lambda: or_none(self.dynamodb.describe_table, NO_TABLE, TableName=TABLE)):
            self.dynamodb.create_table(
                TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "stack", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "stack", "KeyType": "HASH"}], Tags=tag_list(SHARED_TAGS))

    def _active(self) -> bool:
        """ACTIVE yet; "not found" right after CreateTable is "not yet": "If you issue a DescribeTable request
        immediately after a CreateTable request, DynamoDB might return a ResourceNotFoundException" (DynamoDB
        API reference, DescribeTable)."""
        found = or_none(self.dynamodb.describe_table, NO_TABLE, TableName=TABLE)
        return found is not None and found["Table"].get("TableStatus") == "ACTIVE"


def this_machine() -> str:
    """This host, its machine id, this boot of it and this pid namespace ("" where the OS does not say: a holder
    elsewhere is waited for). The pid namespace keeps two containers of one host (one image's
    machine-id, one kernel's boot id) apart, since their pids are not each other's."""
    try:
        machine = next((p.read_text().strip() for p in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
                        if p.exists()), "")
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{socket.gethostname()}/{machine}/{boot}/{namespace}" if machine and boot else ""


def process_started(pid: int) -> str | None:
    """When the process ``pid`` of this machine started (clock ticks since boot, /proc/PID/stat's 22nd
    field), or None when there is no such process: a pid and its start time name one process for good."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = raw.rsplit(")", 1)[-1].split()  # after the command's name, which may hold spaces
    return fields[19] if len(fields) > 19 else None


def gone(found: Holder) -> bool:
    """A holder of this machine (this boot, this pid namespace) whose process is no longer running."""
    mine = this_machine()
    if not mine or found.machine != mine or found.pid is None or not found.started:
        return False
    return process_started(found.pid) != found.started


def _who(ctx, sts) -> str:
    """The AWS identity and the OS user (an assumed role alone does not say which person or job it is),
    asked once per run."""
    if "lease.who" not in ctx.lookups:
        try:
            arn = sts.get_caller_identity()["Arn"]
        except (ClientError, BotoCoreError):
            arn = "unknown AWS identity"
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown user"
        ctx.lookups["lease.who"] = f"{arn} (user {user})"
    return ctx.lookups["lease.who"]

