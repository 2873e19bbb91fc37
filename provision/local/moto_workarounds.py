"""Where moto 5.2.5 differs from AWS in a way that matters to a run against it, and the fix for that run.

moto evaluates only StringEquals in a bucket policy's conditions and takes any
other operator as met, so the mail bucket's "Deny unless TLS" statement
(aws:SecureTransport false) denies every object call. boto3 calls over https,
where AWS finds aws:SecureTransport true and that statement does not apply:
``bucket_policy_without_tls_deny`` evaluates the policy without it, as AWS would
for these requests. Used by the tests and the AWS-call recorder, never by the
toolkit's own code.
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
