"""The Lambda function, and its log group created first.

The log group is made by us, tagged and with a retention, before the function
exists: otherwise Lambda makes it at the first call, with no expiry, and
teardown leaves it behind. Code is uploaded only when the zip's hash differs
from the function's CodeSha256 (the zip carries the CA bundle, so a new bundle
is new code). Reserved concurrency caps the connections the function can open
on the database; it is set apart from the configuration (PutFunctionConcurrency).
The environment holds no secret with auth = "iam": anyone allowed
lambda:GetFunctionConfiguration can read it.
"""
from __future__ import annotations

from .. import ca_bundle, waits
from ..context import UNKNOWN, Context
from ..errors import DeployError, error_code, or_none
from ..tags import is_ours
from . import database, log_groups, package

STEP = "function"
RUNTIME = "python3.13"
HANDLER = "handler.handler"
READY_TIMEOUT = 15 * 60  # VPC functions take minutes to become Active
ROLE_PROPAGATION_TIMEOUT = 120


def function_name(stack: str) -> str:
    return f"{stack}-api"


def log_group_name(stack: str) -> str:
    return f"/aws/lambda/{function_name(stack)}"


def environment(ctx: Context, db) -> dict[str, str]:
    """What the handler reads; a password (auth = "password" only) is the only secret, and is never shown."""
    cfg = ctx.config.database
    env = {"DB_HOST": db.endpoint, "DB_PORT": str(db.port), "DB_NAME": cfg.name, "DB_USER": cfg.user,
           "DB_TABLE": cfg.table, "DB_KEY_COLUMN": cfg.key_column, "DB_COLUMNS": ",".join(cfg.columns),
           "DB_AUTH": cfg.auth, "DB_TLS": cfg.tls, "DB_MAX_ROWS": str(ctx.config.api.max_rows)}
    if cfg.tls == "verify":
        env["DB_CA_FILE"] = package.CA_BUNDLE
    if cfg.auth == "password" and cfg.password is not None:  # the config check requires one with password
        env["DB_PASSWORD"] = cfg.password.value
    return env


def _settings(ctx: Context, db, role_arn: str, group_id: str) -> dict:
    fn = ctx.config.function
    return {"Runtime": RUNTIME, "Handler": HANDLER, "Role": role_arn, "Timeout": fn.timeout_s,
            "MemorySize": fn.memory_mb, "Environment": {"Variables": environment(ctx, db)},
            "VpcConfig": {"SubnetIds": list(db.subnet_ids), "SecurityGroupIds": [group_id]},
            "Description": f"rds-edge-api stack {ctx.stack}: read-only lookup in {ctx.config.database.table}"}


def _drift(current: dict, wanted: dict) -> list[str]:
    """Names of the settings that differ (never their values: the environment holds a secret)."""
    vpc = current.get("VpcConfig", {})
    found = {**current, "VpcConfig": {"SubnetIds": sorted(vpc.get("SubnetIds", [])),
                                      "SecurityGroupIds": sorted(vpc.get("SecurityGroupIds", []))},
             "Environment": {"Variables": current.get("Environment", {}).get("Variables", {})}}
    want = {**wanted, "VpcConfig": {k: sorted(v) for k, v in wanted["VpcConfig"].items()}}
    return [key for key in want if found.get(key) != want[key]]


def _find(ctx: Context) -> dict | None:
    return or_none(ctx.client("lambda").get_function, "ResourceNotFoundException",
                   FunctionName=function_name(ctx.stack))


def _wait_ready(ctx: Context, name: str) -> None:
    lambda_ = ctx.client("lambda")

    def ready() -> bool:
        config = lambda_.get_function_configuration(FunctionName=name)
        if config.get("State") == "Failed" or config.get("LastUpdateStatus") == "Failed":
            reason = config.get("StateReason") or config.get("LastUpdateStatusReason") or "no reason given"
            raise DeployError(f"Lambda function {name} failed: {reason}")
        return config.get("State") == "Active" and config.get("LastUpdateStatus", "Successful") == "Successful"

    waits.wait_until(ctx, f"Lambda function {name} to be Active", ready, timeout=READY_TIMEOUT, interval=5)


def _role_not_assumable_yet(exc: BaseException) -> bool:
    """A brand-new role takes seconds to be assumable by Lambda: the one error worth waiting out."""
    return (error_code(exc) == "InvalidParameterValueException"
            and "assume" in str(exc).lower())


def ensure(ctx: Context) -> None:
    log_groups.ensure(ctx, ctx.client("logs"), log_group_name(ctx.stack))
    lambda_, name = ctx.client("lambda"), function_name(ctx.stack)
    db = database.lookup(ctx)
    role_arn = ctx.state.get("iam_role").get("arn", UNKNOWN)
    group_id = ctx.state.get("security_groups").get("lambda_group_id", UNKNOWN)
    code = package.build(ca_bundle=ca_bundle.load(ctx.config))
    wanted = _settings(ctx, db, role_arn, group_id)
    arch = [ctx.config.function.architecture]
    found = _find(ctx)
    if found is None:
        created = ctx.change(
            "create", f"Lambda function {name} ({RUNTIME}, {arch[0]})", waits.retry_while, ctx,
            f"IAM role {role_arn.rsplit('/', 1)[-1]} to become assumable by Lambda",
            lambda: lambda_.create_function(FunctionName=name, Code={"ZipFile": code.data}, Architectures=arch,
                                            Tags=ctx.tags, Publish=False, **wanted),
            _role_not_assumable_yet, timeout=ROLE_PROPAGATION_TIMEOUT, interval=2, max_interval=10)
        if created is not None:
            _wait_ready(ctx, name)
        _ensure_concurrency(ctx, name, None)  # a plan announces it too
        if created is None:
            return
        arn = created["FunctionArn"]
    else:
        current, arn = found["Configuration"], found["Configuration"]["FunctionArn"]
        _wait_ready(ctx, name)
        if current.get("CodeSha256") != code.sha256 or current.get("Architectures", ["x86_64"]) != arch:
            ctx.change("update", f"code of {name}", lambda_.update_function_code, FunctionName=name,
                       ZipFile=code.data, Architectures=arch)
            _wait_ready(ctx, name)
        drift = _drift(current, wanted)
        if drift:
            ctx.change("update", f"configuration of {name}: {', '.join(drift)}",
                       lambda_.update_function_configuration, FunctionName=name, **wanted)
            _wait_ready(ctx, name)
        if not is_ours(found.get("Tags"), ctx.stack):
            ctx.change("update", f"tags of {name}", lambda_.tag_resource, Resource=arn, Tags=ctx.tags)
        _ensure_concurrency(ctx, name, found.get("Concurrency", {}).get("ReservedConcurrentExecutions"))
    ctx.state.put(STEP, {"name": name, "arn": arn, "code_sha256": code.sha256,
                         "log_group": log_group_name(ctx.stack)})
    ctx.outputs["Function"] = arn


def _ensure_concurrency(ctx: Context, name: str, current: int | None) -> None:
    """Reserved concurrency = [function] max_concurrency: at most that many containers, so connections."""
    wanted = ctx.config.function.max_concurrency
    if current != wanted:
        ctx.change("update", f"reserved concurrency of {name}: {wanted}",
                   ctx.client("lambda").put_function_concurrency, FunctionName=name,
                   ReservedConcurrentExecutions=wanted)


def destroy(ctx: Context) -> None:
    lambda_, name = ctx.client("lambda"), function_name(ctx.stack)
    found = _find(ctx)
    if found is not None:
        if is_ours(found.get("Tags"), ctx.stack):
            ctx.change("delete", f"Lambda function {name}", lambda_.delete_function, FunctionName=name)
        else:
            ctx.out.note(f"Leaving Lambda function {name}: not tagged as this stack's")
    log_groups.destroy(ctx, ctx.client("logs"), log_group_name(ctx.stack))
