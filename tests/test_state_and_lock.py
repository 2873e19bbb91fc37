import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from provision.errors import LockedError
from provision.lock import stack_lock
from provision.state import State


def test_state_is_written_atomically_with_mode_0600(tmp_path):
    state = State(tmp_path / ".state" / "demo.json", "demo")
    state.put("api", {"rest_api_id": "abc", "ignored": None})
    state.save()
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.path.parent.stat().st_mode) == 0o700
    data = json.loads(state.path.read_text())
    assert data == {"version": 1, "stack": "demo", "resources": {"api": {"rest_api_id": "abc"}}}
    assert State.load(state.path, "demo").get("api") == {"rest_api_id": "abc"}


def test_a_crash_while_writing_keeps_the_previous_file(tmp_path, monkeypatch):
    state = State(tmp_path / "demo.json", "demo")
    state.put("api", {"rest_api_id": "old"})
    state.save()
    state.put("api", {"rest_api_id": "new"})

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        state.save()
    assert json.loads(state.path.read_text())["resources"]["api"] == {"rest_api_id": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["demo.json"]


@pytest.mark.parametrize("content", ["{not json", '{"version": 99, "stack": "demo", "resources": {}}',
                                     '{"version": 1, "stack": "other", "resources": {}}', "[]"])
def test_a_corrupt_or_foreign_state_file_is_reported_and_ignored(tmp_path, content):
    path = tmp_path / "demo.json"
    path.write_text(content)
    state = State.load(path, "demo")
    assert state.resources == {}
    assert "finding resources by tag" in state.problem


def test_an_empty_state_removes_the_file(tmp_path):
    state = State(tmp_path / "demo.json", "demo")
    state.put("api", {"rest_api_id": "abc"})
    state.save()
    state.drop("api")
    state.save()
    assert not state.path.exists()


def write_lock(path, pid, host=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "command": "deploy",
                                "started": "2026-01-01T00:00:00Z"}))


def test_a_live_run_holds_the_lock(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / "demo.lock"
        write_lock(lock, other.pid)
        with pytest.raises(LockedError, match=f"pid {other.pid}"):
            with stack_lock(lock, "deploy", print):
                pass
        assert json.loads(lock.read_text())["pid"] == other.pid
    finally:
        other.kill()
        other.wait()


def test_a_stale_lock_is_taken_over_and_released(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = tmp_path / "demo.lock"
    write_lock(lock, gone.pid)
    notes = []
    with stack_lock(lock, "deploy", notes.append):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()
    assert "stale lock" in notes[0] and f"pid {gone.pid} is gone" in notes[0]


def test_an_unreadable_lock_is_taken_over(tmp_path):
    lock = tmp_path / "demo.lock"
    lock.write_text("garbage")
    notes = []
    with stack_lock(lock, "teardown", notes.append):
        held = json.loads(lock.read_text())
        assert held["pid"] == os.getpid() and held["command"] == "teardown"  # taken: this run holds it
    assert not lock.exists()
    assert "unreadable" in notes[0]


def test_a_lock_from_another_host_is_not_taken(tmp_path):
    lock = tmp_path / "demo.lock"
    write_lock(lock, 1, host="some-other-host")
    with pytest.raises(LockedError, match="some-other-host"):
        with stack_lock(lock, "deploy", print):
            pass
