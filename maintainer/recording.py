"""Record every AWS call the commands make, in moto, into ``provision/iam/aws_calls.json``.

``rds-edge-api policy`` builds the operator's IAM policy from that catalog, so
the policy follows the code instead of a hand-kept list. Re-record after
adding or changing an AWS call (``tests/test_policy.py`` fails until then):

    scripts/record-aws-calls

Each config variant (validation dns / email, with / without a hosted zone)
runs every command's paths in a fresh moto account (``_scenario``): deploy,
a re-deploy, outputs, logs, both rotations with their finish, deploys after
a config change and a code upgrade, a deploy repairing changes made behind
its back (each step's ``drift``, from its STEP), and teardown. A botocore
``before-call`` hook on the session the commands use records (service,
operation); the seeding of the operator's side (VPC, RDS, zone) and the
drift go through another session and are not recorded. So are, last, deploys
in the other validation mode: the variant's deploy, then its teardown, each
meet what the other mode made (the mail bucket, rule and identity, or the
DNS-validated certificate) and remove it, as after an operator changes
``[domain] validation``: those calls are the variant's too.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import boto3
from rich.console import Console

from maintainer.every_step import SWITCHES
from provision.config import load
from provision.context import EDGE_REGION
from provision.iam.policy import CATALOG, VARIANTS, variant
from provision.output import Output
from provision.registry import drifts
from provision.steps import STEPS, waf_logging
from provision.steps.mail import PREFIX

STACK = "rec"
REGION = "eu-west-1"
MAIL_REGION = "us-west-2"
SECRETS = {"RECORD_DB_PASSWORD": "recording-only-password", "RECORD_AUTHORIZATION": "Bearer recording-old",
           "RECORD_API_KEY": "recording-api-key-value-0001"}
# Calls the code makes on a path no run here reaches, each with why; test_policy's source scan keeps this honest.
UNREACHED: tuple[dict[str, Any], ...] = (
    {"service": "iam", "operation": "ListRoleTags", "commands": ["teardown"],
     "why": "only when GetRole answers without tags (older IAM responses); moto always includes them"},
    {"service": "rds", "operation": "DescribeDBClusters", "commands": ["deploy", "outputs", "rotate", "teardown"],
     "why": "only for an Aurora instance (its cluster holds IAM auth and the resource id); the recording seeds "
            "RDS MySQL"},
    {"service": "iam", "operation": "SimulatePrincipalPolicy", "commands": ["deploy", "policy"],
     "why": "deploy checks the caller first only with [stack] check_permissions; moto 5.2.5 has no "
            "SimulatePrincipalPolicy (tests/test_policy_check.py stands in for it)"},
    {"service": "lambda", "operation": "Invoke", "commands": ["deploy"],
     "why": "only for a function that turned Inactive after weeks without a call (one invocation reactivates "
            "it); moto's functions are never Inactive (tests/test_function_on_aws.py stands in for it)"},
    {"service": "dynamodb", "operation": "GetItem", "commands": ["deploy", "list", "rotate", "teardown"],
     "why": "the lease's holder is read only when another run holds it (and by list); the recording runs alone"},
    {"service": "dynamodb", "operation": "UpdateItem", "commands": ["deploy", "rotate", "teardown"],
     "why": "the lease is renewed every third of [lease] expiry_s; a recorded run ends sooner"},
    {"service": "tag", "operation": "GetResources", "commands": ["list", "outputs"],
     "why": "list and outputs --stack find the account's stacks by tag; the recording runs the config's commands"},
    {"service": "ec2", "operation": "DescribeRegions", "commands": ["list"],
     "why": "list looks in every region; the recording runs the config's commands"},
    {"service": "route53", "operation": "ListHostedZones", "commands": ["teardown"],
     "why": "teardown --stack without a config finds the domain's zone; the recording runs from a config"},
    {"service": "ses", "operation": "DescribeReceiptRule", "commands": ["deploy"],
     "why": "looked at only after CreateReceiptRule's answer was lost (tests/test_lost_answers.py)"},
    {"service": "apigateway", "operation": "GetRestApi", "commands": ["deploy", "rotate", "teardown"],
     "why": "looked at only after an answer was lost (tests/test_lost_answers.py)"},
    {"service": "apigateway", "operation": "GetUsagePlan", "commands": ["deploy", "rotate", "teardown"],
     "why": "looked at only after an answer was lost (tests/test_lost_answers.py)"},
    {"service": "apigateway", "operation": "GetUsagePlanKey", "commands": ["deploy", "rotate", "teardown"],
     "why": "looked at only after an answer was lost (tests/test_lost_answers.py)"},
    {"service": "lambda", "operation": "GetFunctionConcurrency", "commands": ["deploy"],
     "why": "the preflight reads the function's reservation only once GetAccountSettings answers; moto 5.2.5 has "
            "no GetAccountSettings (tests/test_preflight.py stands in for it)"},
    {"service": "pricing", "operation": "GetProducts", "commands": ["cost", "deploy"],
     "why": "the estimate (cost, deploy --plan) asks AWS's price list; moto 5.2.5 has no pricing service "
            "(tests/test_cost.py answers in the Price List API's format)"},
)


def _toml(validation: str, zone_id: str | None, changed: bool, stage: str = "v1") -> str:
    """The variant's config; ``changed`` switches every step on (``every_step.SWITCHES``: auth = "iam" adds
    the role's inline rds-db:connect policy, the proxy the RDS Proxy step's calls) and alters every setting a
    re-deploy updates in place."""
    domain = {"name": "api.example.com", "validation": validation, "mail_region": MAIL_REGION,
              **({"hosted_zone_id": zone_id} if zone_id else {})}
    sections: dict[str, dict[str, Any]] = {
        "stack": {"name": STACK, "region": REGION},
        "database": {"instance_id": "orders-db", "name": "shop", "user": "api_reader",
                     "table": "orders", "key_column": "customer_id",
                     **({"columns": ["customer_id"]} if changed else {"password_env": "RECORD_DB_PASSWORD"})},
        "access": {"allowed_cidrs": ["198.51.100.0/24"] if changed else ["203.0.113.0/24", "2001:db8::/32"],
                   "authorization_env": "RECORD_AUTHORIZATION"},
        "domain": domain,
        # cache_seconds: the changed config makes the cache policy, the moved one updates it, teardown removes it
        "api": {"key_env": "RECORD_API_KEY", "path": "orders", "stage": stage, "throttle_rate": 3, "max_rows": 50,
                **({} if stage == "v1" else {"cache_seconds": 120})} if changed else {},
        # max_concurrency 0 removes the first deploy's reservation (DeleteFunctionConcurrency)
        "function": {"memory_mb": 512, "max_concurrency": 0} if changed else {},
        "alerts": {"email": "ops-new@example.com" if changed else "ops@example.com"},
    }
    for name, values in (SWITCHES if changed else {}).items():  # what the variant sets itself wins
        sections[name] = {**values, **sections.get(name, {})}
    return "\n".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
                     for name, values in sections.items())


def configs(validation: str, zone_id: str | None) -> dict[str, str]:
    """The variant's configs, by the suffix of their file's name: as first deployed, changed, changed with
    the stage moved, and in the other validation mode (tests/test_recording_configs.py: between them, every
    step makes something)."""
    return {"": _toml(validation, zone_id, changed=False), "-changed": _toml(validation, zone_id, changed=True),
            "-moved": _toml(validation, zone_id, changed=True, stage="v2"),
            "-other-mode": _toml("dns" if validation == "email" else "email", zone_id, changed=False)}


class Recorder:
    """A botocore before-call hook: the (service, operation) of every call, per command."""

    def __init__(self) -> None:
        self.calls: dict[str, set[tuple[str, str]]] = {}
        self.command = ""

    def __call__(self, model, **_) -> None:
        self.calls.setdefault(self.command, set()).add((model.service_model.service_name, model.name))


@contextmanager
def _moto() -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(AWS_ACCESS_KEY_ID="recording", AWS_SECRET_ACCESS_KEY="recording", AWS_DEFAULT_REGION=REGION,
                      **SECRETS)
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(key, None)
    from moto import mock_aws

    from provision.local.moto_workarounds import bucket_policy_without_tls_deny, fill_gaps

    fill_gaps()  # SES DeleteReceiptRule (teardown), PutMetricFilter replacing (moto_workarounds.py)
    try:
        with mock_aws(config={"lambda": {"use_docker": False}, "iam": {"load_aws_managed_policies": True}}), \
                bucket_policy_without_tls_deny():
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _email_arrives(recorder_session: boto3.Session) -> None:
    """Email validation: the certificate stays pending until the toolkit first looks for ACM's mail in the
    bucket; a mail is there by then (put through another session), so the mail-reading calls are recorded."""
    import moto.settings

    seeder = boto3.Session(region_name=MAIL_REGION)

    def deliver(params, **_):
        if moto.settings.ACM_VALIDATION_WAIT < 0:
            return
        seeder.client("s3", region_name=MAIL_REGION).put_object(
            Bucket=params["Bucket"], Key=f"{params.get('Prefix', '')}recorded-mail", Body=b"Subject: hello\r\n\r\nhi")
        moto.settings.ACM_VALIDATION_WAIT = -1

    recorder_session.events.register("provide-client-params.s3.ListObjectsV2", deliver)


def _mail_kept(seeder: boto3.Session) -> None:
    """The email mode's bucket holds ACM's mail, as on AWS after a validation or a renewal (put through
    another session): removing the bucket then removes its mail first."""
    s3 = seeder.client("s3", region_name=MAIL_REGION)
    for bucket in s3.list_buckets()["Buckets"]:
        if "-mail-" in bucket["Name"]:
            s3.put_object(Bucket=bucket["Name"], Key=f"{PREFIX}kept", Body=b"Subject: kept\r\n\r\nkept")


def record_variant(validation: str, zone: bool, workdir: Path) -> dict[str, set[tuple[str, str]]]:
    """Every command's calls for one config variant, in a fresh moto account."""
    import moto.settings

    from provision import cli
    from provision.aws import package
    from provision.local.certs import stand_in_bundle
    from provision.local.emulator import seed_database

    with _moto():
        acm_wait, build = moto.settings.ACM_VALIDATION_WAIT, package.build
        moto.settings.ACM_VALIDATION_WAIT = 0
        try:
            seeder = boto3.Session(region_name=REGION)
            zone_id = None
            if zone:
                zone_id = seeder.client("route53").create_hosted_zone(
                    Name="example.com", CallerReference="recording")["HostedZone"]["Id"].removeprefix("/hostedzone/")
            paths = {}
            for role, text in configs(validation, zone_id).items():
                paths[role] = workdir / f"{variant(validation, zone_id)}{role}.toml"
                paths[role].write_text(text)
            path, changed, moved, other = paths[""], paths["-changed"], paths["-moved"], paths["-other-mode"]
            seed_database(seeder, load(path))
            (workdir / ".state").mkdir(exist_ok=True)
            stand_in_bundle(workdir / ".state")  # deploy downloads nothing: a throwaway CA as the cached bundle
            recorder = Recorder()
            if validation == "email":
                moto.settings.ACM_VALIDATION_WAIT = 10 ** 6  # pending until the toolkit looks for the mail
            switched_from_the_other_mode = [
                lambda: _run(cli, ["deploy"], other, boto3.Session(), f"the other mode's deploy ({validation})"),
                lambda: _mail_kept(seeder), ("deploy", ["deploy"], path),
                lambda: _run(cli, ["deploy"], other, boto3.Session(), "again"), lambda: _mail_kept(seeder),
                ("teardown", ["teardown", "--yes"], path)]
            for item in [*_scenario((path, changed, moved), seeder, workdir), *switched_from_the_other_mode]:
                if callable(item):
                    item()
                    continue
                recorder.command, argv, config = item
                session = boto3.Session()  # one per run, as in real use: each run hooks its own clients
                session.events.register("before-call", recorder)
                if validation == "email":
                    _email_arrives(session)
                _run(cli, argv, config, session, f"{' '.join(argv)} ({validation}, zone={zone})")
            return recorder.calls
        finally:
            moto.settings.ACM_VALIDATION_WAIT, package.build = acm_wait, build


def _run(cli, argv: list[str], config: Path, session: boto3.Session, what: str) -> None:
    """One command through the console script's entry point; its output shown only when it fails."""
    printed = io.StringIO()
    code = cli.main([*argv, "--config", str(config)], session=session, out=Output(Console(file=printed, width=200)))
    if code != 0:
        raise RuntimeError(f"{what} failed while recording:\n{printed.getvalue()}")


def _scenario(configs: tuple[Path, Path, Path], seeder: boto3.Session, workdir: Path) -> list:
    """In order: (command recorded as, argv, config) to run, or something done behind the toolkit's back."""
    base, changed, moved = configs
    return [
        ("deploy", ["deploy"], base), ("deploy", ["deploy"], base), ("outputs", ["outputs", "--json"], base),
        lambda: _waf_log_group(seeder), ("logs", ["logs", "--since", "1h"], base),
        ("rotate", ["rotate", "api-key"], base), ("rotate", ["rotate", "api-key", "--finish"], base),
        lambda: os.environ.update(RECORD_AUTHORIZATION="Bearer recording-new"),
        ("rotate", ["rotate", "authorization"], base), ("rotate", ["rotate", "authorization", "--finish"], base),
        lambda: _new_function_code(workdir),  # as after an upgrade of the toolkit, with a changed config too
        ("deploy", ["deploy"], changed), ("deploy", ["deploy"], moved),
        lambda: _drift(seeder, moved), ("deploy", ["deploy"], moved),
        ("teardown", ["teardown", "--yes"], base),
    ]


def _drift(seeder: boto3.Session, config_path: Path) -> None:
    """Changes made behind the toolkit's back (through the unrecorded session), so that the next deploy
    records the calls that repair them, and teardown those that cope with what deploy leaves: every step's
    own (its STEP's drift, provision/registry.py)."""
    config = load(config_path)
    for change in drifts(STEPS):
        change(seeder, config)


def _new_function_code(workdir: Path) -> None:
    """From now on the function's zip differs, as after an upgrade of the toolkit: deploy uploads the code."""
    from provision.aws import package

    source = workdir / "lambda-upgraded"
    if not source.exists():
        shutil.copytree(package.SOURCE, source)
        with (source / "handler.py").open("a") as handler:  # only the listed files ship
            handler.write("# upgraded (recording)\n")
    build = package.build
    package.build = lambda source=source, ca_bundle=None: build(source, ca_bundle)


def _waf_log_group(session: boto3.Session) -> None:
    """WAF's log group, unless deploy made it (WAF logging is optional), so that logs reads both groups."""
    logs, name = session.client("logs", region_name=EDGE_REGION), waf_logging.log_group_name(STACK)
    if not logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]:
        logs.create_log_group(logGroupName=name)


def record_all() -> dict:
    """The catalog: each (service, operation) with the commands and config variants that call it."""
    with tempfile.TemporaryDirectory(prefix="rds-edge-record-") as tmp:
        return catalog({variant(validation, "zone" if zone else None): record_variant(validation, zone, Path(tmp))
                        for validation, zone in VARIANTS})


def catalog(recordings: dict[str, dict[str, set[tuple[str, str]]]]) -> dict:
    """The catalog from each variant's recording (variant name -> record_variant's answer), plus UNREACHED."""
    found: dict[tuple[str, str], dict[str, set[str]]] = {}
    for name, recorded in recordings.items():
        for command, calls in recorded.items():
            for call in calls:
                entry = found.setdefault(call, {"commands": set(), "variants": set()})
                entry["commands"].add(command)
                entry["variants"].add(name)
    everywhere = sorted(variant(v, "zone" if z else None) for v, z in VARIANTS)
    for unreached in UNREACHED:
        found.setdefault((unreached["service"], unreached["operation"]), {"commands": set(unreached["commands"]),
                                                                "variants": set(everywhere)})
    return {"generated_by": "scripts/record-aws-calls (maintainer/recording.py); do not edit by hand",
            "calls": [{"service": service, "operation": operation, "commands": sorted(entry["commands"]),
                       "variants": sorted(entry["variants"])}
                      for (service, operation), entry in sorted(found.items())]}


def main() -> int:
    catalog = record_all()
    CATALOG.write_text(json.dumps(catalog, indent=1) + "\n", encoding="utf-8")
    print(f"recorded {len(catalog['calls'])} distinct AWS calls into {CATALOG}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
