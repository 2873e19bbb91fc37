"""Errors the operator sees, and the one place that reads AWS error codes."""
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
