"""The steps that build the stack, in the order they run, and why that order.

    client -> CloudFront -> WAF -> API Gateway -> Lambda (in the RDS VPC) -> RDS MySQL

Each step is a module with ``ensure(ctx)`` (find by state hint, tag or name;
create what is missing; update what drifted; leave the rest) and
``destroy(ctx)`` (remove what the stack made; nothing there is fine). The
runner saves the state file after every step, so an interrupted run resumes.

Order, for dependencies and so that slow things overlap:
 1. mail            (email validation of the domain itself) SES receiving + S3
                    bucket + MX, so ACM's approval mail can arrive as soon as
                    it is sent; kept, for every renewal's mail; removed by the
                    deploy that no longer needs it.
 2. certificate     requested early: its validation runs while the compute
                    half is built, and it is waited for only before CloudFront.
    alerts          ([alerts] email) EventBridge rule on ACM's events for the
                    certificate -> SNS topic -> email: needs the certificate's ARN.
 3. iam_role        the function's role, early: new roles take seconds to
                    become assumable by Lambda.
 4. security_groups the function's group, and MySQL from it on the database's.
 5. function        log group first (else Lambda makes one that never expires),
                    then the function in the database's subnets.
 6. api             REST API, method, integration, deployment, key, usage plan.
 7. waf             IP sets and the web ACL (us-east-1, scope CLOUDFRONT).
    waf_logging     the ACL's request log (aws-waf-logs-<stack>, authorization
                    redacted): needs the ACL.
 8. certificate_issued  the wait for ISSUED (approval link shown for email).
 9. cloudfront      the distribution: needs the API, the ACL and the certificate.
10. domain_record   last: alias A/AAAA beside the validation MX, or the CNAME
                    printed (which cannot share its name with an MX: said so).

Teardown runs every step's destroy in reverse order, whatever the config uses
now, so a stack that switched validation modes leaves nothing behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..context import Context
from . import (
    alerts,
    api,
    certificate,
    cloudfront,
    domain_record,
    function,
    iam_role,
    mail,
    security_groups,
    waf,
    waf_logging,
)


def _nothing(ctx: Context) -> None:
    """Waiting leaves nothing to remove."""


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    ensure: Callable
    destroy: Callable


STEPS: tuple[Step, ...] = (
    Step("mail", "Mail for certificate approval", mail.ensure, mail.destroy),
    Step("certificate", "Certificate request", certificate.request, certificate.destroy),
    Step("alerts", "Certificate alerts", alerts.ensure, alerts.destroy),
    Step("iam_role", "IAM role", iam_role.ensure, iam_role.destroy),
    Step("security_groups", "Security groups", security_groups.ensure, security_groups.destroy),
    Step("function", "Lambda function", function.ensure, function.destroy),
    Step("api", "API Gateway", api.ensure, api.destroy),
    Step("waf", "WAF web ACL", waf.ensure, waf.destroy),
    Step("waf_logging", "WAF logging", waf_logging.ensure, waf_logging.destroy),
    Step("certificate_issued", "Certificate issued", certificate.wait_issued, _nothing),
    Step("cloudfront", "CloudFront distribution", cloudfront.ensure, cloudfront.destroy),
    Step("domain_record", "Domain record", domain_record.ensure, domain_record.destroy),
)
