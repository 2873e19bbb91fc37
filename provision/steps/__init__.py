"""The steps that build the stack, what each needs, and why.

    client -> CloudFront -> WAF -> API Gateway -> Lambda (in the RDS VPC) -> RDS MySQL

Each step is a module declaring ``STEP`` (provision/registry.py: its name,
needs, reads and what it owns) beside ``ensure(ctx)`` (find by state hint, tag or name;
create what is missing; update what drifted; leave the rest) and
``destroy(ctx)`` (remove what the stack made; nothing there is fine). A step
``needs`` the steps whose resources or state it uses: the runner starts it as
soon as those are done, so independent chains run side by side, and saves the
state file after every step, so an interrupted run resumes. A step reads only
its own state and that of the steps it needs (directly or through others): the
runner refuses any other read. The graph (docs/architecture.md) is drawn from here.
A step may also have ``observe(ctx)``, its reads alone (own state only): the
runner starts it with the run and hands what it saw to ``ensure(ctx, seen=)``,
so a no-op's lookups all go out at the start, not one step after another.

Three chains run at once on deploy:
- mail (email validation of the domain itself: SES receiving, S3 bucket, MX,
  so ACM's approval mail can arrive) -> certificate (requested early: its
  validation runs while the rest is built) -> alerts (EventBridge -> SNS on
  ACM's events for it) and certificate_issued (the wait for ISSUED, approval
  link shown for email);
- iam_role (new roles take seconds to become assumable) and security_groups
  (the function's group, MySQL from it on the database's) -> function (log
  group first, then the function in the database's subnets, minutes to turn
  Active on AWS) -> invoke_permission (the function's policy: this API may
  invoke it), beside api (REST API, method, integration, deployment, key,
  usage plan), which only names the function and so is built meanwhile; with [database] proxy, proxy
  (its role, group and the RDS Proxy, minutes on AWS) comes between them and the function, which connects
  to its endpoint (at teardown the proxy is deleted while the function is: neither holds on to the other);
- waf (IP sets and the web ACL, us-east-1, scope CLOUDFRONT) -> waf_logging.
They meet at cloudfront (needs the API, the ACL and the issued certificate),
then domain_record (alias A/AAAA beside the validation MX, or the CNAME
printed). With [alerts], alarms (CloudWatch alarms on the API's health, to a
topic in the stack's region) follows function and api. Beside them, the request logs ([logs]): api -> api_access_log (the
stage's JSON access log, and the region's API Gateway CloudWatch role if none
is set) and cloudfront -> cloudfront_logging (standard logging v2 to
CloudWatch Logs in us-east-1: needs the distribution's ARN).

Teardown walks the graph backwards, whatever the config uses now, so a stack
that switched validation modes leaves nothing behind. References AWS does not
hold on to are ``loose`` (the distribution only names the API's domain, the
permission the API's id, the certificate only needed the mail to be
validated): teardown does not wait on them, so the function's network
interfaces are released while CloudFront disables, and the mail goes while
the distribution does. The domain record needs the mail on deploy only
through the distribution; it names it so that teardown changes the domain's
records (A/AAAA, then MX and TXT) one after the other, as Route 53 takes the
changes to one zone (PriorRequestNotComplete, Route 53 API reference,
ChangeResourceRecordSets).
"""
from __future__ import annotations

from .. import graph
from ..registry import Step
from . import (
    alarms,
    alerts,
    api,
    api_access_log,
    certificate,
    certificate_issued,
    cloudfront,
    cloudfront_logging,
    domain_record,
    function,
    iam_role,
    invoke_permission,
    mail,
    proxy,
    security_groups,
    waf,
    waf_logging,
)

# The step modules in the order a deploy lists them (teardown: backwards); each declares its STEP.
MODULES = (mail, certificate, alerts, iam_role, security_groups, proxy, function, api, invoke_permission, alarms,
           api_access_log, waf, waf_logging, certificate_issued, cloudfront, cloudfront_logging, domain_record)
STEPS: tuple[Step, ...] = tuple(module.STEP for module in MODULES)
graph.check(STEPS)
