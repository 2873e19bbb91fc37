"""Every key of the example config, mutated: exit 2 with one line naming the key, or accepted; never a traceback.

The keys are read from stack.example.toml itself, the commented-out ones included (their example value
is the base), so a key added to the example is fuzzed without touching this file. Mutations the config
accepts are listed in ACCEPTED: anything accepted that is not listed fails the test, so a check that
is loosened (or a new key without checks) shows here.
"""
import datetime
import math
import re
import tomllib
from pathlib import Path

import pytest

from provision import cli

EXAMPLE = Path(__file__).parent.parent / "stack.example.toml"
AUTHORIZATION = "Bearer fuzz-9f8e7d6c5b4a39281706"

HUGE = 10_000
STRING_MUTATIONS = {
    "empty": "", "blank": "   ", "huge": "a" * HUGE, "negative": "-1",
    "newline": "{v}\n", "leading-newline": "\n{v}", "cr": "{v}\r", "nul": "{v}\x00", "escape": "{v}\x1b[31m",
    "del": "{v}\x7f", "c1": "{v}\x85", "zero-width": "{v}\u200b", "bidi": "\u202e{v}", "tab": "{v}\t",
    "unicode": "ünïcødé-{v}", "fullwidth": "ｖ１", "cyrillic": "{v}\u0430", "emoji": "{v}\U0001F600",
}
NUMBER_MUTATIONS = {
    "zero": 0, "negative": -1, "negative-float": -1.5, "huge": 2 ** 62, "most-negative": -2 ** 63,
    "float-huge": 1e308, "inf": math.inf, "-inf": -math.inf, "nan": math.nan, "fraction": 1.5,
}
TYPE_MUTATIONS = {"type-int": 7, "type-float": 2.5, "type-bool": True, "type-string": "7", "type-list": ["x"],
                  "type-table": {"a": 1}, "type-date": datetime.date(1979, 5, 27)}
LIST_MUTATIONS = {
    "empty": [], "duplicate": ["{v0}", "{v0}"], "newline-item": ["{v0}\n"], "nul-item": ["{v0}\x00"],
    "int-item": [1], "nested-list": [["{v0}"]], "huge-item": ["a" * HUGE], "many": ["{v0}"] * 10_000,
    "unicode-item": ["ünï"], "table-item": [{"a": 1}],
}

# (section.key, mutation) pairs the config accepts, each for a reason.
ACCEPTED = {
    # integers where the key takes a number (throttle_rate is a float; an int is a float in TOML's sense)
    ("api.throttle_rate", "type-int"), ("api.throttle_rate", "type-float"), ("api.throttle_rate", "fraction"),
    ("api.throttle_burst", "type-int"), ("function.max_concurrency", "type-int"),
    ("function.timeout_s", "type-int"),
    ("api.max_rows", "type-int"), ("function.log_retention_days", "type-int"),  # 7 rows, 7 days
    ("api.path", "negative"),  # "-1" is a path segment like any other
    ("function.max_concurrency", "zero"),  # 0: no reservation
    ("api.cache_seconds", "type-int"), ("api.cache_seconds", "zero"),  # seconds; 0: nothing cached
    # columns is optional: an empty list means all columns
    ("database.columns", "empty"),
    # the estimate's traffic: no requests prices the fixed part alone; sizes and times in kB and ms, any number
    ("cost.requests_per_month", "zero"), ("cost.requests_per_month", "type-int"),
    ("cost.response_kb", "zero"), ("cost.response_kb", "type-int"), ("cost.response_kb", "type-float"),
    ("cost.response_kb", "fraction"),
    ("cost.handler_ms", "type-int"), ("cost.handler_ms", "type-float"), ("cost.handler_ms", "fraction"),
}


def toml_string(text: str) -> str:
    """A TOML basic string: every control character (and DEL) escaped, as TOML requires."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "nan"
        return "inf" if value == math.inf else "-inf" if value == -math.inf else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def example_keys() -> dict[str, dict]:
    """{section: {key: example value}} with the commented-out keys and sections of the example."""
    sections: dict[str, dict] = {}
    section = None
    for line in EXAMPLE.read_text().splitlines():
        bare = re.sub(r"^#\s?", "", line.strip())
        header = re.fullmatch(r"\[(\w+)\]\s*(#.*)?", bare)
        if header:
            section = sections.setdefault(header.group(1), {})
            continue
        try:
            parsed = tomllib.loads(bare)
        except tomllib.TOMLDecodeError:
            continue
        if section is not None and len(parsed) == 1 and not isinstance(next(iter(parsed.values())), dict):
            section.update(parsed)
    return sections


KEYS = example_keys()
LIVE = tomllib.loads(EXAMPLE.read_text())  # the example as shipped: the base every mutation starts from


def mutations(value) -> dict[str, object]:
    if isinstance(value, bool):
        return {"type-string": "true", "type-int": 1, "type-float": 1.0, "empty": "", "type-list": [True],
                "type-table": {"a": True}, "newline": "true\n"}
    if isinstance(value, list):
        first = value[0] if value else "x"
        return {name: [v.format(v0=first) if isinstance(v, str) else v for v in m] if isinstance(m, list) else m
                for name, m in LIST_MUTATIONS.items()} | {"type-string": first, "type-int": 7}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return NUMBER_MUTATIONS | {k: v for k, v in TYPE_MUTATIONS.items() if k not in ("type-int", "type-float")} \
            | {"type-int": 7, "type-float": 2.5, "type-string": str(value)}
    return {name: m.replace("{v}", value) for name, m in STRING_MUTATIONS.items()} \
        | {k: v for k, v in TYPE_MUTATIONS.items() if k != "type-string"}


CASES = [(section, key, name, mutated)
         for section, keys in KEYS.items() for key, value in keys.items()
         for name, mutated in mutations(value).items()]
SECTION_CASES = [(section, name, mutated) for section in KEYS
                 for name, mutated in {"not-a-table": 1, "string": "x", "list": [1]}.items()]


def write(path: Path, data: dict) -> Path:
    lines = []
    for section, values in data.items():
        if not isinstance(values, dict):
            lines.insert(0, f"{section} = {toml_value(values)}")
            continue
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(v)}" for key, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """Run `outputs` on a config: 0 when the config is accepted (the command itself is stubbed), 2 when refused."""
    monkeypatch.setenv("RDS_EDGE_AUTHORIZATION", AUTHORIZATION)
    monkeypatch.setenv("RDS_EDGE_DB_PASSWORD", "fuzz-db-password")
    monkeypatch.setenv("RDS_EDGE_API_KEY", "fuzz-api-key-0123456789abcdef")
    monkeypatch.setattr("provision.commands.outputs.run", lambda *args: 0)

    def no_aws(*args, **kwargs):
        raise AssertionError("an AWS session was made while checking the config")

    monkeypatch.setattr("boto3.Session", no_aws)
    parser = cli.build_parser()  # built once: it is most of a run's time
    monkeypatch.setattr(cli, "build_parser", lambda: parser)

    def run_one(data):
        code = cli.main(["outputs", "--config", str(write(tmp_path / "stack.toml", data))])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err
        return code, captured.err.splitlines()

    return run_one


def test_every_key_of_the_example_is_fuzzed():
    assert {k for keys in KEYS.values() for k in keys} >= {
        "name", "region", "instance_id", "user", "auth", "password_env", "tls", "ca_bundle", "table", "key_column",
        "columns", "allowed_cidrs", "authorization_env", "validation", "hosted_zone_id", "mail_region",
        "validation_domain", "path", "stage", "key_env", "throttle_rate", "throttle_burst", "max_rows",
        "memory_mb", "timeout_s", "architecture", "log_retention_days", "max_concurrency", "email"}
    assert len(CASES) + len(SECTION_CASES) > 600


def test_mutated_keys_exit_2_with_one_line_naming_the_key_or_are_accepted(run):
    accepted, wrong = set(), []
    for section, key, name, mutated in CASES:
        data = {s: dict(v) for s, v in LIVE.items()}
        data.setdefault(section, {})[key] = mutated
        code, err = run(data)
        if code == 0:
            accepted.add((f"{section}.{key}", name))
            continue
        named = f"config error: {section}.{key}"
        if not (code == 2 and len(err) == 1 and err[0].startswith(named)):
            wrong.append((section, key, name, code, err[:2]))
    assert wrong == []
    assert accepted == ACCEPTED
    print(f"{len(CASES)} key mutations: {len(CASES) - len(accepted)} refused with one line, {len(accepted)} accepted")


def test_a_section_that_is_not_a_table_exits_2_naming_it(run):
    for section, name, mutated in SECTION_CASES:
        data = {s: dict(v) for s, v in LIVE.items()} | {section: mutated}
        code, err = run(data)
        assert code == 2 and len(err) == 1 and err[0].startswith(f"config error: {section}"), (section, name, err)
