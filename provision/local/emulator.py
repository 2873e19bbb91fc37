"""--local: the whole deploy against moto's server, in-process, with no AWS account.

The emulator starts empty, so it is seeded with what an operator already has:
a VPC with two subnets and an RDS MySQL instance named as in [database] (and,
if the config names a hosted zone, a zone standing in for it).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import tempfile
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import boto3

from ..config import Config, read_toml
from ..errors import ConfigError
from ..output import Output
from .certs import stand_in_bundle

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}
CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
RESET_TIMEOUT = 60
ACM_WAIT_SECONDS = "0"  # moto "approves" certificates at once: the demo shows the flow, not a wait


# Where the config names its secrets, and how a throwaway value for each looks (API Gateway wants 20-128
# characters for a key; an Authorization value is conventionally a bearer token).
SECRET_KEYS = {("database", "password_env"): lambda: secrets.token_urlsafe(18),
               ("access", "authorization_env"): lambda: "Bearer local-" + secrets.token_urlsafe(18),
               ("api", "key_env"): lambda: secrets.token_urlsafe(30)}


@contextmanager
def throwaway_secrets(config_path) -> Iterator[list[str]]:
    """Make a value for each secret variable the config names and the environment lacks; yield their names.

    --local never needs the operator's secrets. The values live in this
    process's environment for this run only, and are removed afterwards. A
    config that cannot be read is left to the config check to report.
    """
    try:
        raw = read_toml(config_path)
    except ConfigError:
        raw = {}
    made = []
    for (section, key), make in SECRET_KEYS.items():
        name = (raw.get(section) or {}).get(key) if isinstance(raw.get(section), dict) else None
        if isinstance(name, str) and name.isidentifier() and not os.environ.get(name):
            os.environ[name] = make()
            made.append(name)
    try:
        yield made
    finally:
        for name in made:
            os.environ.pop(name, None)


@contextmanager
def emulator() -> Iterator[str]:
    """Run moto's server on a free loopback port; point boto3 at it; restore the environment after."""
    saved = {k: os.environ.get(k) for k in (*FAKE_CREDENTIALS, *CLEARED, "AWS_ENDPOINT_URL",
                                             "MOTO_IAM_LOAD_MANAGED_POLICIES", "MOTO_ACM_VALIDATION_WAIT")}
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"  # read when moto is imported
    os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", ACM_WAIT_SECONDS)
    from moto.server import ThreadedMotoServer

    from .moto_workarounds import fill_gaps

    fill_gaps()  # SES DeleteReceiptRule (teardown), PutMetricFilter replacing (provision/local/moto_workarounds.py)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto's backends live as long as the process: start from an empty account every time.
    # A reset reloads AWS's managed IAM policies: seconds, more on a busy machine.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=RESET_TIMEOUT)
    os.environ.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
    for key in CLEARED:
        os.environ.pop(key, None)
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start(stack: ExitStack, config: Config, out: Output) -> tuple[Config, boto3.Session]:
    """The emulator for one command: seeded, with a throwaway state directory; closed with ``stack``."""
    endpoint = stack.enter_context(emulator())
    session = boto3.Session(region_name=config.stack.region)
    config = seed(session, config)
    state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rds-edge-local-")))
    stand_in_bundle(state_dir)  # downloads nothing: a throwaway CA where AWS's RDS bundle is cached
    out.note(f"AWS emulator (moto) at {endpoint}, seeded with VPC, subnets and RDS instance "
             f"{config.database.instance_id}; nothing leaves this machine")
    return dataclasses.replace(config, state_dir=state_dir), session


def seed(session: boto3.Session, config: Config) -> Config:
    """Create the operator's side (VPC, subnets, RDS MySQL, a hosted zone if named); return the config to use."""
    seed_database(session, config)
    return seed_hosted_zone(session, config)


def seed_database(session: boto3.Session, config: Config) -> None:
    """A VPC with two subnets and an RDS MySQL instance named as in [database]."""
    region = config.stack.region
    ec2 = session.client("ec2", region_name=region)
    rds = session.client("rds", region_name=region)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24",
                          AvailabilityZone=f"{region}{az}")["Subnet"]["SubnetId"]
        for i, az in enumerate("ab", start=1)
    ]
    sg = ec2.create_security_group(GroupName=f"{config.database.instance_id}-db", VpcId=vpc,
                                   Description="The operator's database security group")["GroupId"]
    rds.create_db_subnet_group(DBSubnetGroupName=f"{config.database.instance_id}-subnets",
                               DBSubnetGroupDescription="operator's subnets", SubnetIds=subnets)
    rds.create_db_instance(
        DBInstanceIdentifier=config.database.instance_id, Engine="mysql", DBInstanceClass="db.t4g.micro",
        EngineVersion="8.0.40",  # a version RDS can still create, and RDS Proxy supports (moto's default is 5.6)
        AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="emulator-only-password",
        DBName=config.database.name, DBSubnetGroupName=f"{config.database.instance_id}-subnets",
        VpcSecurityGroupIds=[sg], EnableIAMDatabaseAuthentication=True)  # so auth = "iam" deploys


def seed_hosted_zone(session: boto3.Session, config: Config) -> Config:
    """A zone cannot be created with a chosen id: a configured one is replaced by a new zone's id."""
    if config.domain.hosted_zone_id is None:
        return config
    parent = config.domain.name.split(".", 1)[1]
    zone = session.client("route53").create_hosted_zone(Name=parent, CallerReference=f"seed-{parent}")
    zone_id = zone["HostedZone"]["Id"].removeprefix("/hostedzone/")
    return dataclasses.replace(config, domain=dataclasses.replace(config.domain, hosted_zone_id=zone_id))
