"""The set-up the tests share (tests/setup_costs.py) leaves what the tests see unchanged."""
import re
from pathlib import Path

import boto3
import pytest

from tests.setup_costs import MANAGED_POLICIES

PROVISION = Path(__file__).resolve().parents[1] / "provision"
MANAGED_ARN = re.compile(r"iam::aws:policy/([\w+=,.@/-]+)")


def test_the_cut_keeps_every_managed_policy_the_toolkit_names():
    named = {match for source in PROVISION.rglob("*.py")
             for match in MANAGED_ARN.findall(source.read_text(encoding="utf-8"))}
    assert named, "no managed policy ARN found in provision/: the pattern is out of date"
    assert named <= set(MANAGED_POLICIES), named - set(MANAGED_POLICIES)


@pytest.mark.iam
def test_moto_holds_exactly_the_kept_managed_policies(aws):
    iam = boto3.client("iam")
    listed = iam.list_policies(Scope="AWS")["Policies"]
    assert sorted(p["Path"].strip("/") + "/" + p["PolicyName"] for p in listed) == sorted(MANAGED_POLICIES)
    for path in MANAGED_POLICIES:
        arn = f"arn:aws:iam::aws:policy/{path}"
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        assert document["Statement"], path


def test_every_session_shares_one_loader_with_each_search_path_once():
    first, second = boto3.Session(), boto3.Session()
    loader = first._session.get_component("data_loader")
    assert loader is second._session.get_component("data_loader")
    assert len(loader.search_paths) == len(set(loader.search_paths))
    assert first.client("s3", region_name="eu-west-1").meta.service_model.service_name == "s3"
