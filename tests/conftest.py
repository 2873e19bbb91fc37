"""moto for AWS (never the network), fake credentials, secrets in the environment."""
import dataclasses
import os
from contextlib import ExitStack

# moto reads these when it is imported. No EC2 AMIs: the toolkit starts no instance, and loading
# moto's default AMIs cost about 3 s per test that touches EC2 (each account reset builds them again).
os.environ["MOTO_ACM_VALIDATION_WAIT"] = "0"
os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
for _key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "MOTO_IAM_LOAD_MANAGED_POLICIES"):
    os.environ.pop(_key, None)
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_SESSION_TOKEN="testing", AWS_DEFAULT_REGION="eu-west-1")

import boto3  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from provision import config as config_module
from provision.aws import ca_bundle
from provision.local.emulator import seed_database  # noqa: E402
from tests.handler_support import configure, db, paged  # noqa: E402,F401
from tests.mariadb import mariadb_server, other_ca, plain_mariadb_server, test_ca, tls_files  # noqa: E402,F401
from tests.setup_costs import shared_setup  # noqa: E402
from tests.support import EXAMPLE, SECRETS, SERVE_AUTHORIZATION, merged, quiet_context, quiet_output, write_toml  # noqa: E402

MOTO_CONFIG = {"lambda": {"use_docker": False}}


@pytest.fixture(scope="session", autouse=True)
def _shared_setup():
    """One botocore loader for every session, moto's managed IAM policies cut (tests/setup_costs.py)."""
    with shared_setup():
        yield


@pytest.fixture(scope="session")
def rds_ca_pem():
    """A throwaway CA standing in for AWS's global RDS bundle."""
    from provision.local.certs import make_ca
    return make_ca("stand-in RDS CA").pem


@pytest.fixture(autouse=True)
def bundle_downloads(monkeypatch, rds_ca_pem):
    """No network in tests: deploy's download of the RDS CA bundle gets the stand-in; the URLs asked for."""
    asked = []

    def fetch(url):
        asked.append(url)
        return rds_ca_pem

    monkeypatch.setattr(ca_bundle, "fetch", fetch)
    return asked


@pytest.fixture
def short_tmp_path():
    """A private directory with a short path, for a test whose TMPDIR holds MariaDB's socket: its path must
    stay under 108 bytes, and pytest-xdist's tmp_path is deeper (.../popen-gw0/<test name>0/)."""
    import shutil
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def secrets(monkeypatch):
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    return SECRETS


@pytest.fixture
def write_config(tmp_path, secrets):
    """write_config(overrides=None, drop=()) -> path of a stack.toml in tmp_path."""
    def write(overrides=None, drop=(), name="stack.toml"):
        return write_toml(tmp_path / name, merged(overrides, drop))
    return write


@pytest.fixture
def aws(secrets, request):
    """moto for every AWS call. AWS's managed IAM policies, which take seconds to load, only for
    tests marked ``iam`` (they attach AWSLambdaVPCAccessExecutionRole)."""
    from provision.local.moto_workarounds import fill_gaps

    fill_gaps()  # moto 5.2.5 lacks SES DeleteReceiptRule; its PutMetricFilter appends a duplicate
    iam = {"iam": {"load_aws_managed_policies": request.node.get_closest_marker("iam") is not None}}
    with mock_aws(config={**MOTO_CONFIG, **iam}):
        yield


@pytest.fixture
def hosted_zone(aws):
    """A Route 53 zone for example.com, the parent of the test domain."""
    zone = boto3.client("route53").create_hosted_zone(Name="example.com", CallerReference="tests")
    return zone["HostedZone"]["Id"].removeprefix("/hostedzone/")


@pytest.fixture
def load_seeded(aws, write_config):
    """load_seeded(overrides=None, drop=()) -> Config, with the operator's VPC and RDS created in moto."""
    def load(overrides=None, drop=()):
        cfg = config_module.load(write_config(overrides, drop))
        seed_database(boto3.Session(region_name=cfg.stack.region), cfg)
        return cfg
    return load


@pytest.fixture
def cfg(load_seeded):
    return load_seeded()


@pytest.fixture
def ctx(cfg):
    return quiet_context(cfg)


@pytest.fixture
def load_config(aws, write_config):
    """load_config(**domain) -> Config with those [domain] settings and nothing seeded: for the steps
    that need neither the VPC nor the database."""
    def load(**domain):
        return config_module.load(write_config({"domain": domain}))
    return load


@pytest.fixture
def dns_cfg(load_config, hosted_zone):
    return load_config(validation="dns", hosted_zone_id=hosted_zone)


@pytest.fixture
def email_cfg(load_config, hosted_zone):
    return load_config(validation="email", hosted_zone_id=hosted_zone)


@pytest.fixture
def aws_rules(aws, monkeypatch):
    """aws_rules(rule, ...) switches on rules from tests/aws_rules.py (AWS as it behaves) for the test."""
    from tests import aws_rules as rules_module

    active: list = []
    rules_module.install(monkeypatch, active)

    def enable(*rules):
        active.extend(rules)
        return rules[0] if len(rules) == 1 else rules
    return enable


@pytest.fixture(scope="module")
def served():
    """(config, session, path): the example stack deployed into the emulator and served on loopback, once per
    module (test_serve, test_verify); every test leaves the emulator as it found it."""
    from provision import runner
    from provision.config import MAX_THROTTLE_BURST, MAX_THROTTLE_RATE, load
    from provision.context import make_context
    from provision.local import emulator
    from provision.local.serve import LocalPath
    from provision.steps import STEPS

    saved = {k: os.environ.get(k) for k in ("RDS_EDGE_DB_PASSWORD", "RDS_EDGE_AUTHORIZATION")}
    os.environ.update(RDS_EDGE_DB_PASSWORD="serve-db-NEVER-SHOWN", RDS_EDGE_AUTHORIZATION=SERVE_AUTHORIZATION)
    out = quiet_output()
    try:
        with ExitStack() as stack:
            # The usage plan at its most: the module's tests send requests as fast as the path answers, past the
            # example's 10 a second; the throttle's own test lowers it for itself (test_serve.throttle_changed).
            example = load(EXAMPLE)
            example = dataclasses.replace(example, api=dataclasses.replace(
                example.api, throttle_rate=MAX_THROTTLE_RATE, throttle_burst=MAX_THROTTLE_BURST))
            config, session = emulator.start(stack, example, out)
            runner.deploy(make_context(config, session=session, out=out), STEPS)
            path = stack.enter_context(LocalPath(config, session, port=0))
            yield config, session, path
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
