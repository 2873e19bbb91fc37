"""AWS as it behaves, where the emulator is lenient: rules a test switches on.

moto accepts what AWS refuses (a VPC function right after its role is made,
reserved concurrency past the account's headroom, a second DeleteRestApi
within 30 s, ...). Each rule here makes moto answer as AWS does for one such
case, and names the AWS documentation or issue it comes from, so a fix cannot
regress silently and the next difference found is one more rule.
``docs/aws-vs-emulator.md`` lists them for readers of the project.

A rule sees every AWS call a test's code makes (any client, any session) and
either lets it through (``call.send()``), changes what comes back, or answers
in AWS's place (``aws_error``). Switch rules on with the ``aws_rules`` fixture:

    def test_x(aws_rules, ...):
        aws_rules(SOME_RULE)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.client import BaseClient
from botocore.exceptions import ClientError


@dataclass
class Call:
    """One AWS call on its way to moto: ``send()`` passes it on and returns moto's answer."""
    service: str          # botocore's service name: "lambda", "apigateway", ...
    operation: str        # "CreateFunction"
    params: dict
    send: Callable[[], dict]
    client: Any


@dataclass
class Rule:
    """What AWS does that moto does not, for the calls ``applies`` picks."""
    name: str
    source: str                                   # AWS documentation or public issue
    applies: Callable[[Call], bool]
    answer: Callable[[Call], dict]                # call.send() to let moto answer
    seen: list[Call] = field(default_factory=list)  # the calls it applied to, for assertions


def aws_error(operation: str, code: str, message: str, status: int = 400,
              headers: dict | None = None) -> ClientError:
    """The ClientError botocore raises for an AWS error answer."""
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}},
                       operation)


def fail_with(code: str, message: str, status: int = 400,
              headers: dict | None = None) -> Callable[[Call], dict]:
    """``answer`` that refuses the call as AWS would."""
    def answer(call: Call) -> dict:
        raise aws_error(call.operation, code, message, status, headers)
    return answer


def operation(service: str, *operations: str) -> Callable[[Call], bool]:
    """``applies`` for the named operations of one service."""
    return lambda call: call.service == service and call.operation in operations


def install(monkeypatch, rules: list[Rule]) -> None:
    """Route every boto3 call through the active rules, first applicable rule wins."""
    original = BaseClient._make_api_call

    def make_api_call(client, operation_name, api_params):
        call = Call(service=client.meta.service_model.service_name, operation=operation_name,
                    params=api_params, client=client,
                    send=lambda: original(client, operation_name, api_params))
        for rule in rules:
            if rule.applies(call):
                rule.seen.append(call)
                return rule.answer(call)
        return call.send()

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)


# --- the rules -----------------------------------------------------------------------------
# Each rule is built by a function taking what the test controls (a clock, a count), with the
# source of the AWS behaviour in its docstring and in Rule.source.


# --- Logs an operator and an auditor expect (issue 16) --------------------------------------------------

def access_logging_needs_the_account_role() -> Rule:
    """A REST stage's access log needs the region's API Gateway CloudWatch role set first.

    API Gateway developer guide, "Set up CloudWatch logging for REST APIs in API Gateway": the account
    setting's CloudWatch Logs role ARN is required; UpdateStage without it answers "CloudWatch Logs role ARN
    must be set in account settings to enable logging". moto accepts the stage's log settings regardless.
    """
    source = "API Gateway developer guide: Set up CloudWatch logging for REST APIs (account's CloudWatch role)"

    def applies(call: Call) -> bool:  # only when it refuses, so that later rules see the call otherwise
        return (call.service == "apigateway" and call.operation == "UpdateStage"
                and any(op.get("path", "").startswith("/accessLogSettings/") and op.get("op") != "remove"
                        for op in call.params.get("patchOperations", []))
                and not call.client.get_account().get("cloudwatchRoleArn"))

    return Rule("access logging needs the account's CloudWatch role", source, applies,
                fail_with("BadRequestException",
                          "CloudWatch Logs role ARN must be set in account settings to enable logging"))


def access_log_format_needs_a_request_id() -> Rule:
    """An access log format must carry $context.requestId or $context.extendedRequestId.

    API Gateway developer guide, "CloudWatch log formats for API Gateway": the format must include at least
    one of them; UpdateStage refuses any other. moto stores any format.
    """
    source = "API Gateway developer guide: access log format must include $context.requestId or extendedRequestId"

    def applies(call: Call) -> bool:
        return call.service == "apigateway" and call.operation == "UpdateStage" and any(
            op.get("path") == "/accessLogSettings/format"
            and "$context.requestId" not in (op.get("value") or "")
            and "$context.extendedRequestId" not in (op.get("value") or "")
            for op in call.params.get("patchOperations", []))

    return Rule("access log format needs a request id", source, applies,
                fail_with("BadRequestException", "Access Log format must include at least $context.requestId "
                                                 "or $context.extendedRequestId"))


def new_role_not_yet_usable_by_api_gateway(times: int = 2) -> Rule:
    """UpdateAccount naming a role made seconds ago fails until IAM has propagated it.

    terraform-provider-aws internal/service/apigateway/account.go retries UpdateAccount on "The role ARN
    does not have required permissions set to API Gateway" for IAM's propagation time. moto accepts at once.
    """
    source = "terraform-provider-aws internal/service/apigateway/account.go (retry on IAM propagation)"
    failures = {"left": times}

    def applies(call: Call) -> bool:
        return (call.service == "apigateway" and call.operation == "UpdateAccount"
                and any(op.get("value") for op in call.params.get("patchOperations", [])))

    def answer(call: Call) -> dict:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise aws_error(call.operation, "BadRequestException",
                            "The role ARN does not have required permissions set to API Gateway")
        return call.send()

    return Rule(f"a new role is refused by UpdateAccount {times} times", source, applies, answer)


def delivery_parts_in_use_cannot_be_deleted() -> Rule:
    """A delivery source or destination that a delivery still uses cannot be deleted.

    CloudWatch Logs API reference, DeleteDeliverySource / DeleteDeliveryDestination: "You can't delete a
    delivery source [destination] if any current deliveries are associated with it." moto deletes it and
    leaves the delivery dangling.
    """
    source = "CloudWatch Logs API reference: DeleteDeliverySource, DeleteDeliveryDestination"

    def answer(call: Call) -> dict:
        deliveries = call.client.describe_deliveries().get("deliveries", [])
        name = call.params["name"]
        if call.operation == "DeleteDeliverySource":
            used = any(d.get("deliverySourceName") == name for d in deliveries)
        else:
            used = any(d.get("deliveryDestinationArn", "").endswith(f":delivery-destination:{name}")
                       for d in deliveries)
        if used:
            raise aws_error(call.operation, "ConflictException", f"{name} is in use by a delivery")
        return call.send()

    return Rule("delivery source or destination in use cannot be deleted", source,
                operation("logs", "DeleteDeliverySource", "DeleteDeliveryDestination"), answer)


def request_logging_rules() -> list[Rule]:
    """The rules above together: AWS's behaviour for every call the request logs make."""
    return [access_logging_needs_the_account_role(), access_log_format_needs_a_request_id(),
            new_role_not_yet_usable_by_api_gateway(), delivery_parts_in_use_cannot_be_deleted()]
