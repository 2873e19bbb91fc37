"""One retry policy for transient AWS errors; nothing else is retried. Errors are injected below botocore's
parser (before-send), so the real parsing and retry path runs; the injected sleep never waits."""
import json

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from provision import waits
from tests.support import aws_error, failing, quiet_context, response

pytestmark = pytest.mark.lenient("operator_policy", reason="the retry machinery, exercised with calls no step "
                                                          "makes (iam:ListRoles, ...)")

XML_ERROR = ("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected</Message></Error>"
             "</ErrorResponse>")
EC2_ERROR = "<Response><Errors><Error><Code>{code}</Code><Message>injected</Message></Error></Errors></Response>"

# (error class, service, operation, call, how the failure looks on the wire)
TRANSIENT = [
    ("Throttling", "iam", "ListRoles", lambda c: c.list_roles(),
     lambda: response(400, XML_ERROR.format(code="Throttling"))),
    ("TooManyRequestsException", "lambda", "ListFunctions", lambda c: c.list_functions(),
     lambda: response(429, '{"message": "Rate exceeded"}', {"x-amzn-ErrorType": "TooManyRequestsException"})),
    ("RequestLimitExceeded", "ec2", "DescribeVpcs", lambda c: c.describe_vpcs(),
     lambda: response(503, EC2_ERROR.format(code="RequestLimitExceeded"))),
    ("HTTP 500", "apigateway", "GetRestApis", lambda c: c.get_rest_apis(),
     lambda: response(500, '{"message": "Internal server error"}')),
    ("connection reset", "iam", "ListRoles", lambda c: c.list_roles(),
     lambda: (_ for _ in ()).throw(ConnectionClosedError(endpoint_url="https://iam.amazonaws.com"))),
]


@pytest.fixture
def plain_cfg(load_config):
    """These tests only need clients: nothing seeded."""
    return load_config()


@pytest.mark.parametrize("name, service, operation, call, failure", TRANSIENT, ids=[t[0] for t in TRANSIENT])
def test_transient_errors_are_retried_with_backoff(plain_cfg, name, service, operation, call, failure):
    ctx = quiet_context(plain_cfg)
    client = ctx.client(service)
    attempts = failing(client, operation, 3, failure)
    call(client)
    assert len(attempts) == 4
    assert len(ctx.sleep) == 3
    assert all(0 <= s <= waits.TRANSIENT_MAX_DELAY for s in ctx.sleep)
    assert ctx.clients.calls.total == 1  # retries are not separate calls


@pytest.mark.parametrize("name, service, operation, call, failure", TRANSIENT, ids=[t[0] for t in TRANSIENT])
def test_transient_retries_are_bounded(plain_cfg, name, service, operation, call, failure):
    ctx = quiet_context(plain_cfg)
    client = ctx.client(service)
    attempts = failing(client, operation, 1000, failure)
    with pytest.raises((ClientError, ConnectionClosedError)):
        call(client)
    assert len(attempts) == waits.TRANSIENT_MAX_ATTEMPTS


def test_backoff_grows_exponentially_with_full_jitter(plain_cfg, monkeypatch):
    monkeypatch.setattr(waits.random, "uniform", lambda low, high: high)
    ctx = quiet_context(plain_cfg)
    failing(ctx.client("iam"), "ListRoles", 4, lambda: response(400, XML_ERROR.format(code="Throttling")))
    ctx.client("iam").list_roles()
    assert ctx.sleep == [0.5, 1.0, 2.0, 4.0]


def test_a_validation_error_fails_at_once(plain_cfg):
    ctx = quiet_context(plain_cfg)
    attempts = failing(ctx.client("lambda"), "ListFunctions", 1000, lambda: response(
        400, '{"message": "bad value"}', {"x-amzn-ErrorType": "InvalidParameterValueException"}))
    with pytest.raises(ClientError) as err:
        ctx.client("lambda").list_functions()
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert len(attempts) == 1
    assert ctx.sleep == []


def test_retry_while_retries_only_the_named_error_and_says_what_it_awaits(plain_cfg):
    ctx = quiet_context(plain_cfg)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise aws_error("DeleteCertificate", "ResourceInUseException", "in use")
        return "done"

    result = waits.retry_while(ctx, "the distribution to release the certificate", flaky,
                               lambda exc: "ResourceInUse" in str(exc), timeout=60)
    assert result == "done" and len(calls) == 3
    assert "waiting for the distribution to release the certificate" in ctx.out.console.file.getvalue()


def test_wait_until_gives_up_with_a_resumable_message(plain_cfg):
    ctx = quiet_context(plain_cfg)
    from provision.errors import DeployError
    with pytest.raises(DeployError, match="gave up waiting for the thing after 1m00s; run the same command again"):
        waits.wait_until(ctx, "the thing", lambda: False, timeout=60, interval=5)
    assert len(ctx.sleep) == 12


# What botocore's standard retry mode also takes for throttles (botocore/retries/standard.py), each as its
# service answers it: API Gateway's LimitExceededException carries retryAfterSeconds (429).
STANDARD_THROTTLES = [
    ("apigateway", "GetRestApis", lambda c: c.get_rest_apis(),
     lambda: response(429, '{"message": "Rate exceeded", "retryAfterSeconds": "4"}',
                      {"x-amzn-ErrorType": "LimitExceededException", "Retry-After": "4"})),
    *(("dynamodb", "ListTables", lambda c: c.list_tables(),
       lambda code=code: response(400, json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                                                   "message": "throttled"})))
      for code in ("ProvisionedThroughputExceededException", "TransactionInProgressException",
                   "LimitExceededException")),
    ("ec2", "DescribeVpcs", lambda c: c.describe_vpcs(),
     lambda: response(503, EC2_ERROR.format(code="EC2ThrottledException"))),
]


@pytest.mark.parametrize("service, operation, call, failure", STANDARD_THROTTLES,
                         ids=["apigateway LimitExceededException", "ProvisionedThroughputExceededException",
                              "TransactionInProgressException", "dynamodb LimitExceededException",
                              "EC2ThrottledException"])
def test_botocores_standard_throttles_are_retried(plain_cfg, service, operation, call, failure):
    ctx = quiet_context(plain_cfg)
    client = ctx.client(service)
    attempts = failing(client, operation, 2, failure)
    call(client)
    assert len(attempts) == 3 and len(ctx.sleep) == 2


def test_the_wait_api_gateway_asks_for_is_honoured(plain_cfg, monkeypatch):
    monkeypatch.setattr(waits.random, "uniform", lambda low, high: 0.0)  # the backoff alone would not wait
    ctx = quiet_context(plain_cfg)
    client = ctx.client("apigateway")
    failing(client, "GetRestApis", 1, STANDARD_THROTTLES[0][3])
    client.get_rest_apis()
    assert ctx.sleep == [4.0]
