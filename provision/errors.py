"""Every exception the toolkit raises, and the one place that reads AWS error codes (the codes themselves are
named in ``aws_errors.py``).

The emulator's own (provision/local/), which stand for AWS's answers, stay beside it.
"""
from __future__ import annotations

from botocore.exceptions import ClientError, NoCredentialsError


class ConfigError(Exception):
    """A bad config value: names the key and the problem (exit code 2)."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class DeployError(Exception):
    """A failure worth one readable line: what went wrong and what to do next."""


class LockedError(DeployError):
    """Another run holds the stack's lock."""


class LeaseLost(DeployError):
    """The run can no longer prove it holds its lease: no further call of it goes out (``lease.py``)."""


class WrongRegion(DeployError):
    """--region names a region where the stack has no regional half (a usage error: exit 2)."""


class CallerLacksPermissions(Exception):
    """check_permissions: the caller lacks some of the policy (the denials are printed)."""


class StepFailed(DeployError):
    """A step failed on an AWS error or a DeployError: the step's title, then the error's one line."""

    def __init__(self, step: str, detail: str):
        super().__init__(f"{step}: {detail}")
        self.step = step


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped the run during the named step(s): what was done is recorded (exit 130)."""

    def __init__(self, step: str):
        super().__init__(step)
        self.step = step


class Stopped(BaseException):
    """The run is stopping (Ctrl-C, or another step failed): no further call goes out."""


class PlanWouldChange(RuntimeError):
    """A changing call was attempted during --plan: a bug, never sent to AWS."""


class UndeclaredRead(RuntimeError):
    """A step read the state of a step it does not need: a missing ``needs`` in STEPS, never sent to AWS."""


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ClientError, or None for anything else."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def is_code(exc: BaseException, *codes: str) -> bool:
    """True when exc is a ClientError with one of the given codes: never a catch-all."""
    return error_code(exc) in codes


def or_none(call, missing: str | tuple[str, ...], /, **kwargs):
    """call(**kwargs), or None when AWS answers with the code(s) meaning "not there"; other errors raise."""
    try:
        return call(**kwargs)
    except ClientError as exc:
        if is_code(exc, *((missing,) if isinstance(missing, str) else missing)):
            return None
        raise


def describe(exc: BaseException) -> str:
    """One line for the operator: the AWS code and message, or the exception text."""
    if isinstance(exc, NoCredentialsError):
        return ("no AWS credentials found: set AWS_PROFILE (or run 'aws sso login'), or the AWS_ACCESS_KEY_ID "
                "variables; or try it without an account: --local")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "")
        return f"{op}: {err.get('Code')}: {err.get('Message', '').strip()}".strip(": ")
    return str(exc) or type(exc).__name__
