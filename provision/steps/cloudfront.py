"""The CloudFront distribution: the domain's front door, guarded by the web ACL.

One origin, the API's regional execute-api domain with origin path
`/<stage>`, reached over HTTPS (TLSv1.2) with the header `x-api-key` set to
the API key's value. The policies do the forwarding: CachingDisabled (every
request reaches the API), or with [api] cache_seconds the stack's own cache policy
(provision/aws/cache_policy.py: keyed on the API's query strings, TTL from its Cache-Control), and
AllViewerExceptHostHeader (the query
string and Authorization reach the origin; the Host header must not, or API
Gateway cannot route the request). Viewers: HTTPS only, the domain as alias,
the ACM certificate (sni-only, TLSv1.2_2021), the web ACL.

IPv6 is on only when [access] allowed_cidrs holds an IPv6 range: a
dual-stack caller prefers IPv6, so behind an IPv4-only allow-list it would
be blocked (the domain_record step writes the AAAA alias on the same rule).
Error responses are not cached (ErrorCachingMinTTL 0 for every 4xx and 5xx
the API answers with): CloudFront otherwise caches them for 10 s, also
under CachingDisabled, so one key's 404 or a passing 500 would be served to
the next caller ("Controlling how long CloudFront caches errors", CloudFront
developer guide; aprin-labs/archimedes #1520).

Pitfalls:
- the API key value is a shared secret between CloudFront and API Gateway: it
  is read when needed and compared, never stored, printed or described;
- allowed methods must cover what the API serves (GET), or CloudFront answers
  "not configured to allow the HTTP request method";
- the distribution is found by its Comment and confirmed by the stack's tags
  (a listing shows the comment, so no tag call per foreign distribution);
  CallerReference is deterministic, so a create repeated after a lost
  response fails with DistributionAlreadyExists and the distribution is then
  found, never duplicated;
- drift is fixed in place with the ETag (update_distribution, IfMatch);
  only the fields this step owns are compared;
- the legacy ForwardedValues and TTLs must not be sent beside a cache policy
  (moto returns them anyway): they are dropped from every config sent back;
- deletion needs a disabled distribution that has finished deploying;
- rotating the API key: the api step records the newest key as the one to
  send; until the switch has Deployed, some edges still send the old key, so
  the old key may be retired only after that (``sends_key``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import boto3
from botocore.exceptions import ClientError

from .. import waits
from ..aws import cache_policy
from ..aws_errors import DISTRIBUTION_ALREADY_EXISTS, DISTRIBUTION_NOT_DISABLED, NO_SUCH_DISTRIBUTION, NO_SUCH_RESOURCE
from ..config import Config
from ..context import UNKNOWN, Context
from ..errors import DeployError, is_code, or_none
from ..registry import Account, Beyond, Names, Step
from ..tags import is_ours
from ..together import together

NAME = "cloudfront"
ORIGIN_ID = "api"
# Managed policies by their documented ids (the same in every account).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
LEGACY_CACHE_KEYS = ("ForwardedValues", "MinTTL", "DefaultTTL", "MaxTTL")
DEPLOY_TIMEOUT = 30 * 60  # a distribution change usually deploys in 3 to 15 minutes
DEPLOY_INTERVAL = 20
DISABLED_TIMEOUT = 10 * 60  # after Deployed, the delete may still see it as enabled for a moment
# The error statuses callers can get through the distribution: the function's 400/404/500, API Gateway's
# 403 (no key), 502 (function failed), 503 and 504 (integration timeout). 429 (throttled) is left out: it is
# not among the codes CloudFront caches (developer guide, "How CloudFront processes HTTP 4xx and 5xx status codes").
UNCACHED_ERRORS = (400, 403, 404, 500, 502, 503, 504)


def comment(stack: str) -> str:
    return f"rds-edge-api stack {stack}"


def caller_reference(stack: str, certificate_arn: str) -> str:
    """The same for the same stack and certificate, so a retried create cannot make a second distribution."""
    return f"rds-edge-api-{stack}-" + hashlib.sha256(certificate_arn.encode()).hexdigest()[:12]


def _summary(distribution: dict) -> dict:
    return {"Id": distribution["Id"], "ARN": distribution["ARN"], "DomainName": distribution["DomainName"]}


@dataclass
class Seen:
    """What observe read, as AWS answered: ensure does the deciding. The key's value and the
    distribution's config (which holds it) are secrets: kept out of repr."""
    certificate_arn: str | None = None  # whose status was read (an early observe: the ARN the last run made)
    certificate_status: str | None = None
    key_id: str | None = None  # whose value was read (likewise)
    key_value: str = field(default=UNKNOWN, repr=False)
    distribution: dict | None = None  # the stack's ({Id, ARN, DomainName}); None: none yet
    got: dict | None = field(default=None, repr=False)  # its GetDistribution answer: config, ETag, Status


def observe(ctx: Context) -> Seen:
    """The distribution, the certificate's status and the API key's value, read at once.

    The certificate and key are other steps' and may still change in this run: the ones the last
    run recorded are read here (a hint), and ensure reads again whatever its inputs now name instead.
    """
    return _observe(ctx, ctx.state.earlier("certificate").get("arn"), ctx.state.earlier("api").get("api_key_id"))


def _observe(ctx: Context, certificate_arn: str | None, key_id: str | None) -> Seen:
    status, value, (distribution, got) = together(
        ctx, lambda c: _certificate_status(c, certificate_arn), lambda c: _key_value(c, key_id), _distribution)
    return Seen(certificate_arn, status, key_id, value, distribution, got)


def _certificate_status(ctx: Context, arn: str | None) -> str | None:
    """None while planning: a plan does not stop on a certificate still being validated."""
    if not arn or ctx.planning:
        return None
    return ctx.edge("acm").describe_certificate(CertificateArn=arn)["Certificate"]["Status"]


def _key_value(ctx: Context, key_id: str | None) -> str:
    if key_id in (None, UNKNOWN):  # UNKNOWN: a key the api step plans to create
        return UNKNOWN
    return ctx.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"]


def _current(ctx: Context, seen: Seen, certificate_arn: str | None, key_id: str | None) -> Seen:
    """seen, with the certificate's status and the key's value read again (at once) if the steps before
    this one now name another certificate or key than the hint observe read; the status also when it was
    not ISSUED yet: the certificate_issued step waits for that without changing anything."""
    certificate_stale = seen.certificate_arn != certificate_arn or seen.certificate_status not in (None, "ISSUED")
    key_stale = seen.key_id != key_id
    status, value = together(
        ctx, lambda c: _certificate_status(c, certificate_arn) if certificate_stale else seen.certificate_status,
        lambda c: _key_value(c, key_id) if key_stale else seen.key_value)
    return replace(seen, certificate_arn=certificate_arn, certificate_status=status, key_id=key_id, key_value=value)


def _distribution(ctx: Context) -> tuple[dict | None, dict | None]:
    """The stack's distribution and its GetDistribution answer: the state's if still ours, else by comment and tag."""
    got = _hinted(ctx)
    if got is not None:
        return _summary(got["Distribution"]), got
    found = find(ctx)
    return found, found and ctx.edge("cloudfront").get_distribution(Id=found["Id"])


def _tags(ctx: Context, arn: str | None) -> list | None:
    if not arn:
        return None
    found = or_none(ctx.edge("cloudfront").list_tags_for_resource, NO_SUCH_RESOURCE, Resource=arn)
    return found and found["Tags"].get("Items")


def _ours(ctx: Context, arn: str) -> bool:
    return is_ours(_tags(ctx, arn), ctx.stack)


def _hinted(ctx: Context) -> dict | None:
    """The GetDistribution answer of the state's distribution, if it is still there and ours.

    GetDistribution answers the whole config with its ETag and Status, so no GetDistributionConfig
    is needed for a drift check, a disable or a delete (terraform-provider-aws does the same:
    internal/service/cloudfront/distribution.go, disableDistribution). Its tags are read beside it,
    by the ARN the state recorded.
    """
    known = ctx.state.get(NAME)
    if not known.get("distribution_id"):
        return None
    cf = ctx.edge("cloudfront")
    got, tags = together(ctx, lambda c: or_none(cf.get_distribution, NO_SUCH_DISTRIBUTION, Id=known["distribution_id"]),
                         lambda c: _tags(c, known.get("arn")))
    if got is None:
        return None
    if got["Distribution"]["ARN"] != known.get("arn"):
        tags = _tags(ctx, got["Distribution"]["ARN"])
    return got if is_ours(tags, ctx.stack) else None


def find(ctx: Context) -> dict | None:
    """The stack's distribution ({Id, ARN, DomainName}): the state's id if still ours, else by comment and tag."""
    got = _hinted(ctx)
    if got is not None:
        return _summary(got["Distribution"])
    return next(iter(_stack_distributions(ctx)), None)


def _stack_distributions(ctx: Context, judged: str | None = None) -> list[dict]:
    """Every distribution with the stack's comment and tags: all are the stack's (teardown removes each).
    judged: the id its state hint already looked at, left out; the others' tags are read at once."""
    listed = [item for page in ctx.edge("cloudfront").get_paginator("list_distributions").paginate()
              for item in page["DistributionList"].get("Items") or []
              if item.get("Comment") == comment(ctx.stack) and item["Id"] != judged]
    ours = together(ctx, *(lambda c, arn=item["ARN"]: _ours(c, arn) for item in listed))
    return [_summary(item) for item, mine in zip(listed, ours) if mine]


def _needed(ctx: Context) -> tuple[dict, dict, dict]:
    """The api, certificate and waf steps' state; a missing one stops a deploy (not a plan) before any call."""
    api, certificate, acl = ctx.state.get("api"), ctx.state.get("certificate"), ctx.state.get("waf")
    needed = {"api": api.get("execute_api_domain"), "certificate": certificate.get("arn"),
              "waf": acl.get("web_acl_arn")}
    missing = [step for step, value in needed.items() if not value]
    if missing and not ctx.planning:
        raise DeployError(f"the CloudFront step needs what the {', '.join(missing)} step(s) made, and the state "
                          "has no record of it; run deploy, which runs those steps first")
    return api, certificate, acl


def _inputs(ctx: Context, api: dict, certificate: dict, acl: dict, seen: Seen, policy: str) -> dict:
    """What the distribution points at, from the earlier steps' state and what was read for it.

    While planning, what an earlier step would create is not known yet: a
    placeholder stands in.
    """
    if seen.certificate_status not in (None, "ISSUED"):
        raise DeployError(f"certificate {certificate['arn']} is {seen.certificate_status}, not ISSUED; run deploy "
                          "again, whose certificate_issued step waits for it")
    return {"origin": api.get("execute_api_domain") or UNKNOWN, "stage": api.get("stage") or ctx.config.api.stage,
            "key": seen.key_value, "certificate": certificate.get("arn") or UNKNOWN,
            "acl": acl.get("web_acl_arn") or UNKNOWN, "cache_policy": policy}


def _desired(ctx: Context, inputs: dict) -> dict:
    return {
        "CallerReference": caller_reference(ctx.stack, inputs["certificate"]),
        "Comment": comment(ctx.stack),
        "Enabled": True,
        "Aliases": {"Quantity": 1, "Items": [ctx.config.domain.name]},
        "Origins": {"Quantity": 1, "Items": [{
            "Id": ORIGIN_ID,
            "DomainName": inputs["origin"],
            "OriginPath": f"/{inputs['stage']}",
            "CustomHeaders": {"Quantity": 1, "Items": [{"HeaderName": "x-api-key", "HeaderValue": inputs["key"]}]},
            "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "https-only",
                                   "OriginSslProtocols": {"Quantity": 1, "Items": ["TLSv1.2"]}},
        }]},
        "DefaultCacheBehavior": {
            "TargetOriginId": ORIGIN_ID,
            "ViewerProtocolPolicy": "https-only",
            "AllowedMethods": {"Quantity": 3, "Items": ["GET", "HEAD", "OPTIONS"],
                               "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]}},
            "CachePolicyId": inputs["cache_policy"],
            "OriginRequestPolicyId": ALL_VIEWER_EXCEPT_HOST_HEADER,
            "Compress": False,
        },
        # CloudFrontDefaultCertificate False explicitly: moto drops the certificate without it.
        "ViewerCertificate": {"ACMCertificateArn": inputs["certificate"], "SSLSupportMethod": "sni-only",
                              "MinimumProtocolVersion": "TLSv1.2_2021", "CloudFrontDefaultCertificate": False},
        "WebACLId": inputs["acl"],
        "PriceClass": "PriceClass_100",  # North America and Europe: the cheapest
        "HttpVersion": "http2and3",
        "IsIPV6Enabled": ipv6(ctx),
        "CustomErrorResponses": {"Quantity": len(UNCACHED_ERRORS), "Items": [
            {"ErrorCode": code, "ErrorCachingMinTTL": 0} for code in UNCACHED_ERRORS]},
    }


def ipv6(ctx: Context) -> bool:
    """Whether viewers may connect over IPv6 (and the domain gets an AAAA alias): only if an IPv6 range is allowed."""
    return bool(ctx.config.access.ipv6_cidrs)


def _error_caching(config: dict) -> dict:
    """Seconds each error status is cached for, by status."""
    return {int(item["ErrorCode"]): item.get("ErrorCachingMinTTL")
            for item in _items(config.get("CustomErrorResponses"))}


def _items(container: dict | None) -> list:
    return (container or {}).get("Items") or []


def _owned(config: dict) -> dict:
    """The fields this step decides, comparable whichever side they come from.

    Holds the API key value (origin headers): compare it, never show it;
    drift is reported by these keys' names only.
    """
    origins = {o["Id"]: o for o in _items(config.get("Origins"))}
    origin = origins.get(ORIGIN_ID, {})
    custom = origin.get("CustomOriginConfig") or {}
    behaviour = config.get("DefaultCacheBehavior") or {}
    methods = behaviour.get("AllowedMethods") or {}
    certificate = config.get("ViewerCertificate") or {}
    return {
        "aliases": sorted(_items(config.get("Aliases"))),
        "origins": sorted(origins),
        "origin domain": origin.get("DomainName"),
        "origin path": origin.get("OriginPath"),
        "origin protocol": custom.get("OriginProtocolPolicy"),
        "origin TLS": sorted(_items(custom.get("OriginSslProtocols"))),
        "origin headers": {h["HeaderName"].lower(): h["HeaderValue"] for h in _items(origin.get("CustomHeaders"))},
        "target origin": behaviour.get("TargetOriginId"),
        "viewer protocol": behaviour.get("ViewerProtocolPolicy"),
        "allowed methods": sorted(_items(methods)),
        "cached methods": sorted(_items(methods.get("CachedMethods"))),
        "cache policy": behaviour.get("CachePolicyId"),
        "origin request policy": behaviour.get("OriginRequestPolicyId"),
        "certificate": certificate.get("ACMCertificateArn"),
        "SSL support": certificate.get("SSLSupportMethod"),
        "minimum TLS": certificate.get("MinimumProtocolVersion"),
        "default certificate": bool(certificate.get("CloudFrontDefaultCertificate")),
        "web ACL": config.get("WebACLId"),
        "price class": config.get("PriceClass"),
        "HTTP versions": config.get("HttpVersion"),
        "IPv6": bool(config.get("IsIPV6Enabled")),
        "error caching": _error_caching(config),
        "enabled": config.get("Enabled"),
        "comment": config.get("Comment"),
    }


def _sendable(config: dict) -> dict:
    """A config as returned, fit to send back: no legacy cache settings beside a cache policy."""
    behaviour = dict(config["DefaultCacheBehavior"])
    if behaviour.get("CachePolicyId"):
        for key in LEGACY_CACHE_KEYS:
            behaviour.pop(key, None)
    return {**config, "DefaultCacheBehavior": behaviour}


def _merged(current: dict, desired: dict) -> dict:
    """The current config with every field this step owns set as desired; the rest (and CallerReference) kept."""
    config = dict(current)
    for key in ("Comment", "Enabled", "Aliases", "Origins", "ViewerCertificate", "WebACLId", "PriceClass",
                "HttpVersion", "IsIPV6Enabled", "CustomErrorResponses"):
        config[key] = desired[key]
    config["DefaultCacheBehavior"] = {**current["DefaultCacheBehavior"], **desired["DefaultCacheBehavior"]}
    return _sendable(config)


def _config(cf, distribution_id: str) -> dict:
    """The distribution's config as it is now (GetDistribution: the one read the step's calls use)."""
    return cf.get_distribution(Id=distribution_id)["Distribution"]["DistributionConfig"]


def _update_if_drifted(ctx: Context, distribution_id: str, desired: dict, got: dict | None = None) -> dict | None:
    """got: the distribution's GetDistribution answer (read now if not given). Answers got if nothing drifted
    (it says whether the last change has deployed), None after an update (the wait must look again)."""
    cf = ctx.edge("cloudfront")
    got = got or cf.get_distribution(Id=distribution_id)
    config = got["Distribution"]["DistributionConfig"]
    have, want = _owned(config), _owned(desired)
    drifted = [name for name in want if have[name] != want[name]]
    if not drifted:
        return got
    ctx.change("update", f"distribution {distribution_id} ({', '.join(drifted)})", cf.update_distribution,
               Id=distribution_id, IfMatch=got["ETag"], DistributionConfig=_merged(config, desired),
               # after a lost answer: the ETag has changed if it was applied, so look instead of sending it again
               find=lambda: {} if _owned(_config(cf, distribution_id)) == want else None)
    return None


def _create(ctx: Context, desired: dict) -> tuple[dict, dict | None] | None:
    """Create the distribution; after a lost response, find the one the first attempt made. Its summary and
    (when nothing changed since) its GetDistribution answer; None when planned."""
    cf = ctx.edge("cloudfront")
    try:
        created = ctx.change("create", f"distribution for {ctx.config.domain.name}", cf.create_distribution_with_tags,
                             DistributionConfigWithTags={"DistributionConfig": desired,
                                                         "Tags": {"Items": ctx.tag_list}})
    except ClientError as exc:
        if not is_code(exc, DISTRIBUTION_ALREADY_EXISTS):
            raise
        found = find(ctx)
        if found is None:
            raise DeployError(f"CloudFront has a distribution with caller reference {desired['CallerReference']} "
                              f"but none with comment {comment(ctx.stack)!r} and this stack's tags; restore its "
                              "comment and tags (stack, managed-by) so it can be adopted, or delete it") from exc
        return found, _update_if_drifted(ctx, found["Id"], desired)
    return (_summary(created["Distribution"]), None) if created else None


def _deployed(ctx: Context, distribution_id: str, got: dict | None = None) -> str:
    """Wait until the distribution's last change has deployed; its ETag.

    got: a GetDistribution answer read since that change (none was made after it), looked at first;
    after a change this step made, the wait always reads again.
    """
    if got and got["Distribution"]["Status"] == "Deployed":
        return got["ETag"]
    cf = ctx.edge("cloudfront")

    def etag_if_deployed() -> str | None:
        got = cf.get_distribution(Id=distribution_id)
        return got["ETag"] if got["Distribution"]["Status"] == "Deployed" else None

    return waits.wait_until(ctx, f"distribution {distribution_id} to deploy (CloudFront takes minutes)",
                            etag_if_deployed, timeout=DEPLOY_TIMEOUT, interval=DEPLOY_INTERVAL)


def ensure(ctx: Context, seen: Seen | None = None) -> None:
    """seen: what an early observe read (the certificate and key it read are checked against the state's)."""
    api, certificate, acl = _needed(ctx)
    if seen is None:
        seen = _observe(ctx, certificate.get("arn"), api.get("api_key_id"))
    else:
        seen = _current(ctx, seen, certificate.get("arn"), api.get("api_key_id"))
    caching = ctx.config.api.cache_seconds > 0
    policy = cache_policy.ensure(ctx) if caching else CACHING_DISABLED
    if caching and policy != UNKNOWN:  # recorded at once: a run stopped before the distribution still knows it
        ctx.state.put(NAME, {**ctx.state.get(NAME), "cache_policy_id": policy})
    desired = _desired(ctx, _inputs(ctx, api, certificate, acl, seen, policy))
    found = seen.distribution
    if found is None:
        created = _create(ctx, desired)
        if created is None:  # planned
            return
        found, got = created
    else:
        got = _update_if_drifted(ctx, found["Id"], desired, seen.got)
    if not ctx.planning:
        _deployed(ctx, found["Id"], got)
    if not caching and ctx.state.get(NAME).get("cache_policy_id"):  # switched off: the distribution (deployed)
        cache_policy.remove(ctx)                                       # no longer names the stack's policy
    ctx.state.put(NAME, {"distribution_id": found["Id"], "domain_name": found["DomainName"], "arn": found["ARN"],
                         **({"cache_policy_id": policy} if caching else {})})
    base = f"https://{ctx.config.domain.name}/{ctx.config.api.path}"
    ctx.outputs["Distribution domain"] = found["DomainName"]
    if caching:  # said on every deploy and rotate: what this run changed may still be answered the old way
        seconds = ctx.config.api.cache_seconds
        ctx.outputs["Cached answers"] = (f"CloudFront serves a 200 again for up to {seconds} s ([api] cache_seconds): "
                                         f"after this run, answers cached before it may still be served for up to "
                                         f"{seconds} s (a new function, API, row or key alike)")
    ctx.outputs["URL"] = base
    # The variable's name, never its value: the operator's shell fills it in.
    ctx.outputs["Try it"] = (f'curl -H "Authorization: ${ctx.config.access.authorization.env}" '
                             f'"{base}?key=<{ctx.config.database.key_column}>"')


def sends_key(ctx: Context, key_id: str) -> bool:
    """Whether the deployed distribution sends that API key's value as x-api-key (compared, never shown)."""
    (found, got), value = together(ctx, _distribution, lambda c: _key_value(c, key_id))
    if found is None:
        return False
    headers = _owned(got["Distribution"]["DistributionConfig"])["origin headers"]
    return got["Distribution"]["Status"] == "Deployed" and headers.get("x-api-key") == value


def destroy(ctx: Context) -> None:
    """Every distribution of the stack's (the state's, and any with its comment and tags), side by side:
    disable, wait until that has deployed, delete with the latest ETag."""
    hinted, others = together(ctx, _hinted, lambda c: _stack_distributions(c, judged=c.state.get(NAME).get(
        "distribution_id")))
    found = ([(_summary(hinted["Distribution"]), hinted)] if hinted else []) + [(other, None) for other in others]
    together(ctx, *(lambda c, one=one, got=got: _destroy_one(c, one, got) for one, got in found))
    if ctx.state.get(NAME).get("cache_policy_id") or ctx.config.api.cache_seconds:
        cache_policy.remove(ctx)  # only now: CloudFront refuses deleting a policy a distribution names


def _destroy_one(ctx: Context, found: dict, got: dict | None) -> None:
    """got: the distribution's GetDistribution answer (read now if not given): its config and ETag."""
    cf, distribution_id = ctx.edge("cloudfront"), found["Id"]
    got = got or cf.get_distribution(Id=distribution_id)
    config = got["Distribution"]["DistributionConfig"]
    unchanged: dict | None = got
    if config["Enabled"]:
        unchanged = None
        ctx.change("update", f"disable distribution {distribution_id}", cf.update_distribution,
                   Id=distribution_id, IfMatch=got["ETag"], DistributionConfig={**_sendable(config), "Enabled": False},
                   find=lambda: None if _config(cf, distribution_id)["Enabled"] else {})
    etag = None if ctx.planning else _deployed(ctx, distribution_id, unchanged)
    ctx.change("delete", f"distribution {distribution_id} ({found['DomainName']})", waits.retry_while, ctx,
               f"distribution {distribution_id} to be seen as disabled",
               lambda: cf.delete_distribution(Id=distribution_id, IfMatch=etag),
               lambda exc: is_code(exc, DISTRIBUTION_NOT_DISABLED), timeout=DISABLED_TIMEOUT, interval=10)


# --- the step, declared (provision/registry.py) ---------------------------------



def inventory(config: Config) -> list[str]:
    """The stack's distributions (by tag), read back with plain boto3 (CloudFront is global)."""
    cloudfront = boto3.client("cloudfront")
    return [f"distribution {dist['Id']}" for dist in cloudfront.list_distributions()["DistributionList"].get("Items") or []
            if is_ours(cloudfront.list_tags_for_resource(Resource=dist["ARN"])["Tags"].get("Items"), config.stack.name)]


def cache_policies(config: Config) -> list[str]:
    """The stack's cache policy, by its name (cache policies take no tags), read back with plain boto3."""
    listed = boto3.client("cloudfront").list_cache_policies(Type="custom")["CachePolicyList"].get("Items") or []
    return [f"cache policy {item['CachePolicy']['CachePolicyConfig']['Name']} {item['CachePolicy']['Id']}"
            for item in listed
            if item["CachePolicy"]["CachePolicyConfig"]["Name"] == cache_policy.policy_name(config.stack.name)]


CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"  # managed; only a drift sets it


def drift(session, config: Config) -> None:
    """The stack's cache policy keyed on a header behind the stack's back; without one, the distribution
    pointed at the managed CachingOptimized (which would cache everything, errors included, for a day)."""
    cf = session.client("cloudfront")
    name = cache_policy.policy_name(config.stack.name)
    listed = cf.list_cache_policies(Type="custom")["CachePolicyList"].get("Items") or []
    ours = [item["CachePolicy"] for item in listed if item["CachePolicy"]["CachePolicyConfig"]["Name"] == name]
    for policy in ours:
        changed = dict(policy["CachePolicyConfig"])
        changed["ParametersInCacheKeyAndForwardedToOrigin"] = {
            **changed["ParametersInCacheKeyAndForwardedToOrigin"],
            "HeadersConfig": {"HeaderBehavior": "whitelist", "Headers": {"Quantity": 1, "Items": ["Host"]}}}
        cf.update_cache_policy(Id=policy["Id"], IfMatch=cf.get_cache_policy(Id=policy["Id"])["ETag"],
                               CachePolicyConfig=changed)
    if ours:
        return
    for item in cf.list_distributions()["DistributionList"].get("Items") or []:
        if item.get("Comment") == comment(config.stack.name):
            got = cf.get_distribution(Id=item["Id"])
            current = got["Distribution"]["DistributionConfig"]
            behaviour = {**current["DefaultCacheBehavior"], "CachePolicyId": CACHING_OPTIMIZED}
            cf.update_distribution(Id=item["Id"], IfMatch=got["ETag"],
                                   DistributionConfig=_sendable({**current, "DefaultCacheBehavior": behaviour}))


def _arns(names: Names, action: str) -> list[str]:
    # ids are CloudFront's; the cache-policy actions take the cache-policy resource type (Service Authorization
    # Reference, Amazon CloudFront: arn:${Partition}:cloudfront::${Account}:cache-policy/${Id})
    if action.endswith("CachePolicy"):
        return [names.arn("cloudfront", "", "cache-policy/*")]
    return [names.arn("cloudfront", "", "distribution/*")]


BEYOND = (
    Beyond("cloudfront", "CreateDistributionWithTags", ("cloudfront:TagResource",),
           "CloudFront API reference, CreateDistributionWithTags: authorized as cloudfront:CreateDistribution and "
           "cloudfront:TagResource (Service Authorization Reference has no action of that name)"),
)


def leaves(config: Config, account: Account) -> list[str]:
    """The distribution (its id is CloudFront's), and with [api] cache_seconds the stack's cache policy."""
    return ["distribution", *([f"cache policy {cache_policy.policy_name(config.stack.name)}"]
                              if config.api.cache_seconds else [])]


STEP = Step(NAME, "CloudFront distribution", ensure, destroy, needs=("api", "waf", "certificate_issued"),
            loose=("api",), observe=observe,
            inventory=(inventory, cache_policies), leaves=leaves, arns={"cloudfront": _arns},
            creates=("CreateDistributionWithTags",),
            removes=("DeleteDistribution",), drift=(drift,), beyond=BEYOND)
