"""Each resource is found in one place (its step's ``find``), and commands stay apart.

The served path's read-back (provision/local/readback.py) and ``verify`` used to keep copies of the
REST API lookup, by name only; now both use the API step's, which goes by the stack's tags, so an API
of the same name that is not the stack's (another tool's, a teardown's leftover under other tags) is
never served or verified as the stack's.
"""
import ast
from pathlib import Path

import boto3
import pytest

from provision.commands import verify
from provision.errors import PlanWouldChange
from provision.local.readback import Deployed
from provision.steps import api as api_step
from tests.support import quiet_context

COMMANDS = Path(__file__).resolve().parent.parent / "provision" / "commands"


def _imported_commands(path: Path) -> set[str]:
    """The provision.commands modules that ``path`` (a module in provision/commands/) imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("provision.commands.")}
        elif isinstance(node, ast.ImportFrom):
            base = {0: node.module or "", 1: "provision.commands", 2: "provision"}[node.level]
            if node.level and node.module:
                base = f"{base}.{node.module}"
            if base == "provision.commands":  # from . import x, from provision.commands import x
                found |= {f"{base}.{a.name}" for a in node.names}
            elif base.startswith("provision.commands."):
                found.add(base)
    return found - {"provision.commands.__init__"}


def test_no_command_module_imports_another():
    modules = sorted(p for p in COMMANDS.glob("*.py") if p.name != "__init__.py")
    assert len(modules) >= 7  # the scan sees the commands (deploy, teardown, outputs, verify, ...)
    imports = {p.stem: sorted(_imported_commands(p)) for p in modules}
    assert {name: found for name, found in imports.items() if found} == {}


def test_the_scan_sees_every_form_of_import(tmp_path):
    """The scan itself can fail: each way of importing a command module is caught."""
    module = tmp_path / "x.py"
    module.write_text("from . import verify\nfrom .policy import check\nfrom ..commands import logs\n"
                      "import provision.commands.rotate\nfrom provision.commands.outputs import read\n"
                      "from .. import runner\nfrom ..steps import api\n", encoding="utf-8")
    assert _imported_commands(module) == {f"provision.commands.{m}"
                                          for m in ("verify", "policy", "logs", "rotate", "outputs")}


def _rest_api(cfg, tags: dict[str, str] | None) -> str:
    apigw = boto3.client("apigateway", region_name=cfg.stack.region)
    return apigw.create_rest_api(name=api_step.api_name(cfg.stack.name), **({"tags": tags} if tags else {}))["id"]


@pytest.mark.parametrize("tags", [None, {"stack": "someone-else", "managed-by": "rds-edge-api"}],
                         ids=["untagged", "another stack's tags"])
def test_a_same_named_api_that_is_not_the_stacks_is_not_read_back_as_it(cfg, tags):
    _rest_api(cfg, tags)
    deployed = Deployed(boto3.Session(region_name=cfg.stack.region), cfg)
    assert deployed.stack_api_id() is None
    ours = _rest_api(cfg, quiet_context(cfg).tags)
    assert deployed.stack_api_id() == ours  # read back on every request: the new API shows at once


def test_verify_does_not_take_a_same_named_api_for_the_stacks(cfg):
    _rest_api(cfg, None)
    assert api_step.find(quiet_context(cfg)) is None
    assert verify.deployed_urls(quiet_context(cfg)) is None


def test_the_read_back_cannot_change_anything(cfg):
    deployed = Deployed(boto3.Session(region_name=cfg.stack.region), cfg)
    with pytest.raises(PlanWouldChange):
        deployed.apigateway.create_rest_api(name="not-made")
    assert boto3.client("apigateway", region_name=cfg.stack.region).get_rest_apis()["items"] == []
