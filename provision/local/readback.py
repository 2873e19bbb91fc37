"""The deployed stack, read back from the emulator with boto3: one call per need, on every request.

The local edge and API stand-in take everything from here, never from the
toolkit's memory, so a change made in the emulator shows in the next answer.
"""
from __future__ import annotations

from ..steps import api as api_step, cloudfront as cloudfront_step
from ..steps.waf import SCOPE
from ..tags import is_ours

EDGE_REGION = "us-east-1"


def all_items(apigw, call: str, **kwargs) -> list[dict]:
    """Every item of an API Gateway list call, through boto3's paginator."""
    return [item for page in apigw.get_paginator(call).paginate(**kwargs) for item in page.get("items", [])]


class Deployed:
    """Reads the deployed stack back from the emulator, one call per need, every time."""

    def __init__(self, session, config):
        self.config = config
        self.cloudfront = session.client("cloudfront", region_name=EDGE_REGION)
        self.wafv2 = session.client("wafv2", region_name=EDGE_REGION)
        self.apigateway = session.client("apigateway", region_name=config.stack.region)
        self.lambda_ = session.client("lambda", region_name=config.stack.region)

    def distribution(self) -> dict | None:
        """The stack's distribution config, found by its comment and tags."""
        wanted = cloudfront_step.comment(self.config.stack.name)
        for page in self.cloudfront.get_paginator("list_distributions").paginate():
            for item in page["DistributionList"].get("Items") or []:
                tags = self.cloudfront.list_tags_for_resource(Resource=item["ARN"])["Tags"].get("Items")
                if item.get("Comment") == wanted and is_ours(tags, self.config.stack.name):
                    return self.cloudfront.get_distribution_config(Id=item["Id"])["DistributionConfig"]
        return None

    def web_acl(self, arn: str) -> dict:
        name, acl_id = arn.split("/")[-2:]
        return self.wafv2.get_web_acl(Name=name, Scope=SCOPE, Id=acl_id)["WebACL"]

    def ip_set(self, arn: str) -> list[str]:
        name, set_id = arn.split("/")[-2:]
        return self.wafv2.get_ip_set(Name=name, Scope=SCOPE, Id=set_id)["IPSet"]["Addresses"]

    def stack_api_id(self) -> str | None:
        for api in all_items(self.apigateway, "get_rest_apis"):
            if api["name"] == api_step.api_name(self.config.stack.name):
                return api["id"]
        return None

    def function_environment(self, function: str) -> dict[str, str]:
        config = self.lambda_.get_function_configuration(FunctionName=function)
        return dict((config.get("Environment") or {}).get("Variables") or {})

    def valid_key(self, api_id: str, stage: str, value: str) -> bool:
        """An enabled key with this value in a usage plan bound to this API's stage."""
        if not value:
            return False
        for plan in all_items(self.apigateway, "get_usage_plans"):
            if not any(s.get("apiId") == api_id and s.get("stage") == stage for s in plan.get("apiStages") or []):
                continue
            for key in all_items(self.apigateway, "get_usage_plan_keys", usagePlanId=plan["id"]):
                if key.get("value") == value and self.apigateway.get_api_key(apiKey=key["id"]).get("enabled"):
                    return True
        return False
