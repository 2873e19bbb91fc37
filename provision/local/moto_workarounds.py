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
that name, for the emulator and the tests.

moto 5.2.5's RDS ``CreateDBProxy`` reads ``Auth`` unconditionally (a KeyError
without it), where AWS makes it optional once ``DefaultAuthScheme`` is
``IAM_AUTH`` (RDS API reference, CreateDBProxy; RDS user guide, "Configuring
IAM authentication for RDS Proxy"), and it drops ``DefaultAuthScheme``, so
DescribeDBProxies never shows it. ``db_proxy_default_auth_scheme`` takes a
missing ``Auth`` as none and keeps the scheme on the proxy (``NONE`` when not
given, as AWS answers).

moto 5.2.5's CloudFront has no cache-policy API (Create/Get/List/Update/DeleteCachePolicy;
getmoto/moto's moto/cloudfront/urls.py routes none of them), though a distribution keeps the
CachePolicyId it is given. ``add_cache_policies`` adds the five as the CloudFront API reference
describes them: names unique in the account (CachePolicyAlreadyExists), an ETag per version that
UpdateCachePolicy and DeleteCachePolicy must name (InvalidIfMatchVersion when missing,
PreconditionFailed when stale), NoSuchCachePolicy, and CachePolicyInUse while any distribution's
behaviour names the policy (DeleteCachePolicy: "You cannot delete a cache policy if it's attached to
a cache behavior"). It holds only custom policies: ListCachePolicies Type=managed answers none.
``fill_gaps`` applies every fill.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

from ..aws_errors import (
    CACHE_POLICY_ALREADY_EXISTS,
    CACHE_POLICY_IN_USE,
    INVALID_IF_MATCH_VERSION,
    NO_SUCH_CACHE_POLICY,
    PRECONDITION_FAILED,
)

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


def db_proxy_default_auth_scheme() -> None:
    """moto's CreateDBProxy without ``Auth`` and with ``DefaultAuthScheme``, as AWS takes them (idempotent)."""
    from moto.rds.models import DBProxy
    from moto.rds.responses import RDSResponse

    if getattr(RDSResponse.create_db_proxy, "keeps_scheme", False):
        return
    original = RDSResponse.create_db_proxy

    def create_db_proxy(self):
        self.params.setdefault("Auth", [])
        result = original(self)
        proxy = self.backend.db_proxies[self.params["DBProxyName"]]
        proxy.default_auth_scheme = self.params.get("DefaultAuthScheme", "NONE")
        return result

    create_db_proxy.keeps_scheme = True  # type: ignore[attr-defined]
    setattr(RDSResponse, "create_db_proxy", create_db_proxy)
    setattr(DBProxy, "default_auth_scheme", "NONE")  # a proxy made before the fill


def _cache_policy_error(code: str) -> Exception:
    from moto.cloudfront.exceptions import CloudFrontException

    return CloudFrontException(code, CACHE_POLICY_ERRORS[code])


CACHE_POLICY_ERRORS = {  # the CloudFront API reference's wording
    NO_SUCH_CACHE_POLICY: "The cache policy does not exist.",
    CACHE_POLICY_ALREADY_EXISTS: "A cache policy with this name already exists.",
    CACHE_POLICY_IN_USE: "Cannot delete the cache policy because it is attached to one or more cache behaviors.",
    INVALID_IF_MATCH_VERSION: "The If-Match version is missing or not valid for the resource.",
    PRECONDITION_FAILED: "The precondition in one or more of the request fields evaluated to false.",
}


def _cache_policies(backend) -> dict:
    """id -> {"CachePolicy": {...}, "ETag": str}, kept on the account's CloudFront backend."""
    if not hasattr(backend, "cache_policies"):
        backend.cache_policies = {}
    return backend.cache_policies


def _held(backend, policy_id: str) -> dict:
    found = _cache_policies(backend).get(policy_id)
    if found is None:
        raise _cache_policy_error(NO_SUCH_CACHE_POLICY)
    return found


def _version(config: dict, policy_id: str) -> dict:
    import uuid
    from datetime import datetime, timezone

    return {"CachePolicy": {"Id": policy_id, "LastModifiedTime": datetime.now(timezone.utc),
                            "CachePolicyConfig": config}, "ETag": uuid.uuid4().hex[:14].upper()}


def _name_free(backend, name: str, policy_id: str | None) -> None:
    if any(p["CachePolicy"]["CachePolicyConfig"]["Name"] == name and key != policy_id
           for key, p in _cache_policies(backend).items()):
        raise _cache_policy_error(CACHE_POLICY_ALREADY_EXISTS)


def _matching(found: dict, if_match: str | None) -> None:
    if not if_match:
        raise _cache_policy_error(INVALID_IF_MATCH_VERSION)
    if if_match != found["ETag"]:
        raise _cache_policy_error(PRECONDITION_FAILED)


def _in_use(backend, policy_id: str) -> bool:
    for distribution in backend.distributions.values():
        config = distribution.distribution_config
        behaviours = [config.DefaultCacheBehavior, *(config.CacheBehaviors.get("Items") or [])]
        if any(getattr(b, "cache_policy_id", None) == policy_id for b in behaviours):
            return True
    return False


def _create_cache_policy(self):
    import uuid

    from moto.core.responses import ActionResult

    config = self._get_param("CachePolicyConfig")
    _name_free(self.backend, config["Name"], None)
    policy_id = str(uuid.uuid4())
    _cache_policies(self.backend)[policy_id] = made = _version(config, policy_id)
    return ActionResult({**made, "Location": f"https://cloudfront.amazonaws.com/2020-05-31/cache-policy/{policy_id}"})


def _get_cache_policy(self):
    from moto.core.responses import ActionResult

    return ActionResult(_held(self.backend, self._get_param("Id")))


def _list_cache_policies(self):
    from moto.core.responses import ActionResult

    items = [] if self._get_param("Type") == "managed" else [
        {"Type": "custom", "CachePolicy": p["CachePolicy"]} for p in _cache_policies(self.backend).values()]
    return ActionResult({"CachePolicyList": {"MaxItems": 100, "Quantity": len(items), "Items": items}})


def _update_cache_policy(self):
    from moto.core.responses import ActionResult

    policy_id, config = self._get_param("Id"), self._get_param("CachePolicyConfig")
    _matching(_held(self.backend, policy_id), self._get_param("IfMatch"))
    _name_free(self.backend, config["Name"], policy_id)
    _cache_policies(self.backend)[policy_id] = made = _version(config, policy_id)
    return ActionResult(made)


def _delete_cache_policy(self):
    from moto.core.responses import EmptyResult

    policy_id = self._get_param("Id")
    _matching(_held(self.backend, policy_id), self._get_param("IfMatch"))
    if _in_use(self.backend, policy_id):
        raise _cache_policy_error(CACHE_POLICY_IN_USE)
    del _cache_policies(self.backend)[policy_id]
    return EmptyResult()


def add_cache_policies() -> None:
    """Give moto's CloudFront the five cache-policy operations it lacks (idempotent)."""
    from moto.cloudfront import urls
    from moto.cloudfront.responses import CloudFrontResponse

    if hasattr(CloudFrontResponse, "create_cache_policy"):
        return
    urls.url_paths["{0}/2020-05-31/cache-policy$"] = CloudFrontResponse.dispatch
    urls.url_paths["{0}/2020-05-31/cache-policy/(?P<cache_policy_id>[^/]+)$"] = CloudFrontResponse.dispatch
    for name, method in (("create_cache_policy", _create_cache_policy), ("get_cache_policy", _get_cache_policy),
                         ("list_cache_policies", _list_cache_policies), ("update_cache_policy", _update_cache_policy),
                         ("delete_cache_policy", _delete_cache_policy)):
        setattr(CloudFrontResponse, name, method)


def fill_gaps() -> None:
    """Every operation moto 5.2.5 lacks or gets wrong that the stack's calls meet, filled as AWS does it."""
    add_delete_receipt_rule()
    put_metric_filter_replaces()
    db_proxy_default_auth_scheme()
    add_cache_policies()
