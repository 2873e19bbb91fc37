"""The only retry and wait code: named predicates, bounded, visible, sleep injectable.

Three kinds of waiting, each bounded in attempts and in time:
- transient AWS errors (throttling, 5xx, dropped connections) are retried for
  every call through a botocore ``needs-retry`` hook, with exponential backoff
  and full jitter; nothing else is retried there;
- eventual consistency (a new role Lambda cannot assume yet, network interfaces
  still being released, ...) is retried by ``retry_while`` for the calls that
  name it, saying what is awaited;
- slow resources (a function becoming Active, a distribution Deployed, a
  certificate ISSUED) are polled by ``wait_until``.
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable, TypeVar, cast

from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
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

from .errors import DeployError, describe

T = TypeVar("T")

TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "SlowDown",
    "PriorRequestNotComplete", "InternalError", "InternalFailure", "InternalServerError",
    "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
})
CONNECTION_ERRORS = (ConnectionClosedError, EndpointConnectionError, ConnectTimeoutError,
                     ReadTimeoutError, ConnectionResetError)

TRANSIENT_MAX_ATTEMPTS = 6
TRANSIENT_MAX_SECONDS = 90.0
TRANSIENT_BASE_DELAY = 0.5
TRANSIENT_MAX_DELAY = 20.0


def is_transient(response: Any, exception: BaseException | None) -> bool:
    """Throttling, a 5xx or a dropped connection: worth the same call again."""
    if exception is not None:
        return isinstance(exception, CONNECTION_ERRORS)
    if response is None:
        return False
    http, parsed = response
    if http.status_code >= 500:
        return True
    return parsed.get("Error", {}).get("Code") in TRANSIENT_CODES


def transient_retry_hook(sleep: Callable[[float], None], on_retry: Callable[[str], None]):
    """A botocore needs-retry handler: full-jitter backoff for transient errors only.

    The hook sleeps itself (so tests can inject ``sleep``) and returns 0, which
    tells botocore to send the request again at once.
    """

    def needs_retry(response=None, attempts=1, caught_exception=None, request_dict=None,
                    operation=None, **_) -> float | None:
        if not is_transient(response, caught_exception):
            return None
        context = request_dict.setdefault("context", {}) if request_dict is not None else {}
        started = context.setdefault("rds_edge_first_attempt", time.monotonic())
        if attempts >= TRANSIENT_MAX_ATTEMPTS or time.monotonic() - started > TRANSIENT_MAX_SECONDS:
            return None
        delay = random.uniform(0, min(TRANSIENT_MAX_DELAY, TRANSIENT_BASE_DELAY * 2 ** (attempts - 1)))
        reason = (type(caught_exception).__name__ if caught_exception is not None
                  else response[1].get("Error", {}).get("Code") or f"HTTP {response[0].status_code}")
        on_retry(f"{getattr(operation, 'name', 'AWS call')}: {reason}, retrying "
                 f"(attempt {attempts + 1} of {TRANSIENT_MAX_ATTEMPTS})")
        sleep(delay)
        return 0

    return needs_retry


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
        retry_error_callback=lambda state: _gave_up(what, timeout,
                                                    state.outcome.exception() if state.outcome else None),
    )
    return retrying(call)


def _gave_up(what: str, timeout: float, last: BaseException | None):
    detail = f" (last error: {describe(last)})" if last is not None else ""
    raise DeployError(f"gave up waiting for {what} after {_clock(timeout)}{detail}; "
                      "run the same command again to keep waiting")
