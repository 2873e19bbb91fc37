"""[database] proxy = true: an RDS Proxy with IAM auth end to end before the instance, read back with boto3."""
import json

import boto3
import pytest

from provision import config
from tests.support import Run, expected, inventory, kinds

pytestmark = pytest.mark.iam

REGION = "eu-west-1"
PROXIED = {"database": {"auth": "iam", "proxy": True}}
DIRECT = {"database": {"auth": "iam", "proxy": False}}
NO_PASSWORD = ("database.password_env",)


@pytest.fixture
def stack(load_seeded, hosted_zone, write_config):
    """(config, path of the proxied config, path of the same config without the proxy)."""
    zone = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded({**zone, **PROXIED}, NO_PASSWORD)
    return (cfg, write_config({**zone, **PROXIED}, NO_PASSWORD, name="proxied.toml"),
            write_config({**zone, **DIRECT}, NO_PASSWORD, name="direct.toml"))


def rds():
    return boto3.client("rds", region_name=REGION)


def function_host() -> str:
    return boto3.client("lambda", region_name=REGION).get_function(FunctionName="demo-api")[
        "Configuration"]["Environment"]["Variables"]["DB_HOST"]


def connect_resource(role: str) -> str:
    doc = boto3.client("iam").get_role_policy(RoleName=role, PolicyName="rds-db-connect")["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    [statement] = doc["Statement"]
    assert statement["Action"] == "rds-db:connect" and statement["Effect"] == "Allow"
    return statement["Resource"]


def group(name: str) -> dict:
    [found] = boto3.client("ec2", region_name=REGION).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    return found


def pairs(permissions: list[dict]) -> set[tuple[int, str]]:
    return {(p["FromPort"], pair["GroupId"]) for p in permissions for pair in p.get("UserIdGroupPairs", [])}


def test_deploy_puts_the_proxy_between_the_function_and_the_instance(stack):
    cfg, proxied, _ = stack
    run = Run("deploy", proxied)
    assert run.code == 0, run.text
    [proxy] = rds().describe_db_proxies(DBProxyName="demo-proxy")["DBProxies"]
    assert proxy["DefaultAuthScheme"] == "IAM_AUTH" and proxy["Auth"] == []  # no Secrets Manager secret
    assert proxy["RequireTLS"] is True and proxy["EngineFamily"] == "MYSQL"
    instance = rds().describe_db_instances(DBInstanceIdentifier="orders-db")["DBInstances"][0]
    assert sorted(proxy["VpcSubnetIds"]) == sorted(s["SubnetIdentifier"] for s in instance["DBSubnetGroup"]["Subnets"])
    tags = {t["Key"]: t["Value"] for t in rds().list_tags_for_resource(ResourceName=proxy["DBProxyArn"])["TagList"]}
    assert tags["stack"] == "demo" and tags["managed-by"] == "rds-edge-api"
    [target] = rds().describe_db_proxy_targets(DBProxyName="demo-proxy")["Targets"]
    assert (target["Type"], target["RdsResourceId"]) == ("RDS_INSTANCE", "orders-db")
    assert target["TargetHealth"]["State"] == "AVAILABLE"
    # the proxy's role: assumed by RDS only, rds-db:connect as the user on the instance
    role = boto3.client("iam").get_role(RoleName="demo-proxy")["Role"]
    assert role["Arn"] == proxy["RoleArn"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "rds.amazonaws.com"}
    assert connect_resource("demo-proxy").endswith(f":dbuser:{instance['DbiResourceId']}/api_reader")
    # the function: DB_HOST is the proxy, its token is good for the proxy's resource id only
    assert function_host() == proxy["Endpoint"]
    prx = proxy["DBProxyArn"].rsplit(":", 1)[1]
    assert prx.startswith("prx-")
    assert connect_resource("demo-fn") == f"arn:aws:rds-db:{REGION}:123456789012:dbuser:{prx}/api_reader"
    # the network: function -> proxy -> database, MySQL only
    proxy_group, lambda_group = group("demo-proxy"), group("demo-lambda")
    database_group = instance["VpcSecurityGroups"][0]["VpcSecurityGroupId"]
    assert proxy["VpcSecurityGroupIds"] == [proxy_group["GroupId"]]
    assert pairs(proxy_group["IpPermissions"]) == {(3306, lambda_group["GroupId"])}
    assert pairs(proxy_group["IpPermissionsEgress"]) == {(3306, database_group)}
    assert not any(p.get("IpRanges") for p in proxy_group["IpPermissionsEgress"])
    assert (3306, proxy_group["GroupId"]) in pairs(lambda_group["IpPermissionsEgress"])
    assert (3306, proxy_group["GroupId"]) in pairs(group_by_id(database_group)["IpPermissions"])
    assert "rds proxy demo-proxy" in inventory(cfg)


def group_by_id(group_id: str) -> dict:
    return boto3.client("ec2", region_name=REGION).describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def test_a_redeploy_with_the_proxy_changes_nothing(stack):
    _, proxied, _ = stack
    assert Run("deploy", proxied).code == 0
    again = Run("deploy", proxied)
    assert again.code == 0 and again.text.rstrip().endswith("(0 changing)"), again.text
    assert not {"CreateDBProxy", "RegisterDBProxyTargets", "PutRolePolicy", "AuthorizeSecurityGroupEgress",
                "AuthorizeSecurityGroupIngress", "UpdateFunctionConfiguration"} & set(again.changing)


def test_switching_the_proxy_off_and_on_then_teardown_leaves_nothing(stack):
    cfg, proxied, direct = stack
    assert Run("deploy", proxied).code == 0
    assert kinds(inventory(cfg)) == expected(cfg)
    off = Run("deploy", direct)
    assert off.code == 0, off.text
    assert rds().describe_db_proxies()["DBProxies"] == []
    instance = rds().describe_db_instances(DBInstanceIdentifier="orders-db")["DBInstances"][0]
    assert function_host() == instance["Endpoint"]["Address"]
    assert connect_resource("demo-fn").endswith(f":dbuser:{instance['DbiResourceId']}/api_reader")
    # gone: the proxy, its role and group, and its rule on the database's group (the function's stays)
    assert kinds(inventory(cfg)) == expected(config.load(direct))
    assert Run("deploy", direct).text.rstrip().endswith("(0 changing)")
    assert Run("deploy", proxied).code == 0
    assert function_host() == rds().describe_db_proxies(DBProxyName="demo-proxy")["DBProxies"][0]["Endpoint"]
    down = Run("teardown", proxied, "--yes")
    assert down.code == 0, down.text
    assert inventory(cfg) == []
    assert rds().describe_db_proxies()["DBProxies"] == []


@pytest.mark.parametrize("auth", ["password", None], ids=["password", "default"])
def test_a_proxy_without_iam_auth_is_refused_before_any_call(write_config, capsys, auth):
    overrides = {"database": {"proxy": True, **({"auth": auth} if auth else {})}}
    run = Run("deploy", write_config(overrides))
    assert run.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("config error: database.proxy: ")
    assert 'auth = "iam"' in line
    assert run.calls == []


def test_the_function_is_verified_through_the_proxy_and_the_alarm_watches_the_proxy(alerts_stack):
    cfg, proxied, direct = alerts_stack
    assert Run("deploy", proxied).code == 0
    from provision.context import make_context
    from provision.steps import proxy

    through, note = proxy.reached_through(make_context(cfg))
    assert through, note
    [alarm] = boto3.client("cloudwatch", region_name=REGION).describe_alarms(
        AlarmNames=["demo-database-connections"])["MetricAlarms"]
    assert (alarm["MetricName"], alarm["Dimensions"]) == ("DatabaseConnections",
                                                          [{"Name": "ProxyName", "Value": "demo-proxy"}])
    assert "behind RDS Proxy" in Run("outputs", proxied).text
    # pointed back at the instance behind the toolkit's back: verify says so
    boto3.client("lambda", region_name=REGION).update_function_configuration(
        FunctionName="demo-api", Environment={"Variables": {"DB_HOST": "elsewhere.example.com"}})
    through, note = proxy.reached_through(make_context(cfg))
    assert not through and "not the proxy" in note
    assert Run("deploy", direct).code == 0
    [alarm] = boto3.client("cloudwatch", region_name=REGION).describe_alarms(
        AlarmNames=["demo-database-connections"])["MetricAlarms"]
    assert alarm["Dimensions"] == [{"Name": "DBInstanceIdentifier", "Value": "orders-db"}]


@pytest.fixture
def alerts_stack(load_seeded, hosted_zone, write_config):
    extra = {"domain": {"hosted_zone_id": hosted_zone}, "alerts": {"email": "ops@example.com"}}
    cfg = load_seeded({**extra, **PROXIED}, NO_PASSWORD)
    return (cfg, write_config({**extra, **PROXIED}, NO_PASSWORD, name="proxied.toml"),
            write_config({**extra, **DIRECT}, NO_PASSWORD, name="direct.toml"))


def test_an_engine_version_rds_proxy_does_not_support_stops_deploy_before_any_change(stack, capsys):
    _, proxied, _ = stack
    boto3.client("rds", region_name=REGION).modify_db_instance(
        DBInstanceIdentifier="orders-db", EngineVersion="5.6.51", ApplyImmediately=True)
    run = Run("deploy", proxied)
    assert run.code == 1
    assert "RDS Proxy does not support mysql 5.6.51" in run.text + capsys.readouterr().err
    assert [c for c in run.changing if c not in ("PutItem", "DeleteItem")] == []  # the lease only


def test_a_user_holding_only_the_policy_deploys_the_proxy_switches_it_off_and_tears_down(
        load_seeded, hosted_zone, write_config, monkeypatch, aws_rules):
    """The generated operator policy for a proxied config covers the proxy's calls (moto checks each action)."""
    import moto.settings
    from moto.iam.access_control import IAMRequestBase

    from provision.iam import policy
    from provision.iam.caller_check import stack_network
    from tests.aws_rules import function_tags_need_list_tags
    from tests.support import quiet_context
    from tests.test_policy import ACCOUNT, as_moto_evaluates, operator_holding

    monkeypatch.setattr(IAMRequestBase, "check_signature", lambda self: None)  # as test_policy: moto's GET quirk
    aws_rules(function_tags_need_list_tags())
    zone = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded({**zone, **PROXIED}, NO_PASSWORD)
    proxied = write_config({**zone, **PROXIED}, NO_PASSWORD, name="proxied.toml")
    direct = write_config({**zone, **DIRECT}, NO_PASSWORD, name="direct.toml")
    doc = policy.document(cfg, ACCOUNT, stack_network(quiet_context(cfg)))
    granted = {a for s in doc["Statement"] for a in s["Action"]}
    assert {"rds:CreateDBProxy", "rds:RegisterDBProxyTargets", "rds:DeleteDBProxy", "iam:PassRole"} <= granted
    operator = operator_holding(as_moto_evaluates(doc, cfg), monkeypatch)
    for argv, path in ((["deploy"], proxied), (["deploy"], direct), (["deploy"], proxied),
                       (["teardown", "--yes"], proxied)):
        code, text = Run(argv[0], path, *argv[1:], session=operator())
        assert code == 0, (argv, text)
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    assert [f for f in inventory(cfg) if not f.startswith("dns NS")] == []


@pytest.mark.parametrize("how", ["reset", "503"])
def test_each_proxy_call_losing_its_answer_once_leaves_one_proxy_then_nothing(stack, aws_rules, monkeypatch, how):
    """CreateDBProxy and RegisterDBProxyTargets after a lost answer are looked for, not sent blindly again
    (AWS would refuse the second: DBProxyAlreadyExistsFault, DBProxyTargetAlreadyRegisteredFault)."""
    from provision import waits
    from tests.aws_rules import lost_answers

    monkeypatch.setattr(waits.random, "uniform", lambda low, high: 0.0)
    cfg, proxied, _ = stack
    rule = aws_rules(lost_answers(how))
    run = Run("deploy", proxied)
    assert run.code == 0, run.text
    assert {"CreateDBProxy", "RegisterDBProxyTargets"} <= {call.operation for call in rule.seen}
    assert len(rds().describe_db_proxies()["DBProxies"]) == 1
    assert len(rds().describe_db_proxy_targets(DBProxyName="demo-proxy")["Targets"]) == 1
    assert Run("deploy", proxied).text.rstrip().endswith("(0 changing)")
    down = Run("teardown", proxied, "--yes")
    assert down.code == 0, down.text
    assert "DeleteDBProxy" in {call.operation for call in rule.seen}
    assert inventory(cfg) == []
