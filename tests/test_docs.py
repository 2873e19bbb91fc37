"""The docs hold together: every relative link lands, every config key is in the reference, the README
stays short and names every page, and the step graph on the architecture page is the one the code draws."""
import ast
import re
import subprocess
from pathlib import Path

import pytest

from provision import config as config_module, graph
from provision.steps import STEPS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted([README, *DOCS.glob("*.md")])
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+).+?\1")


def prose_lines(text: str, blank_code: bool = True) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code blanked unless told: what GitHub renders
    as Markdown."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line) if blank_code else line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: Markdown marks and punctuation dropped, lower case, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor, a repeated one with GitHub's -1, -2 suffixes."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    text = path.read_text(encoding="utf-8")
    for _, line in prose_lines(text, blank_code=False):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = github_slug(heading.group(1))
            found.add(slug if slug not in counts else f"{slug}-{counts[slug]}")
            counts[slug] = counts.get(slug, 0) + 1
    return found


def relative_links(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(number, target) for number, line in prose_lines(text) for target in LINK.findall(line)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I)]  # http:, https:, mailto: are not ours


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_lands_on_a_file_and_heading(page):
    broken = []
    for number, target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        file = (page.parent / file_part).resolve() if file_part else page
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        if not file.exists():
            broken.append(f"{where}: no file {file_part}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{where}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, "broken links:\n" + "\n".join(broken)


PROJECT_PATH = re.compile(r"`((?:\.ci|provision|tests|scripts|bench|docs|maintainer|lambda)/[A-Za-z0-9_./<>*-]+)")


def project_paths(text: str) -> list[str]:
    """The project's files a page names in code spans (``tests/x.py::test_y`` names tests/x.py; a pattern,
    ``tests/test_<name>.py``, names none)."""
    return [path for path in PROJECT_PATH.findall(text) if not set(path) & set("<>*")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_project_file_a_page_names_exists(page):
    missing = [path for path in project_paths(page.read_text(encoding="utf-8")) if not (ROOT / path).exists()]
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"


def test_the_path_check_reads_paths_in_code_spans():
    assert project_paths("`provision/iam/aws_calls.json` and `tests/test_x.py::test_y`, not provision/x.py, "
                         "nor `tests/test_<name>.py`") == ["provision/iam/aws_calls.json", "tests/test_x.py"]


def test_the_slugs_are_githubs():
    """The anchors the link check accepts are the ones GitHub makes (a check that cannot fail checks nothing)."""
    assert github_slug("`verify`: check every wall") == "verify-check-every-wall"
    assert github_slug("Cached answers (optional): `[api] cache_seconds`") == \
        "cached-answers-optional-api-cache_seconds"
    assert github_slug("Every request on record: the API's access log and CloudFront's log") == \
        "every-request-on-record-the-apis-access-log-and-cloudfronts-log"
    page = DOCS / "operating.md"
    assert "teams-many-stacks-many-operators" in anchors(page)
    assert "3-give-callers-the-new-value-at-their-pace" not in anchors(page)  # a comment in a code block


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[a](missing.md) [b](#title) [c](#nowhere) `[d](not-a-link.md)`\n"
                    "```\n[e](in-code.md)\n```\n[f](https://example.com/x)\n", encoding="utf-8")
    assert relative_links(page) == [(3, "missing.md"), (3, "#title"), (3, "#nowhere")]
    assert anchors(page) == {"title"}


def test_the_readme_fits_on_a_few_screens_and_links_every_page():
    text = README.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines, at most {README_MAX_LINES}: move a topic to docs/"
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in relative_links(README)}
    unlinked = [str(page.relative_to(ROOT)) for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"README.md links no {', '.join(unlinked)}"


def test_the_readme_names_the_two_commands_ci_and_newcomers_run():
    text = README.read_text(encoding="utf-8")
    assert "```sh\nscripts/try-local\n```" in text and "```sh\nscripts/test\n```" in text
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


# Every optional key set (auth = "password" for password_env, [alerts] for its keys, handler_ms, which is
# read only when given): loading it reads every key the toolkit accepts.
EVERY_KEY = {
    "stack": {"check_permissions": False},
    "database": {"auth": "password", "tls": "verify", "ca_bundle": "ca.pem", "proxy": False,
                 "columns": ["order_id", "total"]},
    "access": {"rate_limit": 2000, "rate_window_s": 300},
    "domain": {"validation": "email", "hosted_zone_id": "Z0123456789ABC", "mail_region": "us-east-1",
               "validation_domain": "example.com", "mail_rule_set": "my-rules"},
    "api": {"path": "items", "stage": "v1", "key_env": "TEST_API_KEY", "throttle_rate": 10.0, "throttle_burst": 20,
            "max_rows": 1000, "cache_seconds": 0},
    "function": {"memory_mb": 256, "timeout_s": 10, "architecture": "arm64", "log_retention_days": 30,
                 "max_concurrency": 10},
    "logs": {"api_access": True, "cloudfront": True},
    "alerts": {"email": "ops@example.com", "health": True},
    "lease": {"expiry_s": 60},
    "cost": {"requests_per_month": 1_000_000, "response_kb": 2.0, "handler_ms": 2.0},
}
READERS = {"get", "text", "number", "secret", "region"}  # _Section's methods that read a key


def keys_named_in_config_py() -> set[str]:
    """Every key config.py reads by name: s.get("k", ...) and the like, _choice(s, "k", ...), "k" in s.raw."""
    keys = set()
    for node in ast.walk(ast.parse(Path(config_module.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in READERS and getattr(func.value, "id", "") == "s":
                keys.add(node.args[0].value)
        if isinstance(node, ast.Call) and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                and getattr(node.func, "id", "") in ("_choice", "_identifier"):
            keys.add(node.args[1].value)
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and \
                isinstance(node.ops[0], ast.In) and getattr(node.comparators[0], "attr", "") == "raw":
            keys.add(node.left.value)
    return {key for key in keys if isinstance(key, str)}


@pytest.fixture
def accepted_keys(write_config, tmp_path, rds_ca_pem, monkeypatch):
    """{section: keys}, as the config check itself records them: each section's keys used when it finishes
    (_Section.finish refuses every other key as unknown)."""
    monkeypatch.setenv("TEST_API_KEY", "k" * 24)
    (tmp_path / "ca.pem").write_bytes(rds_ca_pem)
    seen: dict[str, set[str]] = {}
    finish = config_module._Section.finish

    def recording(section):
        seen.setdefault(section.name, set()).update(section.used)
        finish(section)

    monkeypatch.setattr(config_module._Section, "finish", recording)
    config_module.load(write_config(EVERY_KEY))
    return seen


def reference_keys() -> dict[str, list[str]]:
    """{section: the keys of its table} as docs/config.md lists them under "## `[section]`"."""
    listed: dict[str, list[str]] = {}
    section = None
    for _, raw in prose_lines((DOCS / "config.md").read_text(encoding="utf-8"), blank_code=False):
        line = raw.replace("`", "")
        heading = re.match(r"##\s+\[(\w+)\]\s*$", line)
        if heading:
            section = listed.setdefault(heading.group(1), [])
        elif line.startswith("## "):
            section = None
        row = re.match(r"\|\s*([\w]+)\s*\|", line)
        if section is not None and row and row.group(1) != "key":
            section.append(row.group(1))
    return listed


def test_every_config_key_is_in_the_reference_under_its_section(accepted_keys):
    listed = reference_keys()
    missing = [f"[{section}] {key}" for section, keys in sorted(accepted_keys.items()) for key in sorted(keys)
               if key not in listed.get(section, [])]
    assert not missing, "docs/config.md does not list (under its section's heading ## `[section]`): " + \
        ", ".join(missing)
    stale = [f"[{section}] {key}" for section, keys in sorted(listed.items()) for key in keys
             if key not in accepted_keys.get(section, set())]
    assert not stale, "docs/config.md lists keys the config check refuses: " + ", ".join(stale)
    twice = [f"[{section}] {key}" for section, keys in listed.items() for key in set(keys) if keys.count(key) > 1]
    assert not twice, "docs/config.md lists twice: " + ", ".join(twice)


def test_the_recorded_keys_are_every_key_config_py_reads(accepted_keys):
    """A key added to config.py but not to EVERY_KEY above would escape the reference check."""
    recorded = set().union(*accepted_keys.values())
    unread = sorted(keys_named_in_config_py() - recorded)
    assert not unread, f"config.py reads {unread}: set them in tests/test_docs.py's EVERY_KEY"
    assert set(accepted_keys) == set(EVERY_KEY), \
        f"config.py reads sections {sorted(set(accepted_keys) - set(EVERY_KEY))}: add them to tests/test_docs.py's EVERY_KEY"


MERMAID = re.compile(r"```mermaid\n.*?\n```", re.S)


def test_the_architecture_page_shows_the_graph_the_code_draws():
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    blocks = MERMAID.findall(page)
    drawn = f"```mermaid\n{graph.mermaid(STEPS)}\n```"
    assert blocks == [drawn], "docs/architecture.md's step graph is out of date: run scripts/step-graph --write"
    printed = subprocess.run([str(ROOT / "scripts" / "step-graph")], capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == drawn
