"""The generated policy against AWS's Service Authorization Reference, as data (parliament ships it):
for every config variant, every action exists, every statement's resources are of a type the action takes,
every condition key is one the action supports, and every dependent action the reference names is granted
(or provision/permissions.NOT_NEEDED says why the toolkit's use does not trigger it)."""
import itertools
import re

import pytest
from parliament import iam_definition, is_arn_match

from provision import config as config_module
from provision.iam import permissions, policy

ACCOUNT = "123456789012"
NETWORK = policy.Network("vpc-0123456789abcdef0", "sg-0123456789abcdef0")
# validation x hosted zone x database auth x alerts
VARIANTS = list(itertools.product(("dns", "email"), (None, "Z0123456789ABC"), ("password", "iam"), (False, True)))
# Global condition keys apply to every action, except the tag keys: the reference lists those per resource type.
TAG_KEYS = ("aws:resourcetag/", "aws:requesttag/", "aws:tagkeys")


def _reference() -> dict[str, dict[str, dict]]:
    """IAM prefix -> action name (lower case) -> the reference's entry; services sharing a prefix merged (SES)."""
    merged: dict[str, dict[str, dict]] = {}
    for service in iam_definition:
        for privilege in service["privileges"]:
            entry = merged.setdefault(service["prefix"], {}).setdefault(
                privilege["privilege"].lower(), {"resource_types": [], "resources": {}})
            entry["resource_types"] += privilege["resource_types"]
            entry["resources"].update({r["resource"]: r["arn"] for r in service["resources"]})
    return merged


REFERENCE = _reference()
# Where parliament's copy of the reference is wrong: DeleteDeliverySource is listed on delivery-destination
# only, yet it deletes a delivery source (CloudWatch Logs API reference) and AWS's own example policy grants it
# on delivery-source:* (CloudWatch Logs user guide, "Logs sent to CloudWatch Logs").
REFERENCE["logs"]["deletedeliverysource"]["resource_types"].append({"resource_type": "delivery-source*",
                                                                "dependent_actions": []})


def _variant_id(v) -> str:
    validation, zone, auth, alerts = v
    return f"{validation}{'+zone' if zone else ''}-{auth}{'-alerts' if alerts else ''}"


@pytest.fixture(params=VARIANTS, ids=_variant_id)
def document(request, write_config):
    validation, zone, auth, alerts = request.param
    database = {"auth": "iam"} if auth == "iam" else {}
    overrides = {"domain": {"validation": validation, **({"hosted_zone_id": zone} if zone else {})},
                 "database": database, **({"alerts": {"email": "ops@example.com"}} if alerts else {})}
    drop = ("database.password_env",) if auth == "iam" else ()
    return policy.document(config_module.load(write_config(overrides, drop)), ACCOUNT, NETWORK)


def _entry(action: str) -> dict:
    prefix, _, name = action.partition(":")
    assert prefix in REFERENCE, f"{action}: no service with prefix {prefix!r} in the Service Authorization Reference"
    assert name.lower() in REFERENCE[prefix], f"{action}: no such action in the Service Authorization Reference"
    return REFERENCE[prefix][name.lower()]


def _types(entry: dict) -> dict[str, str]:
    """The resource types the action takes ('' when it takes none: only '*') -> ARN format, its ${...} parts as *."""
    names = {t["resource_type"].rstrip("*") for t in entry["resource_types"]}
    return {name: re.sub(r"\$\{[^}]+\}", "*", entry["resources"].get(name, "*")) for name in names}


def test_every_action_exists_and_takes_the_resources_it_is_granted_on(document):
    for statement in document["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"]:
            types = _types(_entry(action))
            for resource in resources:
                if resource == "*":
                    assert "" in types or policy.STAR.match(action), (
                        f"{action} gets '*' but takes resource types {sorted(types)}")
                    continue
                assert any(name and is_arn_match(name, arn, resource) for name, arn in types.items()), (
                    f"{action} does not take {resource} (its resource types: {types})")


def test_every_condition_key_is_one_the_action_supports(document):
    for statement in document["Statement"]:
        for operator in statement.get("Condition", {}).values():
            for key in operator:
                for action in statement["Action"]:
                    supported = {k.lower() for t in _entry(action)["resource_types"] for k in t["condition_keys"]}
                    generic = key.split("/")[0].lower() + "/${tagkey}" if "/" in key else key.lower()
                    is_global = key.lower().startswith("aws:") and not key.lower().startswith(TAG_KEYS)
                    assert key.lower() in supported or generic in supported or is_global, (
                        f"{action} does not support condition key {key} (it supports {sorted(supported)})")


def test_every_dependent_action_the_reference_names_is_granted(document):
    granted = {a for s in document["Statement"] for a in s["Action"]}
    missing = {(action, dependent) for action in granted for t in _entry(action)["resource_types"]
               for dependent in t["dependent_actions"]
               if dependent not in granted and (action, dependent) not in permissions.NOT_NEEDED}
    assert not missing, f"dependent actions AWS checks but the policy lacks: {sorted(missing)}"


def test_the_reference_checks_can_fail(write_config):
    """The checks above can fail: an action AWS does not have, a resource the action does not take, a condition
    key it does not support, a dependent action left out."""
    bad_action = {"Statement": [{"Action": ["lambda:GetFunctionTags"], "Resource": "*"}]}
    with pytest.raises(AssertionError, match="no such action"):
        test_every_action_exists_and_takes_the_resources_it_is_granted_on(bad_action)
    bad_resource = {"Statement": [{"Action": ["lambda:GetFunction"],
                                   "Resource": f"arn:aws:sns:us-east-1:{ACCOUNT}:demo-certificate-alerts"}]}
    with pytest.raises(AssertionError, match="does not take"):
        test_every_action_exists_and_takes_the_resources_it_is_granted_on(bad_resource)
    no_tags = {"Statement": [{"Action": ["ec2:DescribeVpcs"], "Resource": "*",
                              "Condition": {"StringEquals": {"aws:ResourceTag/stack": "demo"}}}]}
    with pytest.raises(AssertionError, match="does not support condition key"):
        test_every_condition_key_is_one_the_action_supports(no_tags)
    no_dependent = {"Statement": [{"Action": ["lambda:CreateFunction"], "Resource": "*"}]}
    with pytest.raises(AssertionError, match="iam:PassRole"):
        test_every_dependent_action_the_reference_names_is_granted(no_dependent)


def test_every_not_needed_entry_names_a_real_dependency():
    """NOT_NEEDED cannot hide anything the reference does not say: each pair is a dependency it names."""
    for action, dependent in permissions.NOT_NEEDED:
        assert dependent in {d for t in _entry(action)["resource_types"] for d in t["dependent_actions"]}
