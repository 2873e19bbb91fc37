"""One holder of a stack's lock, whatever the lock file holds; the state read only once it is held.

The race tests start several real processes at the same moment on one lock file. Each holder proves
it is alone by creating a marker file with O_EXCL while it holds the lock (a second holder at the same
time could not), so the check needs no clock shared between processes.
"""
import json
import os
import subprocess
import sys
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from provision import config as config_module, lease
from provision.context import LOCK_POLL_INTERVAL, LOCK_WAIT_TIMEOUT, lock_path, locked, state_path
from provision.errors import DeployError, LockedError
from provision.lock import owner_text, stack_lock
from tests.support import Run, quiet_context

ROOT = Path(__file__).resolve().parent.parent
RACERS = 6
TRIALS = 3
HOLD_SECONDS = 0.4

# Run in each process: wait for the common start, take the lock (stack_lock, or with --wait the
# commands' own ``locked`` with its real wait), prove it is the only holder, hold, report.
RACER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from provision.errors import LockedError
    from provision.lock import stack_lock
    from provision.context import locked
    from provision import config as config_module, lease
    from contextlib import nullcontext
    lease.held = lambda ctx, command, **_: nullcontext()  # no AWS here: the lease has tests of its own

    lock, marker, start, mode = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    time.sleep(max(0.0, start - time.time()))

    def hold():
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            print(json.dumps({{"pid": os.getpid(), "two_holders": True}}))
            sys.exit(3)
        time.sleep({hold})
        os.close(fd)
        marker.unlink()
        print(json.dumps({{"pid": os.getpid(), "held": True}}))

    try:
        if mode == "wait":
            # its real wait, polling every tenth of a second rather than every LOCK_POLL_INTERVAL
            with locked(config_module.load(sys.argv[5]), "deploy", wait=True,
                        sleep=lambda seconds: time.sleep(min(seconds, 0.1))):
                hold()
        else:
            with stack_lock(lock, "deploy"):
                hold()
    except LockedError as exc:
        print(json.dumps({{"pid": os.getpid(), "refused": str(exc)}}))
        sys.exit(1)
""")


def race(tmp_path: Path, lock: Path, mode: str = "refuse", config: Path | None = None) -> list[tuple[int, dict]]:
    """RACERS processes started at one moment; their (exit code, report)."""
    script = tmp_path / "racer.py"
    script.write_text(RACER.format(root=str(ROOT), hold=HOLD_SECONDS))
    marker = tmp_path / "inside"
    start = time.time() + 1.5  # time for every interpreter to start and import before the common moment
    args = [str(lock), str(marker), str(start), mode] + ([str(config)] if config else [])
    procs = [subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(RACERS)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert out.strip(), err
        results.append((proc.returncode, json.loads(out.strip().splitlines()[-1])))
    return results


def dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


LOCK_FILES = {
    "no lock file": None,
    "stale (its owner is dead)": lambda: json.dumps({"pid": dead_pid(), "host": os.uname().nodename,
                                                      "command": "deploy", "started": "2026-01-01T00:00:00Z"}),
    "naming a live process that does not hold it": lambda: json.dumps({"pid": os.getpid(), "command": "deploy"}),
    "empty": lambda: "",
    "malformed: not JSON": lambda: "abc",
    "malformed: null": lambda: "null",
    "malformed: huge pid": lambda: json.dumps({"pid": 10 ** 30}),
    "malformed: pid not a number": lambda: json.dumps({"pid": "abc", "command": ["x"]}),
    "malformed: no pid": lambda: json.dumps({"host": "h"}),
    "malformed: binary": lambda: "\x00\xff\x1b[31m",
}


def prepare(lock: Path, content) -> None:
    lock.unlink(missing_ok=True)
    if content is not None:
        lock.write_text(content(), encoding="utf-8", errors="surrogateescape")


@pytest.mark.parametrize("kind", ["no lock file", "stale (its owner is dead)", "empty", "malformed: not JSON"])
def test_processes_racing_for_the_lock_never_hold_it_together(tmp_path, kind):
    lock = tmp_path / ".state" / "demo.lock"
    lock.parent.mkdir()
    for _ in range(TRIALS):
        prepare(lock, LOCK_FILES[kind])
        results = race(tmp_path, lock)
        holders = {report["pid"] for code, report in results if report.get("held")}
        assert not [r for _, r in results if r.get("two_holders")], results
        assert holders, results
        for code, report in results:
            if "refused" in report:
                assert code == 1
                said = report["refused"]
                assert f"holds the lock {lock}" in said and "--wait" in said
                # the holder is named by its pid and command, unless it had not written them yet
                assert any(f"deploy, pid {pid} " in said for pid in holders) or "not written its name" in said, said
            else:
                assert code == 0 and report.get("held"), report
        assert lock.exists()  # the file stays: no run ever deletes another's lock


def test_with_wait_every_racer_holds_the_lock_in_turn(tmp_path, write_config):
    path = write_config()
    lock = config_module.load(path).state_dir / "demo.lock"
    lock.parent.mkdir()
    prepare(lock, LOCK_FILES["stale (its owner is dead)"])
    results = race(tmp_path, lock, mode="wait", config=path)
    assert [code for code, _ in results] == [0] * RACERS, results
    assert all(report.get("held") for _, report in results)


@pytest.mark.parametrize("kind", list(LOCK_FILES))
def test_whatever_the_file_holds_a_free_lock_is_taken_and_it_never_raises(tmp_path, kind):
    lock = tmp_path / "demo.lock"
    prepare(lock, LOCK_FILES[kind])
    with stack_lock(lock, "teardown"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(LockedError, match=rf"another run \(teardown, pid {os.getpid()} on .*\) holds the lock"):
            with stack_lock(lock, "deploy"):
                pass
    assert lock.exists() and lock.read_text() == ""  # released: the file stays, the owner's name goes


@pytest.mark.parametrize("content", ["", "abc", "null", "[]", "7", json.dumps({"pid": 10 ** 30}), "{\"pid\": null}",
                                     json.dumps({"pid": "x" * 10_000}), "\udcff\x1b]0;title\x07"])
def test_the_holder_message_never_raises_on_what_the_file_holds(content):
    text = owner_text(content)
    assert text.startswith("another run") and len(text) < 300


def test_a_lock_file_that_is_a_symlink_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    (tmp_path / "demo.lock").symlink_to(target)
    with pytest.raises(OSError):
        with stack_lock(tmp_path / "demo.lock", "deploy"):
            pass
    assert target.read_text() == "precious"


def test_a_held_lock_stops_deploy_with_exit_1_naming_the_holder(cfg, write_config):
    path = write_config()
    with stack_lock(lock_path(cfg), "rotate api-key"):
        run = Run("deploy", path)
    assert run.code == 1
    assert f"another run (rotate api-key, pid {os.getpid()}" in run.text and "--wait" in run.text
    assert "Deploying" not in run.text  # refused before anything else


def test_teardown_and_rotate_take_the_same_lock(cfg, write_config):
    path = write_config()
    with stack_lock(lock_path(cfg), "deploy"):
        assert Run("teardown", path, "--yes").code == 1
        assert Run("rotate", path, "api-key").code == 1


class Releasing(list):
    """A sleep for ``locked``'s wait: the first time, the holder writes its state and releases the lock."""

    def __init__(self, holder: ExitStack, config, resources: dict):
        super().__init__()
        self.holder, self.config, self.resources = holder, config, resources

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if len(self) == 1:
            state_path(self.config).write_text(json.dumps({"version": 1, "stack": "demo",
                                                           "resources": self.resources}))
            self.holder.close()


def test_with_wait_the_state_is_read_after_the_holder_is_done(cfg):
    quiet = quiet_context(cfg)
    with lease.held(quiet_context(cfg), "deploy"):  # the region's lease table as an earlier run left it: the
        pass  # sleeps counted are the lock's polls (a first run's wait for its new table: tests/test_lease_lost.py)
    holder = ExitStack()
    holder.enter_context(stack_lock(lock_path(cfg), "deploy"))
    sleep = Releasing(holder, cfg, {"api": {"rest_api_id": "written-by-the-holder"}})
    with locked(cfg, "deploy", out=quiet.out, wait=True, sleep=sleep) as ctx:
        assert ctx.state.get("api") == {"rest_api_id": "written-by-the-holder"}
        assert json.loads(lock_path(cfg).read_text())["pid"] == os.getpid()
    assert sleep == [LOCK_POLL_INTERVAL]
    assert f"waiting for another run (deploy, pid {os.getpid()}" in quiet.out.console.file.getvalue()


def test_the_wait_for_the_lock_is_bounded(cfg):
    quiet = quiet_context(cfg)
    with stack_lock(lock_path(cfg), "deploy"):
        with pytest.raises(DeployError, match="gave up waiting for another run .* run the same command again"):
            with locked(cfg, "deploy", out=quiet.out, wait=True, sleep=quiet.sleep):
                pass
    assert sum(quiet.sleep) <= LOCK_WAIT_TIMEOUT + LOCK_POLL_INTERVAL
