"""policy --check, and deploy with [stack] check_permissions: the caller's permissions simulated before any change.

moto 5.2.5 has no iam:SimulatePrincipalPolicy. For that one call a botocore before-call hook answers instead
(``Simulator``): it reads the principal's policies from moto and evaluates them with moto's own policy matcher,
and refuses the call, as IAM does, when those policies do not allow iam:SimulatePrincipalPolicy. Every other
call (STS, RDS, IAM's users, roles and policies) stays on moto.
"""
import io
import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from rich.console import Console

from provision import cli
from provision.iam import policy
from provision.iam.caller_check import _why, principal_of, stack_network
from provision.output import Output
from tests.support import quiet_context

ACCOUNT = "123456789012"
CHECK = {"stack": {"check_permissions": True}}


class Simulator:
    """Stands in for iam:SimulatePrincipalPolicy on a session: moto's IAM state, moto's policy evaluation."""

    def __init__(self, session: boto3.Session):
        self.asked: list[dict] = []
        self.iam = boto3.client("iam")  # moto, as the test's admin
        session.events.register("before-parameter-build.iam.SimulatePrincipalPolicy", self.keep)
        session.events.register("before-call.iam.SimulatePrincipalPolicy", self)

    @staticmethod
    def keep(params, context, **_):
        context["simulation"] = dict(params)  # before-call sees the wire form only

    def exists(self, principal: str) -> bool:
        kind = principal.split(":")[-1].split("/")[0]
        found = self.iam.list_users()["Users"] if kind == "user" else self.iam.list_roles()["Roles"]
        return principal in {p["Arn"] for p in found}

    def policies(self, principal: str) -> list[str]:
        kind, name = principal.split(":")[-1].split("/")[0], principal.rsplit("/", 1)[1]
        key = {"user": "UserName", "role": "RoleName"}[kind]
        get_inline = self.iam.get_user_policy if kind == "user" else self.iam.get_role_policy
        names = (self.iam.list_user_policies if kind == "user" else self.iam.list_role_policies)(**{key: name})
        inline = [get_inline(**{key: name, "PolicyName": n})["PolicyDocument"] for n in names["PolicyNames"]]
        attached = (self.iam.list_attached_user_policies if kind == "user"
                    else self.iam.list_attached_role_policies)(**{key: name})["AttachedPolicies"]
        for p in attached:
            version = self.iam.get_policy(PolicyArn=p["PolicyArn"])["Policy"]["DefaultVersionId"]
            inline.append(self.iam.get_policy_version(PolicyArn=p["PolicyArn"], VersionId=version)
                          ["PolicyVersion"]["Document"])
        return [d if isinstance(d, str) else json.dumps(d) for d in inline]

    def boundary(self, principal: str) -> str | None:
        """The role's permissions boundary policy, as a document (roles only: moto keeps none for users)."""
        if ":role/" not in principal:
            return None
        arn = (self.iam.get_role(RoleName=principal.rsplit("/", 1)[1])["Role"].get("PermissionsBoundary") or {}).get(
            "PermissionsBoundaryArn")
        if not arn:
            return None
        version = self.iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = self.iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        return document if isinstance(document, str) else json.dumps(document)

    @staticmethod
    def has_keys(statement: dict, context: dict) -> bool:
        """Whether the request carries every key the statement's conditions test: in IAM a condition on a key the
        request lacks does not match (unless its operator ends in IfExists); moto's matcher lets it pass."""
        return all(key in context for operator, values in (statement.get("Condition") or {}).items()
                   if not operator.endswith("IfExists") for key in values)

    @staticmethod
    def evaluate(documents: list[str], action: str, resource: str, context: dict) -> str:
        """IAM's evaluation: an explicit deny wins, then any allow. Statement by statement, since moto's matcher
        answers DENIED for an Allow whose condition does not match (its trust-policy reading)."""
        allowed = False
        for doc in documents:
            statements = json.loads(doc)["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                if not Simulator.has_keys(statement, context):
                    continue
                result = IAMPolicyStatement(statement).is_action_permitted(action, resource, None, context)
                if statement["Effect"] == "Deny" and result == PermissionResult.DENIED:
                    return "explicitDeny"
                allowed = allowed or (statement["Effect"] == "Allow" and result == PermissionResult.PERMITTED)
        return "allowed" if allowed else "implicitDeny"

    def decide(self, principal: str, action: str, resource: str, context: dict) -> dict:
        """One resource's result: the identity policies, then the permissions boundary if there is one."""
        decision = self.evaluate(self.policies(principal), action, resource, context)
        result = {"EvalResourceName": resource, "EvalResourceDecision": decision, "MatchedStatements": []}
        boundary = self.boundary(principal)
        if boundary is not None and decision == "allowed":
            within = self.evaluate([boundary], action, resource, context) == "allowed"
            result["PermissionsBoundaryDecisionDetail"] = {"AllowedByPermissionsBoundary": within}
            result["EvalResourceDecision"] = "allowed" if within else "implicitDeny"
        return result

    def __call__(self, context, **_):
        params = context["simulation"]
        self.asked.append(params)
        principal = params["PolicySourceArn"]
        if not self.exists(principal):
            return _response(404, {"Error": {"Code": "NoSuchEntity", "Message": f"{principal} does not exist"}})
        if self.decide(principal, "iam:SimulatePrincipalPolicy", principal, {})["EvalResourceDecision"] != "allowed":
            return _response(403, {"Error": {"Code": "AccessDenied", "Message": f"User: {principal} is not "
                                             "authorized to perform: iam:SimulatePrincipalPolicy"}})
        context = {e["ContextKeyName"]: e["ContextKeyValues"][0] for e in params.get("ContextEntries", [])}
        results = []
        for action in params["ActionNames"]:
            specific = [self.decide(principal, action, r, context) for r in params["ResourceArns"]]
            worst = next((s["EvalResourceDecision"] for s in specific if s["EvalResourceDecision"] != "allowed"),
                         "allowed")
            results.append({"EvalActionName": action, "EvalResourceName": "*", "EvalDecision": worst,
                            "MatchedStatements": [], "MissingContextValues": [], "ResourceSpecificResults": specific})
        return _response(200, {"EvaluationResults": results, "IsTruncated": False})


def _response(status: int, parsed: dict):
    parsed["ResponseMetadata"] = {"HTTPStatusCode": status, "HTTPHeaders": {}, "RequestId": "stand-in"}
    return AWSResponse("https://iam.amazonaws.com/", status, {}, None), parsed


def run(path, *args, session):
    out = Output(Console(file=io.StringIO(), width=250, force_terminal=False))
    code = cli.main([*args, "--config", str(path)], session=session, out=out)
    return code, out.console.file.getvalue()


@pytest.fixture
def operator(load_seeded, write_config):
    """operator(document_edit=None, overrides=None) -> (config path, session of an IAM user holding the generated
    policy, edited by ``edit``), the Simulator on that session."""
    def make(edit=None, overrides=None):
        cfg = load_seeded(overrides)
        path = write_config(overrides)
        doc = policy.document(cfg, ACCOUNT, stack_network(quiet_context(cfg)))
        doc = edit(doc) if edit else doc
        iam = boto3.client("iam")
        iam.create_user(UserName="operator")
        iam.put_user_policy(UserName="operator", PolicyName="rds-edge-api", PolicyDocument=json.dumps(doc))
        key = iam.create_access_key(UserName="operator")["AccessKey"]
        session = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        return path, session, Simulator(session)
    return make


def _without(action):
    def edit(doc):
        for statement in doc["Statement"]:
            statement["Action"] = [a for a in statement["Action"] if a != action]
        return {**doc, "Statement": [s for s in doc["Statement"] if s["Action"]]}
    return edit


def test_all_allowed_exits_0(operator):
    path, session, simulator = operator(overrides=CHECK)  # the policy then grants the simulation itself
    code, text = run(path, "policy", "--check", session=session)
    assert code == 0, text
    assert "are allowed for arn:aws:iam::123456789012:user/operator" in text
    asked = {a for p in simulator.asked for a in p["ActionNames"]}
    assert {"lambda:ListTags", "iam:PassRole", "ec2:AuthorizeSecurityGroupIngress"} <= asked
    passing = [p["ContextEntries"] for p in simulator.asked if "iam:PassRole" in p["ActionNames"]]
    assert sorted(passing, key=str) == [  # the function's role to Lambda, the account's logging role to API Gateway
        [{"ContextKeyName": "iam:PassedToService", "ContextKeyValues": [service], "ContextKeyType": "string"}]
        for service in ("apigateway.amazonaws.com", "lambda.amazonaws.com")]


def test_one_action_denied_is_named_with_why_and_exits_1(operator):
    def edit(doc):
        doc = _without("lambda:ListTags")(doc)
        return {**doc, "Statement": [*doc["Statement"], {"Sid": "NoTeardown", "Effect": "Deny",
                                                         "Action": "cloudfront:DeleteDistribution", "Resource": "*"}]}
    path, session, _ = operator(edit, CHECK)
    code, text = run(path, "policy", "--check", session=session)
    assert code == 1
    lines = text.splitlines()
    assert any("lambda:ListTags" in line and "arn:aws:lambda:eu-west-1:123456789012:function:demo-api" in line
               and "no policy allows it" in line for line in lines), text
    assert any("cloudfront:DeleteDistribution" in line and "explicitly denied" in line for line in lines), text
    assert "lambda:GetFunction " not in text  # what is allowed is not listed


def test_a_caller_that_may_not_simulate_is_told_in_one_line(operator):
    path, session, simulator = operator(overrides=None)  # without check_permissions: no SimulatePrincipalPolicy
    code, text = run(path, "policy", "--check", session=session)
    assert code == 1 and len(simulator.asked) == 1
    [line] = [line for line in text.splitlines() if line.strip()]
    assert "may not simulate" in line and "iam:SimulatePrincipalPolicy" in line and "AccessDenied" in line


@pytest.mark.parametrize("role_path", ["/", "/ci/"])
def test_an_assumed_role_caller_is_simulated_as_its_role(operator, role_path):
    """The session's ARN does not carry the role's path: a role under /ci/ is then found by name (GetRole)."""
    path, _, _ = operator(overrides=CHECK)
    iam = boto3.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
    role = iam.create_role(RoleName="deployer", Path=role_path, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    held = iam.get_user_policy(UserName="operator", PolicyName="rds-edge-api")["PolicyDocument"]
    iam.put_role_policy(RoleName="deployer", PolicyName="rds-edge-api",
                        PolicyDocument=held if isinstance(held, str) else json.dumps(held))
    creds = boto3.client("sts").assume_role(RoleArn=role["Arn"],
                                            RoleSessionName="ci-run-42")["Credentials"]
    session = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"])
    simulator = Simulator(session)
    code, text = run(path, "policy", "--check", session=session)
    assert code == 0, text
    assert simulator.asked[-1]["PolicySourceArn"] == f"arn:aws:iam::{ACCOUNT}:role{role_path}deployer"


def test_a_permissions_boundary_that_stops_an_action_is_named(operator):
    path, _, _ = operator(overrides=CHECK)
    iam = boto3.client("iam")
    held = iam.get_user_policy(UserName="operator", PolicyName="rds-edge-api")["PolicyDocument"]
    no_lambda = iam.create_policy(PolicyName="no-lambda", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "NotAction": "lambda:*", "Resource": "*"}]}))
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
    role = iam.create_role(RoleName="bounded", AssumeRolePolicyDocument=json.dumps(trust),
                           PermissionsBoundary=no_lambda["Policy"]["Arn"])["Role"]
    iam.put_role_policy(RoleName="bounded", PolicyName="rds-edge-api",
                        PolicyDocument=held if isinstance(held, str) else json.dumps(held))
    creds = boto3.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="bounded-run")["Credentials"]
    session = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"])
    Simulator(session)
    code, text = run(path, "policy", "--check", session=session)
    assert code == 1
    denied = [line for line in text.splitlines() if "│ lambda:" in line]
    assert denied and all("permissions boundary" in line for line in denied), text
    assert "│ iam:PassRole" not in text  # within the boundary: allowed


def test_a_service_control_policy_is_named():
    """SCPs live in AWS Organizations, which moto does not apply: IAM's answer is read as documented
    (SimulatePrincipalPolicy, EvaluationResult.OrganizationsDecisionDetail)."""
    result = {"EvalActionName": "lambda:CreateFunction", "EvalDecision": "implicitDeny",
              "OrganizationsDecisionDetail": {"AllowedByOrganizations": False}}
    assert _why("implicitDeny", result, {}) == "denied by a service control policy (AWS Organizations)"
    assert _why("implicitDeny", {"MissingContextValues": ["aws:SourceIp"]}, {}) == (
        "no policy allows it (the simulation lacked aws:SourceIp)")


def test_principal_of_callers():
    assert principal_of("arn:aws:iam::123456789012:user/ops/alice") == "arn:aws:iam::123456789012:user/ops/alice"
    assert principal_of("arn:aws:sts::123456789012:assumed-role/deployer/ci") == \
        "arn:aws:iam::123456789012:role/deployer"
    assert principal_of("arn:aws-cn:sts::123456789012:assumed-role/r/s") == "arn:aws-cn:iam::123456789012:role/r"
    assert principal_of("arn:aws:iam::123456789012:root") is None
    assert principal_of("arn:aws:sts::123456789012:federated-user/bob") is None


def test_deploy_checks_first_and_changes_nothing_when_denied(operator):
    path, session, simulator = operator(_without("lambda:ListTags"), CHECK)
    changes = []
    session.events.register("before-call", lambda model, **_: changes.append(model.name)
                            if not model.name.startswith(("Get", "Describe", "List", "Simulate")) else None)
    code, text = run(path, "deploy", session=session)
    assert code == 1 and "lambda:ListTags" in text
    assert simulator.asked and changes == []
    assert boto3.client("iam").list_roles()["Roles"] == []  # nothing was created


def test_deploy_checks_first_and_goes_on_when_all_is_allowed(operator):
    path, session, simulator = operator(overrides=CHECK)
    code, text = run(path, "deploy", "--plan", session=session)
    assert code == 0, text
    assert simulator.asked and "are allowed for" in text and "create" in text.lower()


def test_deploy_without_check_permissions_does_not_simulate(operator):
    path, session, simulator = operator()
    code, text = run(path, "deploy", "--plan", session=session)
    assert code == 0, text
    assert simulator.asked == []


def test_deploy_local_says_the_check_is_skipped(write_config):
    """The emulator has no SimulatePrincipalPolicy: with --local the check is skipped, and said so."""
    out = Output(Console(file=io.StringIO(), width=250, force_terminal=False))
    code = cli.main(["deploy", "--plan", "--local", "--config", str(write_config(CHECK))], out=out)
    text = out.console.file.getvalue()
    assert code == 0, text
    assert "check_permissions: skipped with --local" in text
