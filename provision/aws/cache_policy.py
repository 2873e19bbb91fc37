"""The distribution's cache policy when [api] cache_seconds > 0: `<stack>-query-strings`.

The cache key is the query strings the API reads (`key` and `after`, nothing else): an answer
depends on them alone, and a caller cannot split the cache, or reach the database past it, by
adding a query string of its own. No headers and no cookies: CloudFront also sends the cache key's
headers to the origin (CloudFront API reference, CachePolicyHeadersConfig: "included in the cache
key and in requests that CloudFront sends to the origin"), so a managed policy that keys on Host
(UseOriginCacheControlHeaders-QueryStrings does) would hand API Gateway the viewer's Host, which it
answers with 403; that is why the origin request policy is AllViewerExceptHostHeader. The origin
decides how long: MinTTL 0 and DefaultTTL 0 (an answer without Cache-Control, as the API's errors
are, is not kept) and MaxTTL cache_seconds, the API's max-age on its 200s (steps/api.py).

Cache policies take no tags: the stack's is found by its name (unique in the account, CloudFront's
rule) among ListCachePolicies Type=custom, and recognised by its Comment; one with the name and
another comment is not adopted. Removed once the distribution no longer names it (DeleteCachePolicy
answers CachePolicyInUse before that): after the distribution switched to CachingDisabled and that
deployed, or after teardown deleted the distribution.
"""
from __future__ import annotations

from .. import waits
from ..aws_errors import CACHE_POLICY_IN_USE
from ..context import UNKNOWN, Context
from ..errors import DeployError, is_code

QUERY_STRINGS = ("key", "after")  # what the API reads (steps/api.py REQUEST_PARAMETERS)
IN_USE_TIMEOUT = 5 * 60  # a distribution that just stopped naming it, seen so everywhere


def policy_name(stack: str) -> str:
    return f"{stack}-query-strings"


def comment(stack: str) -> str:
    return f"rds-edge-api stack {stack}: the API's query strings, TTL from its Cache-Control"


def desired(ctx: Context) -> dict:
    return desired_for(ctx.stack, ctx.config.api.cache_seconds)


def desired_for(stack: str, seconds: int) -> dict:
    return {
        "Name": policy_name(stack),
        "Comment": comment(stack),
        "MinTTL": 0,
        "DefaultTTL": 0,
        "MaxTTL": seconds,
        "ParametersInCacheKeyAndForwardedToOrigin": {
            "EnableAcceptEncodingGzip": True,
            "EnableAcceptEncodingBrotli": True,
            "HeadersConfig": {"HeaderBehavior": "none"},
            "CookiesConfig": {"CookieBehavior": "none"},
            "QueryStringsConfig": {"QueryStringBehavior": "whitelist",
                                   "QueryStrings": {"Quantity": len(QUERY_STRINGS), "Items": list(QUERY_STRINGS)}},
        },
    }


def _comparable(config: dict) -> dict:
    keyed = config.get("ParametersInCacheKeyAndForwardedToOrigin") or {}
    strings = keyed.get("QueryStringsConfig") or {}
    return {"comment": config.get("Comment"), "TTLs": (config.get("MinTTL"), config.get("DefaultTTL"),
                                                         config.get("MaxTTL")),
            "compression": (keyed.get("EnableAcceptEncodingGzip"), keyed.get("EnableAcceptEncodingBrotli")),
            "headers": (keyed.get("HeadersConfig") or {}).get("HeaderBehavior"),
            "cookies": (keyed.get("CookiesConfig") or {}).get("CookieBehavior"),
            "query strings": (strings.get("QueryStringBehavior"),
                              sorted((strings.get("QueryStrings") or {}).get("Items") or []))}


def find(ctx: Context) -> dict | None:
    """The stack's policy ({Id, CachePolicyConfig}) by its name; a foreign one of that name stops the run."""
    cf, name = ctx.edge("cloudfront"), policy_name(ctx.stack)
    found, marker = None, None
    while found is None:
        page = cf.list_cache_policies(Type="custom", **({"Marker": marker} if marker else {}))["CachePolicyList"]
        found = next((item["CachePolicy"] for item in page.get("Items") or []
                      if item["CachePolicy"]["CachePolicyConfig"]["Name"] == name), None)
        marker = page.get("NextMarker")
        if not marker:
            break
    if found is not None and found["CachePolicyConfig"].get("Comment") != comment(ctx.stack):
        raise DeployError(f"the account has a cache policy named {name} that this stack did not make (its comment "
                          f"is not {comment(ctx.stack)!r}); rename or delete it")
    return found


def ensure(ctx: Context) -> str:
    """The policy's id, made or brought up to date (UNKNOWN while planning its creation)."""
    cf, want = ctx.edge("cloudfront"), desired(ctx)
    found = find(ctx)
    if found is None:
        made = ctx.change("create", f"cache policy {want['Name']} (max {want['MaxTTL']} s)", cf.create_cache_policy,
                          CachePolicyConfig=want, find=lambda: _as_made(find(ctx)))
        return made["CachePolicy"]["Id"] if made else UNKNOWN
    have = _comparable(found["CachePolicyConfig"])
    drifted = [key for key, value in _comparable(want).items() if have[key] != value]
    if drifted:
        policy_id = found["Id"]
        etag = cf.get_cache_policy(Id=policy_id)["ETag"]
        ctx.change("update", f"cache policy {want['Name']} ({', '.join(drifted)})", cf.update_cache_policy,
                   Id=policy_id, IfMatch=etag, CachePolicyConfig=want,
                   find=lambda: {} if _comparable(cf.get_cache_policy(Id=policy_id)["CachePolicy"]
                                                  ["CachePolicyConfig"]) == _comparable(want) else None)
    return found["Id"]


def _as_made(found: dict | None) -> dict | None:
    return found and {"CachePolicy": found}


def remove(ctx: Context) -> None:
    """Delete the stack's policy if there is one; the distribution must no longer name it.

    CachePolicyInUse is retried for a while: a distribution's change is seen by the policy's check
    a moment after it deployed (bounded; a distribution still naming it fails the step)."""
    found = find(ctx)
    if found is None:
        return
    cf, policy_id = ctx.edge("cloudfront"), found["Id"]

    def delete() -> None:
        etag = cf.get_cache_policy(Id=policy_id)["ETag"]
        cf.delete_cache_policy(Id=policy_id, IfMatch=etag)

    ctx.change("delete", f"cache policy {policy_name(ctx.stack)}", waits.retry_while, ctx,
               f"cache policy {policy_name(ctx.stack)} to be released by the distribution", delete,
               lambda exc: is_code(exc, CACHE_POLICY_IN_USE), timeout=IN_USE_TIMEOUT, interval=10,
               find=lambda: {} if find(ctx) is None else None)
