"""The function's resource policy: this API's GET /<path> may invoke it, and nothing else may.

A step of its own, the one place the API and the function meet: the REST API
names the function only by its ARN, which the config and the account make
(function.arn), and API Gateway does not look for the function when an
integration names it; only this statement needs both to exist. So the API is
built while the function is made and, in the database's VPC, turns Active
(minutes on AWS), and this statement is added once both are there.

On teardown it goes first, before the function (whose policy holds it); the
API does not wait for it.
"""
from __future__ import annotations

import json

import boto3

from ..aws.arns import partition
from ..aws_errors import RESOURCE_NOT_FOUND_EXCEPTION
from ..config import Config
from ..context import Context
from ..errors import or_none
from ..registry import Account, Step
from . import function

NAME = "invoke_permission"


def statement_id(stack: str) -> str:
    return f"{stack}-apigateway-get"


def _statements(lambda_, name: str) -> list[dict]:
    """The function's resource policy statements; none when it has no policy (or does not exist yet)."""
    found = or_none(lambda_.get_policy, RESOURCE_NOT_FOUND_EXCEPTION, FunctionName=name)
    return json.loads(found["Policy"])["Statement"] if found else []


def observe(ctx: Context) -> list[dict]:
    """The policy of the stack's function (by its name: only this step changes that policy)."""
    return _statements(ctx.client("lambda"), function.function_name(ctx.stack))


def ensure(ctx: Context, seen: list[dict] | None = None) -> None:
    """Lambda may be invoked by this API's GET /<path> only (a statement of an older API or path is replaced)."""
    lambda_ = ctx.client("lambda")
    name, api_id = ctx.state.get("function").get("name"), ctx.state.get("api").get("rest_api_id")
    if not name or not api_id:  # planned, not made yet: the api and function steps say what they would make
        return
    statements = seen if seen is not None and name == function.function_name(ctx.stack) else _statements(lambda_, name)
    sid = statement_id(ctx.stack)
    source = (f"arn:{partition(ctx.region)}:execute-api:{ctx.region}:{ctx.account_id}:"
              f"{api_id}/*/GET/{ctx.config.api.path}")
    existing = next((s for s in statements if s.get("Sid") == sid), None)
    if existing and existing.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn") == source:
        return
    if existing:
        ctx.change("delete", f"old invoke permission {sid}", lambda_.remove_permission,
                   FunctionName=name, StatementId=sid)
    ctx.change("create", f"permission for API {api_id} GET /{ctx.config.api.path} to invoke {name}",
               lambda_.add_permission, FunctionName=name, StatementId=sid, Action="lambda:InvokeFunction",
               Principal="apigateway.amazonaws.com", SourceArn=source, find=lambda: _added(lambda_, name, sid))


def _added(lambda_, name: str, sid: str) -> dict | None:
    """AddPermission's answer, if the statement is there: looked for after a lost answer rather than sending
    it again (AWS would refuse the second as a conflict; moto 5.2.5 adds a second statement of that id)."""
    found = next((s for s in _statements(lambda_, name) if s.get("Sid") == sid), None)
    return {"Statement": json.dumps(found)} if found else None


def destroy(ctx: Context) -> None:
    """The stack's statement, if the function is still there (the function waits for this)."""
    lambda_, name, sid = ctx.client("lambda"), function.function_name(ctx.stack), statement_id(ctx.stack)
    if any(s.get("Sid") == sid for s in _statements(lambda_, name)):
        ctx.change("delete", f"invoke permission {sid}", lambda_.remove_permission, FunctionName=name,
                   StatementId=sid)


# --- the step, declared (provision/registry.py) ---------------------------------


def inventory(config: Config) -> list[str]:
    """The stack's statement in its function's policy, read back with plain boto3."""
    lambda_ = boto3.client("lambda", region_name=config.stack.region)
    name, sid = function.function_name(config.stack.name), statement_id(config.stack.name)
    return [f"invoke permission {s['Sid']}" for s in _statements(lambda_, name) if s.get("Sid") == sid]


def leaves(config: Config, account: Account) -> list[str]:
    return [f"invoke permission {statement_id(config.stack.name)}"]


STEP = Step(NAME, "Invoke permission", ensure, destroy, needs=("function", "api"), loose=("api",),
            observe=observe, sees_needs=False,
            inventory=(inventory,), leaves=leaves, creates=("AddPermission",), removes=("RemovePermission",))
