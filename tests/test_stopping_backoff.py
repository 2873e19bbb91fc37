"""The backoffs between AWS calls end when the run stops (Ctrl-C, or another step failed: ``Clients.stopping``),
raising ``Stopped``, as a step's own waits do (provision/runner.py): the lost-answer backoff before looking for
what a changing call made (``waits.after_lost_answer``) and the transient-error backoff (``transient_retry_hook``)
would otherwise sleep on, up to 20 s a time, before the next call noticed. Nothing is sent again once stopped:
what the lost call made is found by the next run."""
import threading
import time

import boto3
import pytest

from provision import waits
from provision.clients import make_clients
from provision.errors import Stopped
from tests.aws_rules import Rule, lost_answers, operation
from tests.support import Sleeps, failing, response

REGION = "eu-west-1"
GROUP = "/aws/lambda/demo-api"


@pytest.fixture
def long_backoff(monkeypatch):
    """Every backoff an hour long: only a stop can end it within the test."""
    monkeypatch.setattr(waits.random, "uniform", lambda low, high: 3600.0)


def lost_then(then):
    """CreateLogGroup's answer lost after AWS made the group; ``then()`` runs as the answer is lost."""
    lost = lost_answers("reset", {"CreateLogGroup"})

    def answer(call):
        try:
            return lost.answer(call)
        finally:
            then()
    return Rule("lost answer, then something", lost.source, operation("logs", "CreateLogGroup"), answer)


def groups():
    return [g["logGroupName"] for g in boto3.client("logs", region_name=REGION).describe_log_groups()["logGroups"]]


def test_a_stop_during_the_lost_answer_backoff_ends_it_at_once(aws, aws_rules, long_backoff):
    """The real sleep: the backoff (an hour here) waits on the run's stopping event instead."""
    clients = make_clients(boto3.Session(), sleep=time.sleep, on_retry=lambda text: None)
    answer_lost = threading.Event()
    rule = aws_rules(lost_then(answer_lost.set))
    raised: list[BaseException] = []

    def create() -> None:
        try:
            clients("logs", REGION).create_log_group(logGroupName=GROUP)
        except BaseException as exc:  # noqa: BLE001 -- the thread hands what it raised to the test
            raised.append(exc)

    thread = threading.Thread(target=create, daemon=True)  # daemon: were the backoff not cut, it sleeps on
    thread.start()
    assert answer_lost.wait(30)
    clients.stopping.set()  # Ctrl-C, or another step failed, while this one backs off
    thread.join(60)
    assert not thread.is_alive(), "the lost-answer backoff slept on after the run stopped"
    assert len(raised) == 1 and isinstance(raised[0], Stopped)
    assert len(rule.seen) == 1  # not sent again
    assert groups() == [GROUP]  # AWS made it: the next run finds it


def test_a_stop_before_the_lost_answer_backoff_sleeps_nothing_and_sends_nothing_again(aws, aws_rules):
    """An injected sleep (a test's) is not called once the run stops."""
    sleeps = Sleeps()
    clients = make_clients(boto3.Session(), sleep=sleeps, on_retry=lambda text: None)
    rule = aws_rules(lost_then(clients.stopping.set))  # the run stops while the call is out
    with pytest.raises(Stopped):
        clients("logs", REGION).create_log_group(logGroupName=GROUP)
    assert sleeps == [] and len(rule.seen) == 1
    assert groups() == [GROUP]


def test_a_stop_during_a_transient_error_ends_its_backoff(aws):
    """The transient hook's backoff (a 503 on a read) stops too: no sleep, and the call is not sent again."""
    sleeps = Sleeps()
    clients = make_clients(boto3.Session(), sleep=sleeps, on_retry=lambda text: None)
    apigw = clients("apigateway", REGION)

    def unavailable_and_the_run_stops():
        clients.stopping.set()
        return response(503, '{"message": "Service Unavailable"}', {"x-amzn-ErrorType": "ServiceUnavailableException"})

    attempts = failing(apigw, "GetRestApis", 1, unavailable_and_the_run_stops)
    with pytest.raises(Stopped):
        apigw.get_rest_apis()
    assert len(attempts) == 1 and sleeps == []

