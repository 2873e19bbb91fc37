"""The deployed stack, read back from the emulator with boto3: one call per need, on every request.

The local edge and API stand-in take everything from here, never from the
toolkit's memory, so a change made in the emulator shows in the next answer.
The stack's distribution and REST API are found by their steps' own ``find``
(by tag, as deploy finds them), through a planning context without a state:
no state hint to go stale, and the plan guard refuses any changing call.
"""
from __future__ import annotations

from ..context import make_context
from ..output import Output
from ..steps import api as api_step, cloudfront as cloudfront_step
from ..steps.waf import SCOPE


def all_items(apigw, call: str, **kwargs) -> list[dict]:
    """Every item of an API Gateway list call, through boto3's paginator."""
    return [item for page in apigw.get_paginator(call).paginate(**kwargs) for item in page.get("items", [])]


class Deployed:
    """Reads the deployed stack back from the emulator, one call per need, every time."""

    def __init__(self, session, config):
        self.config = config
        self.ctx = make_context(config, session=session, planning=True, read_state=False, out=Output())
        self.cloudfront = self.ctx.edge("cloudfront")
        self.wafv2 = self.ctx.edge("wafv2")
        self.apigateway = self.ctx.client("apigateway")
        self.lambda_ = self.ctx.client("lambda")

    def distribution(self) -> dict | None:
        """The stack's distribution config, found as the CloudFront step finds it (comment and tags)."""
        found = cloudfront_step.find(self.ctx)
        return None if found is None else self.cloudfront.get_distribution_config(Id=found["Id"])["DistributionConfig"]

    def web_acl(self, arn: str) -> dict:
        name, acl_id = arn.split("/")[-2:]
        return self.wafv2.get_web_acl(Name=name, Scope=SCOPE, Id=acl_id)["WebACL"]

    def ip_set(self, arn: str) -> list[str]:
        name, set_id = arn.split("/")[-2:]
        return self.wafv2.get_ip_set(Name=name, Scope=SCOPE, Id=set_id)["IPSet"]["Addresses"]

    def stack_api_id(self) -> str | None:
        """The stack's REST API, found as the API step finds it (by the stack's tags, not the name alone)."""
        api = api_step.find(self.ctx)
        return None if api is None else api["id"]

    def function_environment(self, function: str) -> dict[str, str]:
        config = self.lambda_.get_function_configuration(FunctionName=function)
        return dict((config.get("Environment") or {}).get("Variables") or {})

    def key_plan(self, api_id: str, stage: str, value: str) -> tuple[str, dict] | None:
        """(key id, usage plan) of an enabled key with this value in a usage plan bound to this API's stage."""
        if not value:
            return None
        for plan in all_items(self.apigateway, "get_usage_plans"):
            if not any(s.get("apiId") == api_id and s.get("stage") == stage for s in plan.get("apiStages") or []):
                continue
            for key in all_items(self.apigateway, "get_usage_plan_keys", usagePlanId=plan["id"]):
                if key.get("value") == value and self.apigateway.get_api_key(apiKey=key["id"]).get("enabled"):
                    return key["id"], plan
        return None
