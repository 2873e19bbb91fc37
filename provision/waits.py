"""The only retry and wait code: named predicates, bounded, visible, sleep injectable.

Three kinds of waiting, each bounded in attempts and in time:
- transient AWS errors (throttling, 5xx, dropped connections) are retried for
  every call through a botocore ``needs-retry`` hook, with exponential backoff
  and full jitter; nothing else is retried there;
- eventual consistency (a new role Lambda cannot assume yet, network interfaces
  still being released, ...) is retried by ``retry_while`` for the calls that
  name it, saying what is awaited;
- slow resources (a function becoming Active, a distribution Deployed, a
  certificate ISSUED) are polled by ``wait_until``;
- API Gateway's fixed control-plane quotas (``DeleteRestApi`` 1 per 30 s, ...)
  are waited out by ``within_quota``, as long as the quota requires and
  ``Retry-After`` asks: the transient hook leaves those throttles to it, since
  its backoff (about 15 s in all) is shorter than the quota.
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable, TypeVar, cast

from botocore.exceptions import ClientError, ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
)

from .aws_errors import (
    LIMIT_EXCEEDED_EXCEPTION,
    RESOURCE_NOT_READY_EXCEPTION,
    THROTTLE_CODES,
    TOO_MANY_REQUESTS_EXCEPTION,
    TRANSIENT_CODES,
)
from .errors import DeployError, describe, error_code, is_code

T = TypeVar("T")

CONNECTION_ERRORS = (ConnectionClosedError, EndpointConnectionError, ConnectTimeoutError,
                     ReadTimeoutError, ConnectionResetError)
# The request reached AWS and the answer did not come back: AWS may have acted on it.
ANSWER_LOST_ERRORS = (ConnectionClosedError, ReadTimeoutError, ConnectionResetError)

TRANSIENT_MAX_ATTEMPTS = 6
TRANSIENT_MAX_SECONDS = 90.0
TRANSIENT_BASE_DELAY = 0.5
TRANSIENT_MAX_DELAY = 20.0
# 5xx answers that a repeat of the call does not mend: Lambda's own recovery of an Inactive
# function's network interfaces ends it (the function step waits for that instead).
NOT_TRANSIENT_CODES = frozenset({RESOURCE_NOT_READY_EXCEPTION})

# API Gateway's control-plane quotas that are fixed per account and cannot be raised, in seconds
# between calls ("Amazon API Gateway quotas": DeleteRestApi 1 request every 30 seconds per account, ...).
API_GATEWAY_QUOTAS = {"DeleteRestApi": 30.0, "UpdateUsagePlan": 20.0, "UpdateAccount": 20.0, "CreateDeployment": 5.0,
                      "CreateRestApi": 3.0}
QUOTA_TIMEOUT = 5 * 60.0  # ten DeleteRestApi slots: other stacks' teardowns may be queued for the same quota
# API Gateway answers a call past its quota with 429 TooManyRequestsException or LimitExceededException,
# both carrying retryAfterSeconds (API Gateway API reference, Errors).
QUOTA_THROTTLES = frozenset({TOO_MANY_REQUESTS_EXCEPTION, LIMIT_EXCEEDED_EXCEPTION})


def is_transient(response: Any, exception: BaseException | None) -> bool:
    """Throttling, a 5xx or a dropped connection: worth the same call again."""
    if exception is not None:
        return isinstance(exception, CONNECTION_ERRORS)
    if response is None:
        return False
    http, parsed = response
    code = parsed.get("Error", {}).get("Code")
    if code in NOT_TRANSIENT_CODES:
        return False
    return http.status_code >= 500 or code in TRANSIENT_CODES


def _paced_by_quota(operation: Any, response: Any) -> bool:
    """A throttle of an operation under a fixed quota: ``within_quota`` waits for it, not the hook."""
    return (getattr(operation, "name", None) in API_GATEWAY_QUOTAS and response is not None
            and response[1].get("Error", {}).get("Code") in QUOTA_THROTTLES)


def may_have_acted(response: Any, exception: BaseException | None) -> bool:
    """A transient failure after which AWS may have done what was asked: the connection dropped once
    the request was sent, or a 5xx that is not a throttle. The SDK "cannot determine the state of the
    API call on which the connection was reset" (aws/aws-sdk-go#3027), so such a call is not sent again
    blindly; a throttle, or a connection never made, is refused before AWS acts."""
    if exception is not None:
        return isinstance(exception, ANSWER_LOST_ERRORS)
    if response is None:
        return False
    http, parsed = response
    return http.status_code >= 500 and parsed.get("Error", {}).get("Code") not in THROTTLE_CODES


def transient_retry_hook(sleep: Callable[[float], None], on_retry: Callable[[str], None],
                         changing: Callable[[str], bool] = lambda operation: False):
    """A botocore needs-retry handler: full-jitter backoff for transient errors only.

    The hook sleeps itself (so tests can inject ``sleep``) and returns 0, which
    tells botocore to send the request again at once. A changing call whose
    failure may have followed AWS acting on it is not sent again here: the
    error goes up to ``after_lost_answer``, which looks before sending again.
    """

    def needs_retry(response=None, attempts=1, caught_exception=None, request_dict=None,
                    operation=None, **_) -> float | None:
        if not is_transient(response, caught_exception) or _paced_by_quota(operation, response):
            return None
        if changing(getattr(operation, "name", "")) and may_have_acted(response, caught_exception):
            return None
        context = request_dict.setdefault("context", {}) if request_dict is not None else {}
        started = context.setdefault("rds_edge_first_attempt", time.monotonic())
        if attempts >= TRANSIENT_MAX_ATTEMPTS or time.monotonic() - started > TRANSIENT_MAX_SECONDS:
            return None
        delay = random.uniform(0, min(TRANSIENT_MAX_DELAY, TRANSIENT_BASE_DELAY * 2 ** (attempts - 1)))
        asked = _asked_to_wait(response)
        if asked is not None:  # what AWS asked for (API Gateway's retryAfterSeconds), within the hook's bound
            delay = min(max(delay, asked), TRANSIENT_MAX_DELAY)
        reason = (type(caught_exception).__name__ if caught_exception is not None
                  else response[1].get("Error", {}).get("Code") or f"HTTP {response[0].status_code}")
        on_retry(f"{getattr(operation, 'name', 'AWS call')}: {reason}, retrying "
                 f"(attempt {attempts + 1} of {TRANSIENT_MAX_ATTEMPTS})")
        sleep(delay)
        return 0

    return needs_retry


def _asked_to_wait(response: Any) -> float | None:
    """The seconds a throttled answer asks to wait (``retryAfterSeconds`` or ``Retry-After``), if any."""
    if response is None:
        return None
    http, parsed = response
    headers = {k.lower(): v for k, v in getattr(http, "headers", {}).items()}
    return _seconds_asked({**parsed, "ResponseMetadata": {"HTTPHeaders": headers}})


def _lost(exc: BaseException) -> bool:
    """``may_have_acted`` for an error raised to the caller."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 and error_code(exc) not in THROTTLE_CODES | NOT_TRANSIENT_CODES
    return isinstance(exc, ANSWER_LOST_ERRORS)


def after_lost_answer(send: Callable[[], T], *, operation: str, resend: bool, done_codes: tuple[str, ...],
                      find: Callable[[], Any] | None, sleep: Callable[[float], None],
                      on_retry: Callable[[str], None]) -> T:
    """One changing call, made so that a lost answer never makes a second resource.

    When the answer may be lost (``_lost``): wait (backoff), then look with ``find``, which returns
    what the lost call made, or None. Found, that is the answer. Not found, the call is sent again;
    a call that could make a second resource (``resend`` False) is never sent again without that
    look. A resend answered with one of ``done_codes`` (EntityAlreadyExists, a delete's NotFound,
    ...) means the lost attempt had done it. Bounded like every transient retry.
    """
    attempt = 1
    while True:
        try:
            return send()
        except (ClientError, *ANSWER_LOST_ERRORS) as exc:
            if attempt > 1 and done_codes and is_code(exc, *done_codes):
                return _already_done(operation, exc, find)
            if not _lost(exc) or attempt >= TRANSIENT_MAX_ATTEMPTS:
                raise
            reason = error_code(exc) or type(exc).__name__
            if find is None and not resend:
                raise DeployError(f"the answer to {operation} was lost ({reason}) and what it may have made "
                                  "cannot be looked up here; run the same command again, which finds it") from exc
        sleep(random.uniform(0, min(TRANSIENT_MAX_DELAY, TRANSIENT_BASE_DELAY * 2 ** (attempt - 1))))
        found = find() if find is not None else None
        if found is not None:
            on_retry(f"{operation}: answer lost ({reason}); found what it made, not sending it again")
            return found
        attempt += 1
        on_retry(f"{operation}: answer lost ({reason}); " + ("nothing found, " if find else "")
                 + f"sending it again (attempt {attempt} of {TRANSIENT_MAX_ATTEMPTS})")


def _already_done(operation: str, exc: ClientError, find: Callable[[], Any] | None) -> Any:
    """The lost attempt did it: a create's answer is what ``find`` finds; a delete or an update has none."""
    if find is None:
        if operation.startswith("Create"):
            raise exc  # what it made cannot be looked up here: the error says it exists
        return {}
    found = find()
    if found is None:
        raise exc
    return found


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _progress(ctx, what: str, timeout: float) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        ctx.out.waiting(f"waiting for {what} ({_clock(state.seconds_since_start or 0)}, "
                        f"at most {_clock(timeout)})")
    return before_sleep


def wait_until(ctx, what: str, check: Callable[[], T | None], *, timeout: float, interval: float = 5.0) -> T:
    """Poll ``check`` until it returns something truthy; give up after ``timeout`` seconds.

    The spinner says what is awaited and for how long. On giving up, the run
    stops with a message saying that re-running picks the wait up again.
    """
    retrying = Retrying(
        retry=retry_if_result(lambda result: not result),
        stop=stop_after_delay(timeout) | stop_after_attempt(int(timeout / interval) + 1),
        wait=wait_fixed(interval),
        sleep=ctx.sleep,
        before_sleep=_progress(ctx, what, timeout),
        retry_error_callback=lambda state: _gave_up(what, timeout, None),
    )
    return cast(T, retrying(check))  # only a truthy result ends the retries


def retry_while(ctx, what: str, call: Callable[[], T], retryable: Callable[[BaseException], bool],
                *, timeout: float, interval: float = 2.0, max_interval: float = 15.0) -> T:
    """Call ``call``, retrying while it fails with an error ``retryable`` names.

    For eventual consistency only: each caller names the one error that means
    "not yet" and says what it waits for. Any other error fails at once.
    """
    retrying = Retrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_delay(timeout) | stop_after_attempt(int(timeout / interval) + 1),
        wait=wait_exponential(multiplier=interval, max=max_interval),
        sleep=ctx.sleep,
        before_sleep=_progress(ctx, what, timeout),
        retry_error_callback=lambda state: _gave_up(what, timeout, _failure(state)),
    )
    return retrying(call)


def retry_after(exc: BaseException) -> float | None:
    """The seconds AWS asked for in ``Retry-After`` (API Gateway: ``retryAfterSeconds``), if it did."""
    return _seconds_asked(getattr(exc, "response", None) or {})


def _seconds_asked(response: dict) -> float | None:
    value = response.get("retryAfterSeconds") or (
        response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("retry-after"))
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: not sent by API Gateway; the quota's own interval serves
        return None


def within_quota(ctx, call: Callable[..., T], /, **kwargs) -> T:
    """``call(**kwargs)`` for an operation under a fixed API Gateway quota, waiting out its throttles.

    Each wait is what ``Retry-After`` asks, else the quota's interval, and is said on the spinner;
    in all at most ``QUOTA_TIMEOUT`` (slept or elapsed), then the run stops saying how to go on.
    """
    def throttled(exc: BaseException) -> bool:
        return error_code(exc) in QUOTA_THROTTLES and getattr(exc, "operation_name", None) in API_GATEWAY_QUOTAS

    def pause(state: RetryCallState) -> float:
        exc = _failure(state)
        asked = retry_after(exc)
        wanted = asked if asked is not None else API_GATEWAY_QUOTAS[exc.operation_name]
        return min(wanted, QUOTA_TIMEOUT - state.idle_for)

    def say(state: RetryCallState) -> None:
        operation = _failure(state).operation_name
        every = API_GATEWAY_QUOTAS[operation]
        ctx.out.waiting(f"waiting for API Gateway's {operation} quota (1 call per {every:g} s per account, "
                        f"fixed): again in {_clock(_next_sleep(state))} ({_clock(state.idle_for)} waited, "
                        f"at most {_clock(QUOTA_TIMEOUT)})")

    elapsed = stop_after_delay(QUOTA_TIMEOUT)

    def over(state: RetryCallState) -> bool:  # QUOTA_TIMEOUT elapsed, or slept (a test's sleep takes no time)
        return elapsed(state) or state.idle_for >= QUOTA_TIMEOUT

    retrying = Retrying(
        retry=retry_if_exception(throttled),
        stop=over,
        wait=pause,
        sleep=ctx.sleep,
        before_sleep=say,
        retry_error_callback=lambda state: _gave_up(
            f"API Gateway's {_failure(state).operation_name} quota", QUOTA_TIMEOUT, _failure(state)),
    )
    return retrying(call, **kwargs)


def _next_sleep(state: RetryCallState) -> float:
    return state.next_action.sleep if state.next_action else 0.0


def _failure(state: RetryCallState) -> Any:
    """The error of the attempt just made: tenacity calls these hooks only after a failed attempt."""
    assert state.outcome is not None
    return state.outcome.exception()


def _gave_up(what: str, timeout: float, last: BaseException | None):
    detail = f" (last error: {describe(last)})" if last is not None else ""
    raise DeployError(f"gave up waiting for {what} after {_clock(timeout)}{detail}; "
                      "run the same command again to keep waiting")
