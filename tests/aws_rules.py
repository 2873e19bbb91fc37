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

from tests.support import aws_error


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
