"""The operator's cycle: deploy, teardown, deploy again within the hour, teardown, in ONE emulator.

ACM remembers an IdempotencyToken for an hour and answers it with the first request's ARN even once
that certificate is deleted (moto answers HTTP 500): the second deploy must request a NEW certificate.
"""
import boto3
import pytest

from provision.steps.certificate import ALL_STATUSES
from tests.support import Run, inventory

pytestmark = pytest.mark.iam


def certificates():
    """The domain's certificates in us-east-1, read with plain boto3, whatever their status."""
    listed = boto3.client("acm", region_name="us-east-1").list_certificates(
        CertificateStatuses=ALL_STATUSES)["CertificateSummaryList"]
    return [c["CertificateArn"] for c in listed if c["DomainName"] == "api.example.com"]


@pytest.mark.parametrize("validation", ["dns", "email"])
def test_deploy_teardown_deploy_teardown(load_seeded, hosted_zone, write_config, validation):
    overrides = {"domain": {"hosted_zone_id": hosted_zone, "validation": validation},
                 "alerts": {"email": "ops@example.com"}}
    cfg = load_seeded(overrides)
    path = write_config(overrides)
    seen = []
    for cycle in (1, 2):
        up = Run("deploy", path)
        assert up.code == 0, f"deploy {cycle}:\n{up.text}"
        [arn] = certificates()
        assert arn not in seen  # a new certificate, never the deleted one's ARN
        seen.append(arn)
        assert any(item.startswith("distribution") for item in inventory(cfg))
        down = Run("teardown", path, "--yes")
        assert down.code == 0, f"teardown {cycle}:\n{down.text}"
        assert certificates() == [] and inventory(cfg) == []
