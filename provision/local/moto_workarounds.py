"""Where moto 5.2.5 differs from AWS in a way that matters to a run against it, and the fix for that run.

moto evaluates only StringEquals in a bucket policy's conditions and takes any
other operator as met, so the mail bucket's "Deny unless TLS" statement
(aws:SecureTransport false) denies every object call. boto3 calls over https,
where AWS finds aws:SecureTransport true and that statement does not apply:
``bucket_policy_without_tls_deny`` evaluates the policy without it, as AWS would
for these requests. Used by the tests and the AWS-call recorder, never by the
toolkit's own code.

moto 5.2.5 has no SES ``DeleteReceiptRule`` (NotImplementedError), which a
stack's teardown calls to take its rule out of the shared receipt rule set:
``add_delete_receipt_rule`` adds it, as the SES API reference describes it
(RuleSetDoesNotExist for a missing set; a missing rule is no error), for the
emulator (--local) and the tests.

moto 5.2.5's CloudWatch Logs ``PutMetricFilter`` appends a second filter of a
name the log group already has, where AWS "creates or updates" it (CloudWatch
Logs API reference, PutMetricFilter): a call sent again after a lost answer
would leave two. ``put_metric_filter_replaces`` makes it replace the filter of
that name, for the emulator and the tests. ``fill_gaps`` applies both fills.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

TLS_ONLY = {"Bool": {"aws:SecureTransport": "false"}}


def get_permission_without_tls_deny(original):
    def get_permission(self, action, resource):
        from moto.iam.access_control import IAMPolicy

        if self.policy is None:
            return original(self, action, resource)
        policy = json.loads(self.policy)
        policy["Statement"] = [s for s in policy["Statement"] if s.get("Condition") != TLS_ONLY]
        return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)
    return get_permission


@contextmanager
def bucket_policy_without_tls_deny() -> Iterator[None]:
    from moto.s3.models import FakeBucket

    original = FakeBucket.get_permission
    setattr(FakeBucket, "get_permission", get_permission_without_tls_deny(original))  # a patch, for this block
    try:
        yield
    finally:
        setattr(FakeBucket, "get_permission", original)


def add_delete_receipt_rule() -> None:
    """Give moto's SES the DeleteReceiptRule operation it lacks (idempotent)."""
    from moto.core.responses import EmptyResult
    from moto.ses.exceptions import RuleSetDoesNotExist
    from moto.ses.models import SESBackend
    from moto.ses.responses import EmailResponse

    if hasattr(EmailResponse, "delete_receipt_rule"):
        return

    def backend_delete(self, rule_set_name: str, rule_name: str) -> None:
        rule_set = self.receipt_rule_set.get(rule_set_name)
        if rule_set is None:
            raise RuleSetDoesNotExist(f"Rule set does not exist: {rule_set_name}")
        rule_set.rules = [rule for rule in rule_set.rules if rule["Name"] != rule_name]

    def respond(self):
        self.backend.delete_receipt_rule(self._get_param("RuleSetName"), self._get_param("RuleName"))
        return EmptyResult()

    setattr(SESBackend, "delete_receipt_rule", backend_delete)
    setattr(EmailResponse, "delete_receipt_rule", respond)


def put_metric_filter_replaces() -> None:
    """moto's PutMetricFilter replaces the log group's filter of that name, as AWS does (idempotent)."""
    from moto.logs.metric_filters import MetricFilters

    if getattr(MetricFilters.add_filter, "replaces", False):
        return
    original = MetricFilters.add_filter

    def add_filter(self, filter_name, filter_pattern, log_group_name, metric_transformations):
        self.metric_filters = [f for f in self.metric_filters
                               if (f["filterName"], f["logGroupName"]) != (filter_name, log_group_name)]
        original(self, filter_name, filter_pattern, log_group_name, metric_transformations)

    add_filter.replaces = True  # type: ignore[attr-defined]
    setattr(MetricFilters, "add_filter", add_filter)


def fill_gaps() -> None:
    """Every operation moto 5.2.5 lacks or gets wrong that the stack's calls meet, filled as AWS does it."""
    add_delete_receipt_rule()
    put_metric_filter_replaces()
