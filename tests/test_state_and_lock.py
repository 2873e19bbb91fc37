import json
import os
import stat

import pytest

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
