"""The Lambda function, and its log group created first.

The log group is made by us, tagged and with a retention, before the function
exists: otherwise Lambda makes it at the first call, with no expiry, and
teardown leaves it behind. Code is uploaded only when the zip's hash differs
from the function's CodeSha256 (the zip carries the CA bundle, so a new bundle
is new code). Reserved concurrency caps the connections the function can open
on the database; it is set apart from the configuration (PutFunctionConcurrency).
The environment holds no secret with auth = "iam": anyone allowed
lambda:GetFunctionConfiguration can read it.

Pitfalls (AWS enforces what the emulator does not; tests/aws_rules.py models each):
- a new role is not usable at once: CreateFunction fails with "cannot be
  assumed" or, for a VPC function, "does not have permissions to call
  CreateNetworkInterface on EC2" (aws-cdk#7998) for seconds; both are waited out;
- a function idle for weeks turns Inactive (Lambda reclaims its network
  interfaces); waiting does not bring it back, an invocation does ("To
  reactivate an idle function, invoke it", Lambda guide, VPC), so the step
  invokes it once and then waits for Active;
- SubnetIds takes at most 16 subnets, and Lambda refuses subnets in zones it
  does not run in: the database's subnets are chosen from (``subnets``);
- reserved concurrency must leave the account its unreserved minimum: the
  preflight checks it before any change; max_concurrency = 0 reserves none.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import boto3

from .. import capacity, waits
from ..aws import ca_bundle, database, log_groups, package
from ..aws.arns import partition
from ..aws_errors import INVALID_PARAMETER_VALUE_EXCEPTION, RESOURCE_NOT_FOUND_EXCEPTION, RESOURCE_NOT_READY_EXCEPTION
from ..config import Config
from ..context import UNKNOWN, Context
from ..errors import DeployError, error_code, is_code, or_none
from ..registry import Account, Beyond, Names, Step
from ..tags import is_ours
from ..together import together

NAME = "function"
RUNTIME = "python3.13"
HANDLER = "handler.handler"
READY_TIMEOUT = 15 * 60  # VPC functions take minutes to become Active
ROLE_PROPAGATION_TIMEOUT = 120
MAX_SUBNETS = 16  # VpcConfig.SubnetIds: "Maximum number of 16 items" (Lambda API reference, VpcConfig)
# Zones (by zone id, the same in every account) where Lambda refuses a VPC function's subnets with
# "The provided subnets contain availability zone Lambda doesn't support" (keboola/developer-portal#81,
# us-east-1). AWS has no API that lists them: one more zone found is one more entry.
LAMBDA_UNSUPPORTED_ZONES = frozenset({"use1-az3"})
IDLE_EVENT = b'{"key": ""}'  # answered "[BadRequest]" without a query, should the function run at once


def function_name(stack: str) -> str:
    return f"{stack}-api"


def arn(ctx: Context) -> str:
    """The function's ARN (Lambda's unqualified one) as the config and the account make it, for those that
    only name the function (the API's integration), so they need not wait for it to be made."""
    return f"arn:{partition(ctx.region)}:lambda:{ctx.region}:{ctx.account_id}:function:{function_name(ctx.stack)}"


def log_group_name(stack: str) -> str:
    return f"/aws/lambda/{function_name(stack)}"


def environment(ctx: Context, db) -> dict[str, str]:
    """What the handler reads; a password (auth = "password" only) is the only secret, and is never shown.
    DB_HOST is the RDS Proxy's endpoint while the proxy step has one, else the instance's."""
    cfg = ctx.config.database
    host = ctx.state.get("proxy").get("endpoint") or db.endpoint  # the proxy's, with [database] proxy
    env = {"DB_HOST": host, "DB_PORT": str(db.port), "DB_NAME": cfg.name, "DB_USER": cfg.user,
           "DB_TABLE": cfg.table, "DB_KEY_COLUMN": cfg.key_column, "DB_COLUMNS": ",".join(cfg.columns),
           "DB_AUTH": cfg.auth, "DB_TLS": cfg.tls, "DB_MAX_ROWS": str(ctx.config.api.max_rows)}
    if cfg.tls == "verify":
        env["DB_CA_FILE"] = package.CA_BUNDLE
    if cfg.auth == "password" and cfg.password is not None:  # the config check requires one with password
        env["DB_PASSWORD"] = cfg.password.value
    return env


@dataclass(frozen=True)
class Subnets:
    """The database's subnets the function uses, and those left out with the reason."""
    used: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...]

    def text(self) -> str:
        out = "; left out: " + ", ".join(f"{s} ({why})" for s, why in self.left_out) if self.left_out else ""
        return f"{len(self.used)} of {len(self.used) + len(self.left_out)}: {', '.join(self.used) or 'none'}{out}"


def subnets(ctx: Context) -> Subnets:
    """The database's subnets in zones Lambda runs in, at most 16, spread over as many zones as they cover."""
    if "function_subnets" in ctx.lookups:
        return ctx.lookups["function_subnets"]
    db = database.lookup(ctx)
    found = ctx.client("ec2").describe_subnets(SubnetIds=list(db.subnet_ids))["Subnets"]
    zone = {s["SubnetId"]: s.get("AvailabilityZoneId") or s.get("AvailabilityZone", "") for s in found}
    left_out = [(s, f"{zone[s]}: a zone Lambda does not run in") for s in sorted(zone)
                if zone[s] in LAMBDA_UNSUPPORTED_ZONES]
    spread = _spread({s: z for s, z in zone.items() if z not in LAMBDA_UNSUPPORTED_ZONES})
    used, extra = sorted(spread[:MAX_SUBNETS]), spread[MAX_SUBNETS:]
    left_out += [(s, f"Lambda takes at most {MAX_SUBNETS} subnets") for s in sorted(extra)]
    chosen = Subnets(tuple(used), tuple(left_out))
    ctx.lookups["function_subnets"] = chosen
    return chosen


def _spread(zone_of: dict[str, str]) -> list[str]:
    """Subnets in the order that makes any first N cover the most zones: each zone's first, then second, ..."""
    per_zone: dict[str, list[str]] = {}
    for subnet in sorted(zone_of):
        per_zone.setdefault(zone_of[subnet], []).append(subnet)
    rounds = itertools.zip_longest(*(per_zone[z] for z in sorted(per_zone)))
    return [subnet for round_ in rounds for subnet in round_ if subnet is not None]


def _settings(ctx: Context, db, role_arn: str, group_id: str, chosen: Subnets) -> dict:
    fn = ctx.config.function
    if not chosen.used:
        raise DeployError(f"database.instance_id: none of the database's subnets can hold the function "
                          f"({chosen.text()}); add a subnet in another zone to its DB subnet group")
    return {"Runtime": RUNTIME, "Handler": HANDLER, "Role": role_arn, "Timeout": fn.timeout_s,
            "MemorySize": fn.memory_mb, "Environment": {"Variables": environment(ctx, db)},
            "VpcConfig": {"SubnetIds": list(chosen.used), "SecurityGroupIds": [group_id]},
            "Description": f"rds-edge-api stack {ctx.stack}: read-only lookup in {ctx.config.database.table}"}


def _drift(current: dict, wanted: dict) -> list[str]:
    """Names of the settings that differ (never their values: the environment holds a secret)."""
    found = {**current, "VpcConfig": {"SubnetIds": sorted(current.get("VpcConfig", {}).get("SubnetIds", [])),
                                      "SecurityGroupIds": sorted(current.get("VpcConfig", {}).get("SecurityGroupIds", []))},
             "Environment": {"Variables": current.get("Environment", {}).get("Variables", {})}}
    want = {**wanted, "VpcConfig": {k: sorted(v) for k, v in wanted["VpcConfig"].items()}}
    return [key for key in want if found.get(key) != want[key]]


def _find(ctx: Context) -> dict | None:
    return or_none(ctx.client("lambda").get_function, RESOURCE_NOT_FOUND_EXCEPTION,
                   FunctionName=function_name(ctx.stack))


def _ready(name: str, config: dict) -> bool:
    """Active with its last update done; a Failed function, or one Inactive after its reactivation, stops the run."""
    if config.get("State") == "Failed" or config.get("LastUpdateStatus") == "Failed":
        reason = config.get("StateReason") or config.get("LastUpdateStatusReason") or "no reason given"
        raise DeployError(f"Lambda function {name} failed: {reason}; fix that, then run deploy again")
    if config.get("State") == "Inactive":  # reactivated already: Lambda could not restore it
        raise DeployError(f"Lambda function {name} is Inactive again: "
                          f"{config.get('StateReason') or 'no reason given'}; fix that, then run again")
    return config.get("State") == "Active" and config.get("LastUpdateStatus", "Successful") == "Successful"


def _wait_ready(ctx: Context, name: str) -> None:
    """Until Active with its last update done; a plan changed nothing, so has nothing to wait for."""
    if ctx.planning:
        return
    lambda_ = ctx.client("lambda")
    waits.wait_until(ctx, f"Lambda function {name} to be Active",
                     lambda: _ready(name, lambda_.get_function_configuration(FunctionName=name)),
                     timeout=READY_TIMEOUT, interval=5)


def _reactivate(ctx: Context, name: str, config: dict) -> None:
    """An Inactive function comes back only when invoked (that invocation fails); then it is waited for."""
    reason = config.get("StateReasonCode") or config.get("StateReason") or "Idle"
    ctx.change("update", f"reactivate {name} (Inactive: {reason}; one invocation, then a wait for Active)",
               _invoke_once, ctx.client("lambda"), name)


def _invoke_once(lambda_, name: str) -> None:
    try:
        lambda_.invoke(FunctionName=name, Payload=IDLE_EVENT)
    except Exception as exc:
        if not is_code(exc, RESOURCE_NOT_READY_EXCEPTION):  # "The function is inactive ...": expected
            raise


def _role_not_ready_yet(exc: BaseException) -> bool:
    """A brand-new role takes seconds to be usable by Lambda: "cannot be assumed", or for a VPC
    function "does not have permissions to call CreateNetworkInterface on EC2" (aws-cdk#7998,
    serverless#2780), though the role has them: the errors worth waiting out."""
    message = str(exc).lower()
    return (error_code(exc) == INVALID_PARAMETER_VALUE_EXCEPTION
            and ("assume" in message or "createnetworkinterface" in message))


@dataclass(frozen=True)
class Seen:
    """The function's log group, the function (GetFunction's answer; None: none), the database and the
    subnets chosen from its subnet group."""
    log_group: log_groups.Seen
    function: dict | None
    database: database.Database
    subnets: Subnets


def observe(ctx: Context) -> Seen:
    """The log group, the function and the database's subnets, read at once."""
    log_group, found, chosen = together(
        ctx, lambda c: log_groups.observe(c, c.client("logs"), log_group_name(c.stack)), _find, subnets)
    return Seen(log_group, found, database.lookup(ctx), chosen)


def ensure(ctx: Context, seen: Seen | None = None) -> None:
    seen = seen or observe(ctx)
    log_groups.ensure(ctx, ctx.client("logs"), log_group_name(ctx.stack), seen=seen.log_group)  # before the function
    lambda_, name = ctx.client("lambda"), function_name(ctx.stack)
    db = seen.database
    ctx.outputs["Capacity"] = capacity.summary(ctx.config, db.instance_class)  # deploy --plan and outputs say it
    role_arn = ctx.state.get("iam_role").get("arn", UNKNOWN)
    group_id = ctx.state.get("security_groups").get("lambda_group_id", UNKNOWN)
    code = package.build(ca_bundle=ca_bundle.load(ctx.config))
    wanted = _settings(ctx, db, role_arn, group_id, seen.subnets)
    arch = [ctx.config.function.architecture]
    found = seen.function
    if found is None:
        created = ctx.change(
            "create", f"Lambda function {name} ({RUNTIME}, {arch[0]})", waits.retry_while, ctx,
            f"IAM role {role_arn.rsplit('/', 1)[-1]} to become usable by Lambda",
            lambda: lambda_.create_function(FunctionName=name, Code={"ZipFile": code.data}, Architectures=arch,
                                            Tags=ctx.tags, Publish=False, **wanted),
            _role_not_ready_yet, timeout=ROLE_PROPAGATION_TIMEOUT, interval=2, max_interval=10,
            find=lambda: (found := _find(ctx)) and found["Configuration"])
        if created is not None:
            _wait_ready(ctx, name)
        _ensure_concurrency(ctx, name, None)  # a plan announces it too
        if created is None:
            return
        arn = created["FunctionArn"]
    else:
        current, arn = found["Configuration"], found["Configuration"]["FunctionArn"]
        if current.get("State") == "Inactive":
            _reactivate(ctx, name, current)
            _wait_ready(ctx, name)
        elif not ctx.planning and not _ready(name, current):  # GetFunction said it: no second look when ready
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
    ctx.state.put(NAME, {"name": name, "arn": arn, "code_sha256": code.sha256,
                         "log_group": log_group_name(ctx.stack)})
    ctx.outputs["Function"] = arn


def _ensure_concurrency(ctx: Context, name: str, current: int | None) -> None:
    """Reserved concurrency = [function] max_concurrency: at most that many containers, so connections;
    0 reserves none (the function then shares the account's unreserved pool)."""
    wanted = ctx.config.function.max_concurrency or None
    if current == wanted:
        return
    if wanted is None:
        ctx.change("update", f"reserved concurrency of {name}: none (max_concurrency = 0)",
                   ctx.client("lambda").delete_function_concurrency, FunctionName=name)
        return
    ctx.change("update", f"reserved concurrency of {name}: {wanted}",
               ctx.client("lambda").put_function_concurrency, FunctionName=name,
               ReservedConcurrentExecutions=wanted)


def reserved_concurrency(ctx: Context) -> int | None:
    """The function's reserved concurrency now; None when it has none or does not exist."""
    found = or_none(ctx.client("lambda").get_function_concurrency, RESOURCE_NOT_FOUND_EXCEPTION,
                    FunctionName=function_name(ctx.stack))
    return (found or {}).get("ReservedConcurrentExecutions")


def destroy(ctx: Context) -> None:
    """The function, then its log group: a group deleted while the function lives would be made again,
    untagged and never expiring, by its next call. Both are looked at at once."""
    logs, name = ctx.client("logs"), log_group_name(ctx.stack)
    _, log_group = together(ctx, _destroy_function, lambda c: log_groups.observe(c, logs, name))
    log_groups.destroy(ctx, logs, name, seen=log_group)


def _destroy_function(ctx: Context) -> None:
    lambda_, name = ctx.client("lambda"), function_name(ctx.stack)
    found = _find(ctx)
    if found is None:
        return
    if is_ours(found.get("Tags"), ctx.stack):
        ctx.change("delete", f"Lambda function {name}", lambda_.delete_function, FunctionName=name)
    else:
        ctx.out.note(f"Leaving Lambda function {name}: not tagged as this stack's")


# --- the step, declared (provision/registry.py) ---------------------------------


def inventory(config: Config) -> list[str]:
    """The stack's functions (by tag), read back with plain boto3 in every region the stack uses."""
    found = []
    for region in config.regions:
        lambda_ = boto3.client("lambda", region_name=region)
        found += [f"function {fn['FunctionName']}" for fn in lambda_.list_functions()["Functions"]
                  if is_ours(lambda_.list_tags(Resource=fn["FunctionArn"])["Tags"], config.stack.name)]
    return found


def _function_arns(names: Names, action: str) -> list[str]:
    return [names.arn("lambda", names.config.stack.region, f"function:{function_name(names.config.stack.name)}")]


def _log_group_arns(names: Names, action: str) -> list[str]:
    return log_groups.arns(names, action, names.config.stack.region, log_group_name(names.config.stack.name))


def drift(session: boto3.Session, config: Config) -> None:
    """Behind the stack's back: the stack tag removed from the function and from its log group."""
    stack, region = config.stack.name, config.stack.region
    lambda_, logs = session.client("lambda", region_name=region), session.client("logs", region_name=region)
    arn = lambda_.get_function(FunctionName=function_name(stack))["Configuration"]["FunctionArn"]
    lambda_.untag_resource(Resource=arn, TagKeys=["stack"])
    group = log_groups.find(logs, log_group_name(stack))
    assert group is not None, "drift runs after a deploy"
    logs.untag_resource(resourceArn=log_groups.group_arn(group), tagKeys=["stack"])


LAMBDA_VPC = ("Lambda developer guide, 'Giving Lambda functions access to a VPC' (configuration-vpc): to configure a "
              "function to connect to a VPC, the user needs ec2:DescribeSecurityGroups, ec2:DescribeSubnets, "
              "ec2:DescribeVpcs; Lambda checks them on CreateFunction and UpdateFunctionConfiguration")
BEYOND = (
    Beyond("lambda", "GetFunction", ("lambda:ListTags",),
           "Lambda API reference, GetFunction: 'returns tag data only if you have explicit allow permissions for "
           "lambda:ListTags'; the function step decides ownership from those tags"),
    Beyond("lambda", "CreateFunction", ("lambda:TagResource", "iam:PassRole", "ec2:DescribeSecurityGroups",
                                        "ec2:DescribeSubnets", "ec2:DescribeVpcs"),
           "Service Authorization Reference, Lambda: CreateFunction depends on iam:PassRole; Lambda developer "
           "guide, 'Using tags on Lambda functions': tagging on create needs lambda:TagResource; " + LAMBDA_VPC),
    Beyond("lambda", "UpdateFunctionConfiguration", ("iam:PassRole", "ec2:DescribeSecurityGroups",
                                                     "ec2:DescribeSubnets", "ec2:DescribeVpcs"),
           "Lambda API reference, UpdateFunctionConfiguration passes Role (iam:PassRole); " + LAMBDA_VPC),
    log_groups.LOG_GROUP_TAGGED,
)


def leaves(config: Config, account: Account) -> list[str]:
    return [f"function {function_name(config.stack.name)}", f"log group {log_group_name(config.stack.name)}"]


STEP = Step(NAME, "Lambda function", ensure, destroy, needs=("iam_role", "security_groups", "proxy"),
            loose=("proxy",), observe=observe, sees_needs=False,
            inventory=(inventory, log_groups.inventory), leaves=leaves, arns={"lambda": _function_arns, "logs": _log_group_arns},
            creates=("CreateLogGroup", "CreateFunction"),
            removes=("DeleteFunction",), drift=(drift,), beyond=BEYOND)
