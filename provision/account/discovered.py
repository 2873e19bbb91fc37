"""The config a deployed stack implies, read back from the account: for ``teardown --stack NAME [--region R]``
when the config file is lost.

The stack's region is where its regional half is (its function, API and
security group, by their tags: ``stacks.homes``), never taken on trust from
``--region``: a region where the stack has none is refused before any change
(``WrongRegion``), so the global half of a live stack is never torn down from
the wrong region. What was read is saved beside the state file
(``<stack>.teardown.json``) before the teardown starts, and read back by the
same command after an interruption, when what it was read from may be gone;
the teardown removes it once done.

Teardown needs from a config only what names the stack's resources and where
they are: the stack's name and region, its domain (and how it is validated),
the hosted zone its records are in, the SES region and rule set its mail rule
is in, and the database whose security group carries its rule. Each is read
from what the stack made:
- domain and validation: its certificate (tagged; the validation tags it was
  requested with), else its distribution's alias;
- hosted zone: the longest Route 53 zone the domain is in (paginated);
- mail region: where its mail bucket is; rule set: the active one in that
  region, if it holds the stack's rule and is not the shared one;
- database: the RDS instance whose security group lets the stack's group in.
What teardown never reads (table, columns, allowed ranges, secrets) is filled
with values that say so; the secret names no variable that is ever read.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..aws_errors import ACCESS_DENIED, HTTP_403, HTTP_404, NO_SUCH_BUCKET
from ..config import AccessConfig, Config, DatabaseConfig, DomainConfig, Secret, StackConfig, acm_mail_domain
from ..context import EDGE_REGION
from ..errors import DeployError, WrongRegion, or_none
from ..steps import mail, security_groups
from ..steps.certificate import VALIDATION_DOMAIN_TAG, VALIDATION_TAG
from ..tags import as_dict, is_ours
from . import stacks

NOT_READ = "not-read-by-teardown"


def progress_path(state_dir: Path, stack: str) -> Path:
    return state_dir / f"{stack}.teardown.json"


def for_teardown(session, stack: str, region: str | None, state_dir: Path) -> tuple[Config, str]:
    """(the config, how it was found): an interrupted teardown's saved one, else read from the account in
    the stack's own region; WrongRegion when ``region`` holds none of it but another region does."""
    saved = _saved(progress_path(state_dir, stack), state_dir)
    if saved is not None and region in (None, saved.stack.region):
        return saved, f"read from {progress_path(state_dir, stack)} (saved by the interrupted teardown)"
    found = stacks.homes(session, stack, [region]) if region else []
    if not found:
        found = stacks.homes(session, stack)
        if region and found:
            raise WrongRegion(f"--region {region}: stack {stack} has no function, API or security group there; "
                              f"it is in {', '.join(found)}: run again with --region {found[0]}, or without --region")
        if len(found) > 1:
            raise WrongRegion(f"stack {stack} has resources in {', '.join(found)}: name one with --region")
    home = found[0] if found else (region or EDGE_REGION)
    config = config_for(session, stack, home, state_dir)
    _save(progress_path(state_dir, stack), config)
    where = f"its regional half is in {home}" if found else f"it has no regional half left (using {home})"
    return config, f"read from the account ({where})"


def _save(path: Path, config: Config) -> None:
    domain = config.domain
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "stack": config.stack.name, "region": config.stack.region, "database": config.database.instance_id,
        "domain": domain.name, "validation": domain.validation, "validation_domain": domain.validation_domain,
        "hosted_zone_id": domain.hosted_zone_id, "mail_region": domain.mail_region,
        "mail_rule_set": domain.mail_rule_set}, indent=2) + "\n", encoding="utf-8")


def _saved(path: Path, state_dir: Path) -> Config | None:
    """The config an interrupted ``teardown --stack`` saved, or None (none, or not one this tool wrote)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return _config(state_dir, data["stack"], data["region"], data["database"], DomainConfig(
            name=data["domain"], validation=data["validation"], hosted_zone_id=data["hosted_zone_id"],
            mail_region=data["mail_region"], validation_domain=data["validation_domain"],
            mail_rule_set=data["mail_rule_set"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def done(state_dir: Path, stack: str) -> None:
    """The teardown finished: its saved progress goes."""
    progress_path(state_dir, stack).unlink(missing_ok=True)


def _config(state_dir: Path, stack: str, region: str, database: str, domain: DomainConfig) -> Config:
    return Config(
        path=state_dir / f"{stack}.discovered.toml",
        stack=StackConfig(name=stack, region=region),
        database=DatabaseConfig(instance_id=database, name=NOT_READ, user=NOT_READ, table=NOT_READ,
                                key_column=NOT_READ),
        access=AccessConfig(allowed_cidrs=(), authorization=Secret(NOT_READ.upper().replace("-", "_"))),
        domain=domain, state_dir=state_dir)


def config_for(session, stack: str, region: str, state_dir: Path) -> Config:
    """A Config naming the stack's resources as the account holds them; DeployError if none is found."""
    domain, validation, validation_domain = _domain(session, stack)
    account = session.client("sts", region_name=region).get_caller_identity()["Account"]
    mail_region = _bucket_region(session, f"{stack.lower()}-mail-{account}") or EDGE_REGION
    return _config(state_dir, stack, region, _database(session, stack, region) or NOT_READ,
                   DomainConfig(name=domain, validation=validation, hosted_zone_id=_zone(session, domain),
                                mail_region=mail_region, validation_domain=validation_domain,
                                mail_rule_set=_own_rule_set(session, stack, mail_region)))


def _domain(session, stack: str) -> tuple[str, str, str]:
    """(domain, validation, validation_domain) from the stack's certificate, else its distribution's alias."""
    acm = session.client("acm", region_name=EDGE_REGION)
    for page in acm.get_paginator("list_certificates").paginate():
        for summary in page["CertificateSummaryList"]:
            tags = as_dict(acm.list_tags_for_certificate(CertificateArn=summary["CertificateArn"]).get("Tags"))
            if is_ours(tags, stack):
                domain = summary["DomainName"]
                return (domain, tags.get(VALIDATION_TAG, "dns"),
                        tags.get(VALIDATION_DOMAIN_TAG) or acm_mail_domain(domain))
    front = session.client("cloudfront")
    for page in front.get_paginator("list_distributions").paginate():
        for dist in page["DistributionList"].get("Items") or []:
            tags = front.list_tags_for_resource(Resource=dist["ARN"])["Tags"].get("Items")
            aliases = dist.get("Aliases", {}).get("Items") or []
            if is_ours(tags, stack) and aliases:
                return aliases[0], "dns", aliases[0]
    raise DeployError(f"found no certificate or distribution of stack {stack}, so not its domain: run teardown "
                      "with its config (--config), or see what is left with: rds-edge-api list")


def _zone(session, domain: str) -> str | None:
    """The longest public hosted zone the domain is in."""
    route53 = session.client("route53")
    best = None
    for page in route53.get_paginator("list_hosted_zones").paginate():
        for zone in page["HostedZones"]:
            name = zone["Name"].rstrip(".")
            if zone.get("Config", {}).get("PrivateZone"):
                continue
            if (domain == name or domain.endswith("." + name)) and (best is None or len(name) > len(best[0])):
                best = (name, zone["Id"].removeprefix("/hostedzone/"))
    return best[1] if best else None


def _bucket_region(session, bucket: str) -> str | None:
    s3 = session.client("s3", region_name=EDGE_REGION)
    found = or_none(s3.head_bucket, (HTTP_404, NO_SUCH_BUCKET, HTTP_403, ACCESS_DENIED), Bucket=bucket)
    if not found:
        return None
    return found.get("BucketRegion") or found["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")


def _own_rule_set(session, stack: str, region: str) -> str:
    """The operator's own active set, if the stack's rule is in it (``[domain] mail_rule_set``), else ""."""
    active = session.client("ses", region_name=region).describe_active_receipt_rule_set()
    name = active.get("Metadata", {}).get("Name")
    ours = any(rule["Name"] == f"{stack}-acm-approval" for rule in active.get("Rules", []))
    return name if ours and name not in (mail.SHARED_RULE_SET, f"{stack}-acm") else ""


def _database(session, stack: str, region: str) -> str | None:
    """The RDS instance whose security group lets the stack's Lambda group in (paginated)."""
    ec2, rds = session.client("ec2", region_name=region), session.client("rds", region_name=region)
    ours = ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [security_groups.group_name(stack)]},
        {"Name": "tag:stack", "Values": [stack]}])["SecurityGroups"]
    description = security_groups.rule_description(stack)
    groups = set()
    for page in ec2.get_paginator("describe_security_groups").paginate():
        for group in page["SecurityGroups"]:
            for permission in group.get("IpPermissions", []):
                for pair in permission.get("UserIdGroupPairs", []):
                    if pair.get("GroupId") in {g["GroupId"] for g in ours} or pair.get("Description") == description:
                        groups.add(group["GroupId"])
    for page in rds.get_paginator("describe_db_instances").paginate():
        for instance in page["DBInstances"]:
            if groups & {g["VpcSecurityGroupId"] for g in instance.get("VpcSecurityGroups", [])}:
                return instance["DBInstanceIdentifier"]
    return None
