"""The toolkit's exceptions are in one module, and the AWS error codes it branches on are named once.

- every exception class of provision/ is defined in provision/errors.py (the emulator's own, in
  provision/local/, stand for AWS's answers and stay there);
- every AWS error code the code branches on (``is_code``, ``or_none``, ``stacks._found``, a comparison with
  ``error_code(...)``, the codes a second send answers in ``clients.DONE_ON_RESEND``) is a constant of
  provision/aws_errors.py, never a string written at the call.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import provision
from provision import aws_errors, errors

ROOT = Path(provision.__file__).resolve().parent
CODE_TAKERS = {"is_code": slice(1, None), "or_none": slice(1, 2), "_found": slice(1, 2)}
CODE_TABLES = {"DONE_ON_RESEND"}


def test_every_exception_class_of_the_toolkit_is_in_errors():
    found = {}
    for module_info in pkgutil.walk_packages([str(ROOT)], "provision."):
        if module_info.name.startswith("provision.local"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    classes = {name for name, value in vars(errors).items()
               if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == errors.__name__}
    assert {"StepFailed", "Interrupted", "Stopped", "PlanWouldChange", "UndeclaredRead"} <= classes
    assert sorted(name for name in found if not name.startswith("provision.errors.")) == []


def written_codes(path: Path) -> list[str]:
    """Each AWS error code written as a string where the code branches on one, as "file:line 'code'"."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    places: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            taker = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if taker in CODE_TAKERS:
                places += node.args[CODE_TAKERS[taker]]
        elif isinstance(node, ast.Compare) and getattr(getattr(node.left, "func", None), "id", None) == "error_code":
            places += node.comparators
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(getattr(target, "id", None) in CODE_TABLES for target in targets):
                places += [value for value in node.value.values if value is not None]
    written = sorted((constant.lineno, constant.col_offset, constant.value) for place in places
                     for constant in ast.walk(place) if isinstance(constant, ast.Constant) and isinstance(constant.value, str))
    return [f"{path.name}:{line} {code!r}" for line, _, code in written]


def test_no_aws_error_code_is_written_out_at_the_call():
    files = [path for path in sorted(ROOT.rglob("*.py")) if path.name != "aws_errors.py"]
    assert len(files) > 60
    assert [code for path in files for code in written_codes(path)] == []


def test_the_scan_finds_a_code_written_out(tmp_path):
    """The scan itself can fail: each way of branching on a code, written as a string, is found."""
    module = tmp_path / "step.py"
    module.write_text(
        "found = or_none(iam.get_role, 'NoSuchEntity', RoleName=name)\n"
        "if is_code(exc, RESOURCE_NOT_FOUND_EXCEPTION, 'ResourceInUseException'):\n    pass\n"
        "if error_code(exc) != '404':\n    pass\n"
        "gone = _found(head, (HTTP_404, 'NoSuchBucket'), Bucket=bucket)\n"
        "DONE_ON_RESEND: dict = {'CreateRole': ('EntityAlreadyExists',), 'DeleteRole': (NO_SUCH_ENTITY,)}\n"
        "fine = or_none(get, NO_SUCH_ENTITY, Name='NoSuchEntity')\n", encoding="utf-8")
    assert written_codes(module) == ["step.py:1 'NoSuchEntity'", "step.py:2 'ResourceInUseException'",
                                     "step.py:4 '404'", "step.py:6 'NoSuchBucket'", "step.py:7 'EntityAlreadyExists'"]


def test_each_code_is_named_once():
    names = {name: value for name, value in vars(aws_errors).items() if name.isupper() and isinstance(value, str)}
    assert len(names) > 40
    assert len(set(names.values())) == len(names), "two constants for one code"
    # word for word: the constant is the code in upper case (HTTP statuses as HTTP_<status>)
    assert all(name.replace("_", "") == value.replace(".", "").upper() or name == f"HTTP_{value}"
               for name, value in names.items())
