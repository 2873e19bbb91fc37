"""Issue 29's probe, items 1, 2, 5 and 9 (list): `teardown --stack` where the stack lives and resumable, a stale
state file refreshed from the tags, and `list` showing the global half, the shared things and the lease
wherever it is asked, and nothing the Tagging API returns after a deletion."""
import io
import json
import shutil
import time

import boto3
import pytest
from rich.console import Console

from provision import cli, lease
from provision.context import state_path
from provision.output import Output
from tests import aws_rules as rules
from tests.support import Run, inventory, merged, moto_evaluates_secure_transport, write_toml

pytestmark = pytest.mark.iam

HOSTILE = "ci\n[bold]error:[/bold] forged \x1b]0;pwned\x07\x1b[2J"
GLOBAL_KINDS = (":cloudfront::", ":acm:us-east-1:", ":wafv2:us-east-1:")


def run(*argv, session=None):
    out = Output(Console(file=io.StringIO(), width=250, force_terminal=False))
    code = cli.main(list(argv), session=session or boto3.Session(), out=out)
    return code, out.console.file.getvalue()


def global_only_in_us_east_1() -> rules.Rule:
    """CloudFront distributions, their ACM certificates and CLOUDFRONT-scoped WAF resources are returned only
    by the Tagging API's us-east-1 endpoint (cloud-custodian#2729); moto returns CloudFront's everywhere."""
    def answer(call):
        result = call.send()
        if call.client.meta.region_name != "us-east-1":
            result["ResourceTagMappingList"] = [m for m in result["ResourceTagMappingList"]
                                                if not m["ResourceARN"].startswith(tuple(f"arn:aws{k}"
                                                                                         for k in GLOBAL_KINDS))]
        return result

    return rules.Rule("global_only_in_us_east_1", "cloud-custodian#2729",
                      rules.operation("resourcegroupstaggingapi", "GetResources"), answer)


@pytest.fixture
def deployed(load_seeded, hosted_zone, tmp_path, aws_rules, monkeypatch):
    """deployed(name="demo", validation="dns") -> the config path of a stack deployed in eu-west-1."""
    moto_evaluates_secure_transport(monkeypatch)
    aws_rules(rules.tagging_api_covers_more_services(), global_only_in_us_east_1())
    load_seeded()

    def deploy(name="demo", validation="dns"):
        domain = {"name": f"{name}.example.com", "validation": validation, "hosted_zone_id": hosted_zone}
        path = write_toml(tmp_path / f"{name}.toml", merged({"stack": {"name": name}, "domain": domain}))
        code, text = run("deploy", "--config", str(path))
        assert code == 0, text
        return path
    return deploy


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An operator without the config or the state: teardown --stack keeps its progress under ./.state."""
    home = tmp_path / "elsewhere"
    home.mkdir()
    monkeypatch.chdir(home)
    return home


def test_teardown_stack_in_a_region_without_its_regional_half_is_refused_before_any_change(deployed, elsewhere):
    from provision import config as config_module

    cfg = config_module.load(deployed())
    before = inventory(cfg)
    session = boto3.Session()
    changing = []
    session.events.register("before-call", lambda model, **_: changing.append(model.name)
                            if not model.name.startswith(("Get", "List", "Describe", "Head")) else None)
    code, text = run("teardown", "--stack", "demo", "--region", "us-east-1", "--yes", session=session)
    assert code == 2, text
    assert "--region us-east-1: stack demo has no function, API or security group there; it is in eu-west-1" in text
    assert changing == [] and inventory(cfg) == before
    assert lease.TABLE not in boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"]

    code, text = run("teardown", "--stack", "demo", "--yes")  # found from the tags
    assert code == 0, text
    assert "its regional half is in eu-west-1" in text
    assert inventory(cfg) == []


def test_an_interrupted_teardown_stack_resumes_with_the_same_command(deployed, elsewhere):
    """Ctrl-C during the mail step, after the certificate and the distribution are gone: the same command
    finishes, from what the first run read and saved."""
    from provision import config as config_module

    cfg = config_module.load(deployed(validation="email"))
    session = boto3.Session()
    interrupted = []

    def ctrl_c(model, **_):
        if model.name == "DeleteBucket" and not interrupted:
            interrupted.append(model.name)
            raise KeyboardInterrupt

    session.events.register("before-call.s3.DeleteBucket", ctrl_c)
    code, text = run("teardown", "--stack", "demo", "--region", "eu-west-1", "--yes", session=session)
    assert interrupted and code == 130, text
    assert inventory(cfg) != []
    assert (elsewhere / ".state" / "demo.teardown.json").exists()
    code, text = run("teardown", "--stack", "demo", "--region", "eu-west-1", "--yes")
    assert code == 0, text
    assert "saved by the interrupted teardown" in text
    assert inventory(cfg) == []
    ses = boto3.client("ses", region_name="us-east-1")
    assert ses.list_receipt_rule_sets().get("RuleSets", []) == [] and "Metadata" not in \
        ses.describe_active_receipt_rule_set()
    assert not (elsewhere / ".state" / "demo.teardown.json").exists()


def test_a_state_file_naming_a_replaced_distribution_is_refreshed_from_the_tags(deployed, tmp_path):
    """Deployed here, torn down and deployed again from another machine: this machine's state names a
    distribution that is gone; its deploy finds the stack's new one by its tags and changes nothing."""
    path = deployed()
    stale = tmp_path / "stale.json"
    from provision import config as config_module

    cfg = config_module.load(path)
    shutil.copy(state_path(cfg), stale)
    assert run("teardown", "--config", str(path), "--yes")[0] == 0
    assert run("deploy", "--config", str(path))[0] == 0  # the other machine's deploy: a new distribution
    shutil.copy(stale, state_path(cfg))
    old = json.loads(stale.read_text())["resources"]["cloudfront"]["distribution_id"]

    again = Run("deploy", cfg.path)
    assert again.code == 0, again.text
    assert "not this stack's distribution" not in again.text
    assert [op for op in again.changing if op not in ("PutItem", "DeleteItem")] == []
    assert json.loads(state_path(cfg).read_text())["resources"]["cloudfront"]["distribution_id"] != old


def listed(*regions):
    code, text = run("list", "--json", *[arg for region in regions for arg in ("--region", region)])
    assert code == 0, text
    return {s["stack"]: s for s in json.loads(text)["stacks"]}, json.loads(text)["shared"]


def test_list_in_the_stacks_region_shows_its_global_half_and_the_shared_things(deployed):
    deployed(validation="email")
    stacks, shared = listed("eu-west-1")
    resources = stacks["demo"]["resources"]
    for kind in ("cloudfront:distribution", "acm:certificate", "wafv2:webacl", "lambda:function"):
        assert kind in resources, kind
    assert stacks["demo"]["complete"], stacks["demo"]["missing"]
    assert any("SES receipt rule set rds-edge-api-shared-acm in us-east-1" in s for s in shared), shared
    assert any("API Gateway logging role of eu-west-1" in s and "rds-edge-api-apigateway-logs-eu-west-1" in s
               for s in shared), shared


def test_list_leaves_out_what_the_tagging_api_returns_after_a_deletion(deployed):
    """The Tagging API's GetResources keeps returning a deleted resource for a while (it is eventually
    consistent): a deleted function of the stack, and a whole stack since deleted, as it would return them."""
    deployed()
    ghost = "arn:aws:lambda:eu-west-1:123456789012:function:demo-old"
    session = boto3.Session()

    def deleted_yet_returned(parsed, context, **_):
        tags = [{"Key": "managed-by", "Value": "rds-edge-api"}]
        parsed["ResourceTagMappingList"] += [
            {"ResourceARN": ghost, "Tags": [*tags, {"Key": "stack", "Value": "demo"}]},
            {"ResourceARN": ghost + "-gone", "Tags": [*tags, {"Key": "stack", "Value": "gone"}]}]

    session.events.register("after-call.resource-groups-tagging-api.GetResources", deleted_yet_returned)
    code, text = run("list", "--json", "--region", "eu-west-1", session=session)
    assert code == 0, text
    stacks = {s["stack"]: s for s in json.loads(text)["stacks"]}
    assert sorted(stacks) == ["demo"]
    assert ghost not in stacks["demo"]["resources"]["lambda:function"]
    assert stacks["demo"]["resources"]["lambda:function"] == ["arn:aws:lambda:eu-west-1:123456789012:function:demo-api"]


def test_list_in_us_east_1_shows_the_lease_held_in_the_stacks_region_escaped(deployed, load_seeded):
    deployed()
    boto3.client("dynamodb", region_name="eu-west-1").put_item(TableName=lease.TABLE, Item={
        "stack": {"S": "demo"}, "token": {"S": "theirs"}, "who": {"S": HOSTILE}, "where": {"S": HOSTILE},
        "command": {"S": "deploy"}, "since": {"S": "then"}, "expires": {"N": str(int(time.time()) + 600)}})
    stacks, _ = listed("us-east-1")
    assert stacks["demo"]["lease"]["who"] == HOSTILE  # JSON carries the data as it is, escaped by JSON
    code, text = run("list", "--region", "us-east-1")
    assert code == 0, text
    assert "free" not in text and "held by" in text
    assert "\x1b" not in text and "\x07" not in text and "[bold]error:[/bold]" in text

    boto3.client("dynamodb", region_name="eu-west-1").put_item(TableName=lease.TABLE, Item={
        "stack": {"S": "demo"}, "token": {"S": "t"}})  # no expires: a bad item
    code, text = run("list", "--region", "eu-west-1")
    assert "BAD ITEM" in text and "rds-edge-api unlock --stack demo" in text, text
