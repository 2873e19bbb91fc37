"""Step "mail" (email validation of the domain itself): SES receives the domain's mail into S3.

ACM mails its approval link to admin@, hostmaster@, ... of the domain, at first
issue and again about 45 days before every expiry (renewal). So that the
operator needs no mailbox there, this step builds, in the mail region, and
keeps for as long as validation is email:
- an S3 bucket ``<stack>-mail-<account>``: public access blocked, object
  ownership BucketOwnerEnforced (no ACLs), SSE-S3 default encryption, only SES
  may write, only under ``acm/``, only for this account and this rule, no
  request without TLS; mail expires after 30 days;
- the SES domain identity (TXT ``_amazonses.<domain>``) and the MX record
  that sends the domain's mail to SES (written to the hosted zone, or printed);
- one receipt rule ``<stack>-acm-approval`` (mail to the domain -> S3, then
  stop) in the account's shared receipt rule set ``rds-edge-api-shared-acm``.
With DNS validation, or ``validation_domain`` set to a parent domain (ACM
then mails that domain's mailboxes; it does so by itself for ``www.<domain>``),
none of this is needed: deploy removes what an earlier config made.

Many stacks, one account: an account has ONE active receipt rule set per SES
region, so every email-validated stack of the account and region adds its
rule to one shared set: the first that needs it creates and activates it, a
teardown removes only its own rule, and the one that removes the last rule
deletes the set. SES rule sets take no tags, so the name says it is shared.
An operator whose account already has an active set of its own names it in
``[domain] mail_rule_set``: the stack adds its rule there and never
activates, deactivates or deletes that set. Someone else's active set is
never replaced: the run stops and says so. Stacks made before the set was
shared had their own ``<stack>-acm``: it is replaced by the shared one.

Each stack's lease is its own, so nothing else orders two stacks editing the
shared set: two first deploys would both create it, and the last teardown's
"no rule left, delete the set" could take a rule another stack added in
between (DeleteReceiptRuleSet deletes the set "and all of the receipt rules it
contains", SES API reference). Every edit of the shared set (create,
activate, add or remove the stack's rule, deactivate and delete) is made under
the account's short lease on it (``lease.account_held``), after reading the
set and the active set again under it. A CreateReceiptRuleSet answered
AlreadyExists (a run without that lease, or an older toolkit) means another
stack made it: it is used.

Pitfalls:
- SES checks that it may write to the bucket when the rule is made or
  changed (CreateReceiptRule, UpdateReceiptRule answer InvalidS3Configuration
  "Could not write to bucket" otherwise: aws-cdk#3726,
  terraform-provider-aws#7917): the bucket policy comes first, already naming
  the rule's ARN (receipt-rule-set/<set>:receipt-rule/<rule>), as the SES
  developer guide's policy does. That the rule does not exist yet is no
  matter: the test write is made for the rule being created. aws-cdk#30143
  (the CDK's exact-ARN policy, reverted in #30375) was an ordering failure:
  the policy then depended on the rule, so CloudFormation made the rule first
  and SES found no grant (aws-cdk#34079 says so). What remains on AWS is S3's
  eventual consistency for bucket configuration (S3 user guide, "Amazon S3
  data consistency model"): a policy put a moment ago may not be what SES's
  test write meets, so the rule's create or update is retried, bounded,
  while SES answers InvalidS3Configuration.
- The MX stays beside the domain's alias A/AAAA records (renewal mail needs
  it); a CNAME at the domain cannot coexist with it, which the domain-record
  step tells an operator without a hosted zone.
- The SES identity carries no tags (SES v1), and an operator may have verified
  it for sending before: the stack deletes it only if it created it, which the
  bucket's tag ``ses-identity = created`` (and the state) records, set before
  the identity is made so that a crash in between cannot lose it.
- An identity verified by DKIM (the SES v2 console and CreateEmailIdentity do
  that) has no VerificationToken in GetIdentityVerificationAttributes: whether
  an identity exists is asked of SES v2 (GetEmailIdentity: NotFoundException
  when there is none), never read from the token. Such an identity needs no
  TXT record and is never the stack's (the stack makes TXT-verified ones only,
  with VerifyDomainIdentity), whatever an older run's tag says.
- A bucket holding objects (or versions) cannot be deleted: it is emptied first.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, cast

import boto3
from botocore.exceptions import ClientError

from .. import lease, waits
from ..aws import dns
from ..aws_errors import (
    ACCESS_DENIED,
    ALREADY_EXISTS,
    HTTP_403,
    HTTP_404,
    INVALID_S3_CONFIGURATION,
    NO_SUCH_BUCKET,
    NO_SUCH_BUCKET_POLICY,
    NO_SUCH_LIFECYCLE_CONFIGURATION,
    NO_SUCH_PUBLIC_ACCESS_BLOCK_CONFIGURATION,
    NO_SUCH_TAG_SET,
    NOT_FOUND_EXCEPTION,
    OWNERSHIP_CONTROLS_NOT_FOUND_ERROR,
    RESOURCE_NOT_FOUND_EXCEPTION,
    RULE_DOES_NOT_EXIST,
    RULE_SET_DOES_NOT_EXIST,
    SERVER_SIDE_ENCRYPTION_CONFIGURATION_NOT_FOUND_ERROR,
)
from ..config import Config
from ..context import UNKNOWN, Context
from ..errors import DeployError, is_code, or_none
from ..registry import Account, Names, Step
from ..tags import as_dict, is_ours, tag_list
from ..together import together

PREFIX = "acm/"
SHARED_RULE_SET = "rds-edge-api-shared-acm"  # one per account and SES region, for every stack's rule
SHARED_LEASE = f"ses-rule-set:{SHARED_RULE_SET}"  # the account lease its edits are made under (lease.account_held)
IDENTITY_TAG, CREATED = "ses-identity", "created"  # on the bucket: this stack created the SES identity
MAIL_EXPIRY_DAYS = 30
POLICY_PROPAGATION_TIMEOUT = 60.0  # the bucket policy just put, until SES's test write meets it
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
UNREAD = object()  # destroy: a read not made yet
BLOCK_ALL = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
             "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
OWNERSHIP = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}


def bucket_of(stack: str, account: str) -> str:
    """Deterministic and globally unique enough: the account id is in it."""
    return f"{stack.lower()}-mail-{account}"


def bucket_name(ctx: Context) -> str:
    return bucket_of(ctx.stack, ctx.account_id)


def rule_set_of(config: Config) -> str:
    """The set the stack's rule goes in: the operator's own (``[domain] mail_rule_set``) or the shared one."""
    return config.domain.mail_rule_set or SHARED_RULE_SET


def rule_set_name(ctx: Context) -> str:
    return rule_set_of(ctx.config)


def _legacy_rule_set(ctx: Context) -> str:
    """The stack's own set, from before the set was shared."""
    return f"{ctx.stack}-acm"


def approval_rule(stack: str) -> str:
    return f"{stack}-acm-approval"


def rule_name(ctx: Context) -> str:
    return approval_rule(ctx.stack)


@dataclass(frozen=True)
class Seen:
    """What the mail region holds for the stack, as SES, S3 and ACM answered."""
    active: str | None             # the active receipt rule set
    identity: Identity | None      # the domain's SES identity; None: there is none
    bucket_region: str | None      # None: no bucket of ours by that name
    bucket: dict[str, Any] | None  # its tags, public access block, policy, lifecycle, ownership, encryption
    rules: list[dict] | None       # the rules of the stack's rule set; None: no such set
    legacy_rules: list[dict] | None  # the same of the stack's own set from before the set was shared
    certificate_issued: bool       # per the last run's certificate (a hint): the records were shown before


def observe(ctx: Context) -> Seen | None:
    """Everything ensure compares, read at once; None without mail to receive (ensure then removes)."""
    if not ctx.config.domain.receives_mail:
        return None
    ses, s3, bucket = ctx.mail("ses"), ctx.mail("s3"), bucket_name(ctx)
    rule_set, legacy = rule_set_name(ctx), _legacy_rule_set(ctx)
    active, identity, (region, current), rules, legacy_rules, issued = together(
        ctx, lambda c: _active_rule_set(ses), lambda c: _identity(c, c.config.domain.mail_region),
        lambda c: _bucket_seen(c, s3, bucket), lambda c: _rules(ses, rule_set),
        lambda c: _rules(ses, legacy) if legacy != rule_set else None,
        lambda c: not c.config.domain.hosted_zone_id and _certificate_issued(c))
    return Seen(active, identity, region, current, rules, legacy_rules, bool(issued))


def ensure(ctx: Context, seen: Seen | None = None) -> None:
    if not ctx.config.domain.receives_mail:  # DNS validation, or ACM mails a parent domain: nothing to receive
        destroy(ctx)
        return
    seen = seen or observe(ctx)
    assert seen is not None  # receives mail
    region = ctx.config.domain.mail_region
    ses, s3 = ctx.mail("ses"), ctx.mail("s3")
    bucket, rule_set, own = bucket_name(ctx), rule_set_name(ctx), ctx.config.domain.mail_rule_set
    active = _checked_active(ctx, seen.active)
    identity_created = _ensure_bucket(ctx, s3, bucket, region, seen.bucket_region, seen.bucket,
                                      creates_identity=seen.identity is None)
    identity = seen.identity or _create_identity(ctx, ses)
    _ensure_records(ctx, identity.token, region, seen.certificate_issued)
    with _shared_edit(ctx, region, rule_set):
        rules = seen.rules
        if _is_shared(ctx, rule_set) and not ctx.planning:  # read again under the account's lease
            active, rules = together(ctx, lambda c: _checked_active(c, _active_rule_set(ses)),
                                     lambda c: _rules(ses, rule_set))
        if rules is None:
            _create_rule_set(ctx, ses, rule_set)
        _ensure_rule(ctx, ses, rule_set, bucket, rules or [])
        if not own and active != rule_set:
            ctx.change("update", f"active SES receipt rule set {rule_set}", ses.set_active_receipt_rule_set,
                       RuleSetName=rule_set)
    legacy = _legacy_rule_set(ctx)
    if legacy != rule_set and seen.legacy_rules is not None:
        ctx.change("delete", f"SES receipt rule set {legacy} (replaced by {rule_set})",
                   ses.delete_receipt_rule_set, RuleSetName=legacy)
    ctx.state.put("mail", {"bucket": bucket, "rule_set": rule_set, "rule": rule_name(ctx), "prefix": PREFIX,
                           "region": region, "identity_created": identity_created})


def check_active_rule_set(ctx: Context) -> str | None:
    """The active receipt rule set in the mail region, if the stack may add its rule there or replace it
    (none, the shared one, the stack's own from before it was shared, or the one ``[domain] mail_rule_set``
    names); any other stops the run before any change (the preflight's check, and this step's)."""
    return _checked_active(ctx, _active_rule_set(ctx.mail("ses")))


def _checked_active(ctx: Context, active: str | None) -> str | None:
    region, own, domain = ctx.config.domain.mail_region, ctx.config.domain.mail_rule_set, ctx.config.domain.name
    bucket = bucket_name(ctx)
    if own and active != own:
        raise DeployError(
            f"domain.mail_rule_set = {own!r} is not the active SES receipt rule set in {region} (active: "
            f"{active or 'none'}); the stack adds its rule to that set but never activates it: activate it, "
            "or remove the key to use the shared set, then run again")
    if not own and active not in (None, SHARED_RULE_SET, _legacy_rule_set(ctx)):
        raise DeployError(
            f"SES in {region} already has an active receipt rule set, {active!r}, and an account has only one per "
            f"region; set domain.mail_rule_set = {active!r} so that the stack adds its rule for {domain} there "
            f"(S3 action to s3://{bucket}/{PREFIX}, then stop), or set domain.mail_region to another SES "
            "receiving region, then run again")
    return active


def destroy(ctx: Context) -> None:
    """The stack's rule (and the shared set once no rule is left), DNS records, identity, bucket: each only if
    this stack's, each absent -> nothing."""
    recorded = ctx.state.get("mail")
    region = recorded.get("region") or ctx.config.domain.mail_region
    ses, s3 = ctx.client("ses", region), ctx.client("s3", region)
    legacy = _legacy_rule_set(ctx)
    rule_sets = list(dict.fromkeys(filter(None, (recorded.get("rule_set"), rule_set_name(ctx), SHARED_RULE_SET))))
    found, bucket_tags, active, seen_identity = _read_for_destroy(ctx, ses, s3, region, [*rule_sets, legacy])
    removed = _remove_rules(ctx, ses, region, rule_sets, legacy, found, active)
    bucket = bucket_name(ctx)
    if bucket_tags is not None and not is_ours(bucket_tags, ctx.stack):
        ctx.out.note(f"Leaving S3 bucket {bucket}: it is not tagged as stack {ctx.stack}'s")
        bucket_tags = None
    if not (recorded or removed or bucket_tags is not None):
        return
    identity = _identity(ctx, region) if seen_identity is UNREAD else cast(Identity | None, seen_identity)
    _remove_records(ctx, identity.token if identity else None, region)
    created = recorded.get("identity_created") or (bucket_tags or {}).get(IDENTITY_TAG) == CREATED
    _release_identity(ctx, ses, region, identity, bool(created))
    if bucket_tags is not None:
        _empty(ctx, s3, bucket)
        ctx.change("delete", f"S3 bucket {bucket}", s3.delete_bucket, Bucket=bucket)


def _read_for_destroy(ctx: Context, ses, s3, region: str,
                      rule_sets: list[str]) -> tuple[dict[str, Any], dict | None, Any, Any]:
    """(each rule set's rules, the bucket's tags or None, the active set, the identity), read at once.

    Every set's rules, the bucket, and, when the stack receives mail (whose reads they are anyway), the
    active set and the identity's token; a stack that does not leaves those two UNREAD, read only once
    something of the mail's is found."""
    looked_at = list(dict.fromkeys(rule_sets))

    def our_bucket(c: Context) -> dict | None:  # its name holds the account id: asked here, not before the sets
        return _bucket_tags(s3, bucket_name(c)) if _bucket_region(c, s3, bucket_name(c)) else None
    early = (lambda c: _active_rule_set(ses), lambda c: _identity(c, region))
    found_all = together(ctx, *[lambda c, name=name: _rules(ses, name) for name in looked_at], our_bucket,
                         *(early if ctx.config.domain.receives_mail else ()))
    rules, bucket_tags = found_all[:len(looked_at)], found_all[len(looked_at)]
    active, seen_identity = found_all[len(looked_at) + 1:] or (UNREAD, UNREAD)
    return dict(zip(looked_at, rules)), bucket_tags, active, seen_identity


def _remove_rules(ctx: Context, ses, region: str, rule_sets: list[str], legacy: str, found: dict[str, Any],
                  active: Any) -> bool:
    """Remove the stack's rule from each set, and the stack's own set from before it was shared; whether
    any of them was there."""
    removed = False
    for rule_set in rule_sets:
        removed = _remove_rule(ctx, ses, region, rule_set, found[rule_set]) or removed
    if found[legacy] is not None:
        removed = True
        _delete_rule_set(ctx, ses, legacy, active)
    return removed


def _release_identity(ctx: Context, ses, region: str, identity: Identity | None, created: bool) -> None:
    """Delete the domain's SES identity if the stack created it and it is not verified by DKIM; else say why not."""
    domain = ctx.config.domain.name
    if identity is not None and created and identity.token is not None:
        ctx.change("delete", f"SES domain identity {domain}", ses.delete_identity, Identity=domain)
    elif identity is not None:
        ctx.out.note(f"Leaving SES domain identity {domain} in {region}: this stack did not create it"
                     + (" (it is verified by DKIM)" if identity.token is None else ""))


# --- bucket -------------------------------------------------------------------

def _bucket_region(ctx: Context, s3, bucket: str) -> str | None:
    """The region of our account's bucket of that name, or None when there is none."""
    try:
        head = s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=ctx.account_id)
    except ClientError as exc:
        if is_code(exc, HTTP_404, NO_SUCH_BUCKET):
            return None
        if is_code(exc, HTTP_403, ACCESS_DENIED):
            raise DeployError(f"S3 bucket {bucket} exists but this account cannot use it (another account owns it, "
                              "or s3:ListBucket is not allowed); remove it or allow access, then run again") from exc
        raise
    return head.get("BucketRegion") or head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")


def _bucket_seen(ctx: Context, s3, bucket: str) -> tuple[str | None, dict[str, Any] | None]:
    """The bucket's region (None: no bucket) and, there, its settings, read at once."""
    found_in = _bucket_region(ctx, s3, bucket)
    if found_in is None:
        return None, None
    readers = {"tags": _bucket_tags, "block": _public_access_block, "policy": _bucket_policy,
               "lifecycle": _lifecycle, "ownership": _ownership, "encryption": _encryption}
    found = together(ctx, *[lambda c, read=read: read(s3, bucket) for read in readers.values()])
    return found_in, dict(zip(readers, found))


def _ensure_bucket(ctx: Context, s3, bucket: str, region: str, found_in: str | None, seen: dict[str, Any] | None,
                   creates_identity: bool) -> bool:
    """Make the bucket as the docstring says; return whether its tags say the stack created the SES identity
    (tagged here, before ``creates_identity`` makes it). found_in, seen: the bucket's region and settings."""
    current = _bucket_in_region(ctx, s3, bucket, region, found_in, seen)
    identity_created = _ensure_bucket_tags(ctx, s3, bucket, current["tags"] or {}, creates_identity)
    _ensure_bucket_closed(ctx, s3, bucket, current)
    policy = bucket_policy(ctx, bucket, region)
    if current["policy"] != policy:
        ctx.change("update", f"policy of S3 bucket {bucket} (only SES may write under {PREFIX})",
                   s3.put_bucket_policy, Bucket=bucket, Policy=json.dumps(policy))
    _ensure_expiry(ctx, s3, bucket, current["lifecycle"])
    return identity_created


def _bucket_in_region(ctx: Context, s3, bucket: str, region: str, found_in: str | None,
                      seen: dict[str, Any] | None) -> dict[str, Any]:
    """The bucket's settings: none for a bucket created now; a bucket in another region stops the run."""
    if found_in is None:
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        ctx.change("create", f"S3 bucket {bucket}", s3.create_bucket, Bucket=bucket, **extra,
                   find=lambda: {} if _bucket_region(ctx, s3, bucket) else None)
        return {"tags": {}, "block": None, "policy": None, "lifecycle": None, "ownership": None, "encryption": None}
    if found_in != region:
        raise DeployError(f"S3 bucket {bucket} is in {found_in} but SES needs it in the mail region {region}; "
                          f"run teardown with domain.mail_region = {found_in!r} first, then deploy again")
    return seen or {}


def _ensure_bucket_tags(ctx: Context, s3, bucket: str, tags: dict, creates_identity: bool) -> bool:
    """Tag the bucket as the stack's (another stack's bucket stops the run), marking that the stack created
    the SES identity when it did or does now; whether it did."""
    if tags.get("stack") not in (None, ctx.stack):
        raise DeployError(f"S3 bucket {bucket} is tagged for stack {tags['stack']!r}, not {ctx.stack!r}; "
                          "remove it or change the stack name")
    identity_created = creates_identity or tags.get(IDENTITY_TAG) == CREATED
    wanted = {**ctx.tags, **({IDENTITY_TAG: CREATED} if identity_created else {})}
    if any(tags.get(k) != v for k, v in wanted.items()):
        ctx.change("update", f"tags of S3 bucket {bucket}", s3.put_bucket_tagging, Bucket=bucket,
                   Tagging={"TagSet": tag_list({**tags, **wanted})})
    return identity_created


def _ensure_bucket_closed(ctx: Context, s3, bucket: str, current: dict[str, Any]) -> None:
    """No public access, no ACLs, encrypted at rest."""
    if current["block"] != BLOCK_ALL:
        ctx.change("update", f"public access block of S3 bucket {bucket}", s3.put_public_access_block,
                   Bucket=bucket, PublicAccessBlockConfiguration=BLOCK_ALL)
    if current["ownership"] != OWNERSHIP:
        ctx.change("update", f"object ownership of S3 bucket {bucket} (BucketOwnerEnforced: no ACLs)",
                   s3.put_bucket_ownership_controls, Bucket=bucket, OwnershipControls=OWNERSHIP)
    if not _sse_s3(current["encryption"]):
        ctx.change("update", f"default encryption of S3 bucket {bucket} (SSE-S3)", s3.put_bucket_encryption,
                   Bucket=bucket, ServerSideEncryptionConfiguration=ENCRYPTION)


def _ensure_expiry(ctx: Context, s3, bucket: str, lifecycle: list[dict] | None) -> None:
    """The mail expiry rule among the bucket's lifecycle rules (others' rules kept)."""
    rule = _expiry_rule()
    if lifecycle is None or rule not in lifecycle:
        others = [r for r in lifecycle or [] if r.get("ID") != rule["ID"]]
        ctx.change("update", f"lifecycle of S3 bucket {bucket} (mail expires after {MAIL_EXPIRY_DAYS} days)",
                   s3.put_bucket_lifecycle_configuration, Bucket=bucket,
                   LifecycleConfiguration={"Rules": others + [rule]})


def bucket_policy(ctx: Context, bucket: str, region: str) -> dict:
    """SES of this account, for this rule only, may put objects under the prefix: nothing else;
    and no one, SES included, without TLS."""
    rule_arn = (f"arn:aws:ses:{region}:{ctx.account_id}:receipt-rule-set/{rule_set_name(ctx)}"
                f":receipt-rule/{rule_name(ctx)}")
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowSESPutMail",
            "Effect": "Allow",
            "Principal": {"Service": "ses.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/{PREFIX}*",
            "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id},
                          "ArnLike": {"aws:SourceArn": rule_arn}},
        }, {
            "Sid": "DenyWithoutTLS",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    }


def _expiry_rule() -> dict:
    return {"ID": "expire-mail", "Filter": {"Prefix": PREFIX}, "Status": "Enabled",
            "Expiration": {"Days": MAIL_EXPIRY_DAYS}}


def _bucket_tags(s3, bucket: str) -> dict:
    found = or_none(s3.get_bucket_tagging, NO_SUCH_TAG_SET, Bucket=bucket)
    return as_dict(found["TagSet"]) if found else {}


def _public_access_block(s3, bucket: str) -> dict | None:
    found = or_none(s3.get_public_access_block, NO_SUCH_PUBLIC_ACCESS_BLOCK_CONFIGURATION, Bucket=bucket)
    return found and found["PublicAccessBlockConfiguration"]


def _bucket_policy(s3, bucket: str) -> dict | None:
    found = or_none(s3.get_bucket_policy, NO_SUCH_BUCKET_POLICY, Bucket=bucket)
    return found and json.loads(found["Policy"])


def _ownership(s3, bucket: str) -> dict | None:
    found = or_none(s3.get_bucket_ownership_controls, OWNERSHIP_CONTROLS_NOT_FOUND_ERROR, Bucket=bucket)
    return found and found["OwnershipControls"]


def _encryption(s3, bucket: str) -> dict | None:
    found = or_none(s3.get_bucket_encryption, SERVER_SIDE_ENCRYPTION_CONFIGURATION_NOT_FOUND_ERROR, Bucket=bucket)
    return found and found["ServerSideEncryptionConfiguration"]


def _sse_s3(encryption: dict | None) -> bool:
    """Whether the bucket's default encryption is SSE-S3 (S3 adds BucketKeyEnabled: false when read back)."""
    rules = (encryption or {}).get("Rules", [])
    return (len(rules) == 1
            and rules[0].get("ApplyServerSideEncryptionByDefault") == ENCRYPTION["Rules"][0][
                "ApplyServerSideEncryptionByDefault"])


def _lifecycle(s3, bucket: str) -> list[dict] | None:
    found = or_none(s3.get_bucket_lifecycle_configuration, NO_SUCH_LIFECYCLE_CONFIGURATION, Bucket=bucket)
    return found and found["Rules"]


def _empty(ctx: Context, s3, bucket: str) -> None:
    """Delete every object version and delete marker, a batch per call.

    All are listed first: deleting between pages would pull the listing's markers away.
    """
    objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
               for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
               for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    for start in range(0, len(objects), DELETE_BATCH):
        batch = objects[start:start + DELETE_BATCH]
        result = ctx.change("delete", f"{len(batch)} objects in S3 bucket {bucket}", s3.delete_objects,
                            Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if result and result.get("Errors"):
            first = result["Errors"][0]
            raise DeployError(f"could not empty S3 bucket {bucket}: {first.get('Key')}: {first.get('Code')} "
                              f"{first.get('Message', '')}; run teardown again")


# --- SES identity and DNS -----------------------------------------------------

@dataclass(frozen=True)
class Identity:
    """The domain's SES identity, as SES answered."""
    token: str | None  # the TXT verification token; None: verified by DKIM only (no TXT record needed)


def _identity(ctx: Context, region: str) -> Identity | None:
    """The domain's identity in the region, or None. Existence from SES v2 (GetEmailIdentity), the token from
    v1: a DKIM-verified identity exists with no token (SES API reference, GetIdentityVerificationAttributes:
    the token is for domain identities verified by TXT)."""
    domain = ctx.config.domain.name
    found, attributes = together(
        ctx, lambda c: or_none(c.client("sesv2", region).get_email_identity, NOT_FOUND_EXCEPTION,
                               EmailIdentity=domain),
        lambda c: c.client("ses", region).get_identity_verification_attributes(Identities=[domain]))
    if found is None:
        return None
    return Identity(attributes["VerificationAttributes"].get(domain, {}).get("VerificationToken"))


def _create_identity(ctx: Context, ses) -> Identity:
    domain = ctx.config.domain.name
    created = ctx.change("create", f"SES domain identity {domain}", ses.verify_domain_identity, Domain=domain)
    if created is None:
        return Identity(UNKNOWN)
    # Read back: the identity's attributes are what SES checks the TXT against.
    found = ses.get_identity_verification_attributes(Identities=[domain])["VerificationAttributes"]
    return Identity(found.get(domain, {}).get("VerificationToken") or created["VerificationToken"])


def _txt(domain: str, token: str) -> dns.Record:
    return dns.Record(f"_amazonses.{domain}", "TXT", (f'"{token}"',))


def _mx(ctx: Context, region: str) -> dns.Record:
    mx = dns.validation_mx(ctx.config)
    return mx if region == ctx.config.domain.mail_region else dns.Record(
        mx.name, "MX", (f"10 inbound-smtp.{region}.amazonaws.com",))


def _ensure_records(ctx: Context, token: str | None, region: str, certificate_issued: bool) -> None:
    """TXT (none for an identity verified by DKIM) and MX, kept for as long as validation is email: ACM's
    renewal mail needs the MX too."""
    domain = ctx.config.domain.name
    records = [*([_txt(domain, token)] if token else []), _mx(ctx, region)]
    zone = ctx.config.domain.hosted_zone_id
    if zone:
        found = together(ctx, *[lambda c, r=r: dns.current(c, zone, r.name, r.type) for r in records])  # read at
        for record, existing in zip(records, found):  # once, written one after the other (one zone)
            dns.ensure(ctx, zone, record, existing=existing)
    elif certificate_issued:
        ctx.out.note(f"Keep the DNS records {'; '.join(r.text() for r in records)}: ACM's renewal mail reaches "
                     "SES through the MX")
    else:
        ctx.out.notice(f"Create these DNS records for {domain}",
                       "\n".join(r.text() for r in records)
                       + "\n\nSES receives ACM's approval mail once they resolve, at first issue and at every "
                         "renewal: keep them.")


def _remove_records(ctx: Context, token: str | None, region: str) -> None:
    domain = ctx.config.domain.name
    mx = _mx(ctx, region)
    txt = _txt(domain, token) if token else None
    zone = ctx.config.domain.hosted_zone_id
    if not zone:
        listed = "; ".join(r.text() for r in (txt, mx) if r)
        ctx.out.note(f"Remove these DNS records for {domain} if you created them: {listed}")
        return
    records = [r for r in (txt, mx) if r]
    found = together(ctx, *[lambda c, r=r: dns.current(c, zone, r.name, r.type) for r in records])  # read at once,
    for record, existing in zip(records, found):  # changed one after the other (one zone)
        dns.remove(ctx, zone, record.name, record.type, only_if=record, existing=existing)


def _certificate_issued(ctx: Context) -> bool:
    """Whether the stack's certificate (per an earlier run's state) is issued: then the records were shown before."""
    arn = ctx.state.earlier("certificate").get("arn")
    if not arn or arn == UNKNOWN:
        return False
    found = or_none(ctx.edge("acm").describe_certificate, RESOURCE_NOT_FOUND_EXCEPTION, CertificateArn=arn)
    cert = found["Certificate"] if found else {}
    return cert.get("Status") == "ISSUED" and cert.get("DomainName") == ctx.config.domain.name


# --- receipt rules ------------------------------------------------------------

def _active_rule_set(ses) -> str | None:
    return ses.describe_active_receipt_rule_set().get("Metadata", {}).get("Name")


def _rules(ses, name: str) -> list[dict] | None:
    """The rules of a receipt rule set, or None when there is no such set."""
    found = or_none(ses.describe_receipt_rule_set, RULE_SET_DOES_NOT_EXIST, RuleSetName=name)
    return None if found is None else found.get("Rules", [])


def _is_shared(ctx: Context, rule_set: str) -> bool:
    """Whether the set is the account's shared one, which the stack creates, activates and deletes."""
    return rule_set == SHARED_RULE_SET and rule_set != ctx.config.domain.mail_rule_set


def _shared_edit(ctx: Context, region: str, rule_set: str):
    """The account's lease on the shared set for the block (see the docstring); nothing for the operator's own
    set, where the stack only adds and removes its rule, or when planning."""
    if ctx.planning or not _is_shared(ctx, rule_set):
        return nullcontext()
    return lease.account_held(ctx, region, SHARED_LEASE, f"edit the shared SES receipt rule set {rule_set}")


def _create_rule_set(ctx: Context, ses, rule_set: str) -> None:
    try:
        ctx.change("create", f"SES receipt rule set {rule_set} (shared by the account's email-validated stacks)",
                   ses.create_receipt_rule_set, RuleSetName=rule_set,
                   find=lambda: {} if _rules(ses, rule_set) is not None else None)
    except ClientError as exc:
        if not is_code(exc, ALREADY_EXISTS):
            raise
        ctx.out.note(f"SES receipt rule set {rule_set} was made by another stack meanwhile: the rule goes there")


def _remove_rule(ctx: Context, ses, region: str, rule_set: str, rules: list[dict] | None) -> bool:
    """Remove the stack's rule from the set (whose rules were read: ``rules``); then the set itself if it is
    the shared one, now empty: the set read again under the account's lease, so that a rule another stack
    added is never deleted with it. Whether the rule was there. The operator's own set is never deactivated or
    deleted."""
    if rules is None or not any(r["Name"] == rule_name(ctx) for r in rules):
        return False
    with _shared_edit(ctx, region, rule_set):
        ctx.change("delete", f"SES receipt rule {rule_name(ctx)} in {rule_set}", ses.delete_receipt_rule,
                   RuleSetName=rule_set, RuleName=rule_name(ctx))
        if _is_shared(ctx, rule_set):
            left = _rules(ses, rule_set) if not ctx.planning else [r for r in rules if r["Name"] != rule_name(ctx)]
            if left == []:  # the active set read again too, under the lease
                _delete_rule_set(ctx, ses, rule_set, UNREAD)
            elif left:
                ctx.out.note(f"Leaving SES receipt rule set {rule_set}: {len(left)} other rule(s) use it")
    return True


def _delete_rule_set(ctx: Context, ses, rule_set: str, active: str | None | object) -> None:
    """active: the active set, as read before the run changed any (only deactivating the one that was
    active changes it), or UNREAD."""
    if (_active_rule_set(ses) if active is UNREAD else active) == rule_set:
        ctx.change("update", f"deactivate SES receipt rule set {rule_set}", ses.set_active_receipt_rule_set)
    ctx.change("delete", f"SES receipt rule set {rule_set}", ses.delete_receipt_rule_set, RuleSetName=rule_set)


def _wanted_rule(ctx: Context, bucket: str) -> dict:
    return {
        "Name": rule_name(ctx),
        "Enabled": True,
        "TlsPolicy": "Optional",
        "Recipients": [ctx.config.domain.name],
        "ScanEnabled": True,
        "Actions": [{"S3Action": {"BucketName": bucket, "ObjectKeyPrefix": PREFIX}},
                    {"StopAction": {"Scope": "RuleSet"}}],
    }


def _comparable(rule: dict) -> dict:
    """A rule as SES returns it, with its defaults filled in and empty fields dropped."""
    return {
        "Name": rule.get("Name"),
        "Enabled": bool(rule.get("Enabled", False)),
        "TlsPolicy": rule.get("TlsPolicy") or "Optional",
        "Recipients": sorted(r.lower() for r in rule.get("Recipients", [])),
        "ScanEnabled": bool(rule.get("ScanEnabled", False)),
        "Actions": [{kind: {k: v for k, v in body.items() if v not in (None, "")} for kind, body in action.items()}
                    for action in rule.get("Actions", [])],
    }


def _ensure_rule(ctx: Context, ses, rule_set: str, bucket: str, rules: list[dict]) -> None:
    wanted = _wanted_rule(ctx, bucket)
    current = next((r for r in rules if r["Name"] == wanted["Name"]), None)
    if current is None:
        ctx.change("create", f"SES receipt rule {wanted['Name']} (mail to {ctx.config.domain.name} -> "
                   f"s3://{bucket}/{PREFIX})", _writing_to(ctx, bucket, ses.create_receipt_rule),
                   RuleSetName=rule_set, Rule=wanted,
                   find=lambda: or_none(ses.describe_receipt_rule, RULE_DOES_NOT_EXIST, RuleSetName=rule_set,
                                        RuleName=wanted["Name"]))
    elif _comparable(current) != _comparable(wanted):
        ctx.change("update", f"SES receipt rule {wanted['Name']}", _writing_to(ctx, bucket, ses.update_receipt_rule),
                   RuleSetName=rule_set, Rule=wanted)


def _writing_to(ctx: Context, bucket: str, call):
    """``call`` (CreateReceiptRule or UpdateReceiptRule, whose S3 action SES tests with a write) retried while
    SES cannot write to the bucket yet: its policy was put a moment ago (see the docstring)."""
    def send(**kwargs):
        return waits.retry_while(ctx, f"the policy of S3 bucket {bucket} to reach SES", lambda: call(**kwargs),
                                 _cannot_write_yet, timeout=POLICY_PROPAGATION_TIMEOUT, interval=2, max_interval=10)
    return send


def _cannot_write_yet(exc: BaseException) -> bool:
    return is_code(exc, INVALID_S3_CONFIGURATION)


# --- the step, declared (provision/registry.py) ---------------------------------



def inventory(config: Config) -> list[str]:
    """The stack's mail bucket (by tag), and its rule in any receipt rule set, its own rule sets and the
    domain's SES identity (untaggable: by name) in every region the stack uses, read back with plain boto3."""
    stack, s3 = config.stack.name, boto3.client("s3")

    def tags(bucket: str) -> list[dict]:
        try:
            return s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
        except ClientError:  # untagged, or not ours to read: not the stack's either way
            return []
    found = [f"bucket {bucket['Name']}" for bucket in s3.list_buckets()["Buckets"] if is_ours(tags(bucket["Name"]), stack)]
    for region in config.regions:
        ses = boto3.client("ses", region_name=region)
        sets = [r["Name"] for r in ses.list_receipt_rule_sets().get("RuleSets", [])]
        found += ([f"receipt rule set {name}" for name in sets if name.startswith(f"{stack}-")]
                  + [f"receipt rule {rule['Name']} in {name}" for name in sets
                     for rule in ses.describe_receipt_rule_set(RuleSetName=name)["Rules"]
                     if rule["Name"] == approval_rule(stack)]
                  + [f"ses identity {i} in {region}" for i in ses.list_identities()["Identities"] if i == config.domain.name])
    return found


def _bucket_arns(names: Names, action: str) -> list[str]:
    bucket = bucket_of(names.config.stack.name, names.account)
    objects = "Object" in action  # s3:GetObject, PutObject, DeleteObject(Version): the bucket's objects
    return [names.unowned_arn("s3", f"{bucket}{'/*' if objects else ''}")]


def drift(session: boto3.Session, config: Config) -> None:
    """Behind the stack's back (when it receives mail): its receipt rule's spam scan flipped."""
    if not config.domain.receives_mail:
        return
    ses = session.client("ses", region_name=config.domain.mail_region)
    active = ses.describe_active_receipt_rule_set()
    rule = next(r for r in active["Rules"] if config.domain.name in r.get("Recipients", []))
    ses.update_receipt_rule(RuleSetName=active["Metadata"]["Name"],
                            Rule={**rule, "ScanEnabled": not rule.get("ScanEnabled")})


def leaves(config: Config, account: Account) -> list[str]:
    """The bucket, the domain's identity and the rule (in the shared set or the operator's own), and with a
    hosted zone the identity's TXT and the MX; nothing unless the stack receives ACM's mail."""
    if not config.domain.receives_mail:
        return []
    domain, zone = config.domain.name, config.domain.hosted_zone_id
    return [f"bucket {bucket_of(config.stack.name, account.id)}", f"ses identity {domain} in {config.domain.mail_region}",
            f"receipt rule {approval_rule(config.stack.name)} in {rule_set_of(config)}",
            *([dns.listed(f"_amazonses.{domain}", "TXT"), dns.listed(domain, "MX")] if zone else [])]


STEP = Step("mail", "Mail for certificate approval", ensure, destroy, observe=observe,
            inventory=(inventory, dns.inventory), leaves=leaves, arns={"s3": _bucket_arns, "route53": dns.arns},
            creates=("CreateBucket", "PutBucketOwnershipControls", "PutBucketEncryption", "PutBucketPolicy",
            "VerifyDomainIdentity", "CreateReceiptRuleSet", "CreateReceiptRule", "SetActiveReceiptRuleSet"),
            removes=("DeleteReceiptRuleSet", "DeleteIdentity", "DeleteBucket"), drift=(drift,))
