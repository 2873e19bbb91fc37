"""Step "cloudfront_logging": CloudFront's standard logging (v2) into CloudWatch Logs, in us-east-1.

CloudFront's record of every request it answered (who, status, time taken,
edge location), the one log that also holds what WAF blocked and what never
reached the API (Prowler's cloudfront_distributions_logging_enabled). The v2
log delivery is three CloudWatch Logs objects besides the group, all in
us-east-1 (CloudFront developer guide, "Configure standard logging (v2)"):
- the log group ``/aws/cloudfront/<stack>/access``, tagged, with the stack's
  retention (``function.log_retention_days``);
- a delivery source ``<stack>-cloudfront`` (PutDeliverySource, the
  distribution's ARN, log type ACCESS_LOGS);
- a delivery destination ``<stack>-cloudfront-logs`` (PutDeliveryDestination:
  the group, JSON records);
- the delivery joining them (CreateDelivery) with ``RECORD_FIELDS``: no
  query string (it holds ?key=), no cookie, no referer.
All three carry the stack's tags. ``[logs] cloudfront = false`` removes them.

Pitfalls:
- A source's resource cannot change ("create a new Delivery Source instead"),
  nor a destination's output format: either drift replaces the object, and
  its delivery with it. A delivery's fields drifting replaces the delivery.
- A source or destination still used by a delivery cannot be deleted: the
  delivery goes first. Once the deliveries are gone, the source, the
  destination and the group go at once; on deploy the source is put while
  the group is made, and the destination (which names the group) after it,
  beside the group's retention.
- The lookups (group and its tags, deliveries, source, destination) go out
  together (``observe``), each by a name the config makes; the distribution's
  ARN is the cloudfront step's, so ensure compares the source with it, never
  observe. What observe sees is this step's alone (``sees_needs=False``): an
  early look holds when the cloudfront step has just made or changed the
  distribution.
- CloudWatch Logs adds the group to a log-delivery resource policy itself on
  the first delivery (CloudWatch Logs user guide, "Logs sent to CloudWatch
  Logs"); that policy entry is AWS's and stays.
"""
from __future__ import annotations

from dataclasses import dataclass

import boto3

from ..aws import log_groups
from ..aws_errors import RESOURCE_NOT_FOUND_EXCEPTION
from ..config import Config
from ..context import EDGE_REGION, UNKNOWN, Context
from ..errors import or_none
from ..registry import Account, Beyond, Names, Step
from ..tags import is_ours
from ..together import together
from .cloudfront import NAME as CLOUDFRONT_STEP, find as find_distribution

NAME = "cloudfront_logging"
LOG_TYPE = "ACCESS_LOGS"
OUTPUT_FORMAT = "json"
# CloudFront's standard log fields (developer guide, "Standard log file fields") minus cs-uri-query (the key),
# cs(Cookie) and cs(Referer).
RECORD_FIELDS = ["date", "time", "x-edge-location", "sc-bytes", "c-ip", "cs-method", "cs(Host)", "cs-uri-stem",
                 "sc-status", "cs(User-Agent)", "x-edge-result-type", "x-edge-request-id", "x-host-header",
                 "cs-protocol", "cs-bytes", "time-taken", "x-forwarded-for", "ssl-protocol", "ssl-cipher",
                 "x-edge-response-result-type", "cs-protocol-version", "c-port", "time-to-first-byte",
                 "x-edge-detailed-result-type", "sc-content-type", "sc-content-len"]


def log_group_name(stack: str) -> str:
    return f"/aws/cloudfront/{stack}/access"


def source_name(stack: str) -> str:
    return f"{stack}-cloudfront"


def destination_name(stack: str) -> str:
    return f"{stack}-cloudfront-logs"


def _distribution_arn(ctx: Context) -> str | None:
    known = ctx.state.get(CLOUDFRONT_STEP).get("arn")
    if known:
        return known
    found = find_distribution(ctx)
    return found["ARN"] if found else None


def _source(logs, stack: str) -> dict | None:
    found = or_none(logs.get_delivery_source, RESOURCE_NOT_FOUND_EXCEPTION, name=source_name(stack))
    return found and found["deliverySource"]


def _destination(logs, stack: str) -> dict | None:
    found = or_none(logs.get_delivery_destination, RESOURCE_NOT_FOUND_EXCEPTION, name=destination_name(stack))
    return found and found["deliveryDestination"]


def _answer(key: str, found: dict | None) -> dict | None:
    """What a put or create would have answered, from what a lookup found after its answer was lost."""
    return {key: found} if found is not None else None


def _deliveries(logs, stack: str) -> list[dict]:
    pages = logs.get_paginator("describe_deliveries").paginate()
    return [d for page in pages for d in page.get("deliveries", [])
            if d.get("deliverySourceName") == source_name(stack)]


def _ours(logs, resource: dict, stack: str) -> bool:
    return is_ours(resource.get("tags") or logs.list_tags_for_resource(resourceArn=resource["arn"])["tags"], stack)


@dataclass
class Seen:
    """What observe read, as AWS answered: ensure does the deciding."""
    group: log_groups.Seen
    deliveries: list[dict]
    source: dict | None
    destination: dict | None


def observe(ctx: Context) -> Seen:
    """The group (and its tags), the deliveries, the source and the destination: every lookup at once."""
    logs = ctx.edge("logs")
    return Seen(*together(ctx, lambda c: log_groups.observe(c, logs, log_group_name(c.stack)),
                          lambda c: _deliveries(logs, c.stack), lambda c: _source(logs, c.stack),
                          lambda c: _destination(logs, c.stack)))


def ensure(ctx: Context, seen: Seen | None = None) -> None:
    if not ctx.config.logs.cloudfront:
        destroy(ctx, seen)
        ctx.state.drop(NAME)
        return
    logs = ctx.edge("logs")
    seen = seen or observe(ctx)
    distribution_arn = _distribution_arn(ctx) or UNKNOWN
    deliveries = list(seen.deliveries)
    name = log_group_name(ctx.stack)
    group, _ = together(ctx, lambda c: log_groups.made(c, logs, name, " in us-east-1", seen.group),
                        lambda c: _ensure_source(c, logs, distribution_arn, deliveries, seen.source))
    group_arn = log_groups.group_arn(group) if group else UNKNOWN

    def destination_then_delivery(c: Context) -> None:
        _ensure_delivery(c, logs, _ensure_destination(c, logs, group_arn, deliveries, seen.destination), deliveries)

    together(ctx, lambda c: log_groups.kept(c, logs, name, group, seen.group), destination_then_delivery)
    ctx.state.put(NAME, {"log_group": log_group_name(ctx.stack), "delivery_source": source_name(ctx.stack)})
    ctx.outputs["CloudFront log group"] = f"{log_group_name(ctx.stack)} (us-east-1)" if group else UNKNOWN


def _delete_deliveries(ctx: Context, logs, deliveries: list[dict], why: str) -> None:
    for delivery in list(deliveries):
        ctx.change("delete", f"CloudFront log delivery {delivery['id']} ({why})", logs.delete_delivery,
                   id=delivery["id"])
        deliveries.remove(delivery)


def _ensure_source(ctx: Context, logs, distribution_arn: str, deliveries: list[dict], source: dict | None) -> None:
    name = source_name(ctx.stack)
    if source is not None and (source.get("resourceArns") != [distribution_arn] or source.get("logType") != LOG_TYPE):
        _delete_deliveries(ctx, logs, deliveries, "its source changes")
        ctx.change("delete", f"delivery source {name} (another distribution)", logs.delete_delivery_source, name=name)
        source = None
    if source is None:
        ctx.change("create", f"delivery source {name}: the distribution's access logs", logs.put_delivery_source,
                   name=name, resourceArn=distribution_arn, logType=LOG_TYPE, tags=ctx.tags,
                   find=lambda: _answer("deliverySource", _source(logs, ctx.stack)))
    elif not _ours(logs, source, ctx.stack):
        ctx.change("update", f"tags of delivery source {name}", logs.tag_resource, resourceArn=source["arn"],
                   tags=ctx.tags)


def _ensure_destination(ctx: Context, logs, group_arn: str, deliveries: list[dict],
                        destination: dict | None) -> dict | None:
    name = destination_name(ctx.stack)
    config = {"destinationResourceArn": group_arn}
    if destination is not None and destination.get("outputFormat") != OUTPUT_FORMAT:
        _delete_deliveries(ctx, logs, deliveries, "its destination changes")
        ctx.change("delete", f"delivery destination {name} (output format)", logs.delete_delivery_destination,
                   name=name)
        destination = None
    if destination is None:
        created = ctx.change("create", f"delivery destination {name}: {log_group_name(ctx.stack)}, JSON",
                             logs.put_delivery_destination, name=name, outputFormat=OUTPUT_FORMAT,
                             deliveryDestinationConfiguration=config, tags=ctx.tags,
                             find=lambda: _answer("deliveryDestination", _destination(logs, ctx.stack)))
        return created and created["deliveryDestination"]
    if destination.get("deliveryDestinationConfiguration") != config:
        ctx.change("update", f"delivery destination {name}: {log_group_name(ctx.stack)}",
                   logs.put_delivery_destination, name=name, outputFormat=OUTPUT_FORMAT,
                   deliveryDestinationConfiguration=config)
    if not _ours(logs, destination, ctx.stack):
        ctx.change("update", f"tags of delivery destination {name}", logs.tag_resource,
                   resourceArn=destination["arn"], tags=ctx.tags)
    return destination


def _ensure_delivery(ctx: Context, logs, destination: dict | None, deliveries: list[dict]) -> None:
    destination_arn = destination["arn"] if destination else UNKNOWN
    wanted = [d for d in deliveries
              if d.get("deliveryDestinationArn") == destination_arn and d.get("recordFields") == RECORD_FIELDS]
    _delete_deliveries(ctx, logs, [d for d in deliveries if d not in wanted], "its fields or destination changed")
    if wanted:
        if not _ours(logs, wanted[0], ctx.stack):
            ctx.change("update", f"tags of CloudFront log delivery {wanted[0]['id']}", logs.tag_resource,
                       resourceArn=wanted[0]["arn"], tags=ctx.tags)
        return
    ctx.change("create", f"CloudFront log delivery {source_name(ctx.stack)} -> {destination_name(ctx.stack)}",
               logs.create_delivery, deliverySourceName=source_name(ctx.stack),
               deliveryDestinationArn=destination_arn, recordFields=RECORD_FIELDS, tags=ctx.tags,
               find=lambda: _answer("delivery", next((d for d in _deliveries(logs, ctx.stack)
                                                      if d.get("deliveryDestinationArn") == destination_arn), None)))


def destroy(ctx: Context, seen: Seen | None = None) -> None:
    """Deliveries first (they hold the source and destination), then those two and the group at once: each if
    ours."""
    logs = ctx.edge("logs")
    seen = seen or observe(ctx)
    together(ctx, *(lambda c, delivery=delivery: c.change("delete", f"CloudFront log delivery {delivery['id']}",
                                                           logs.delete_delivery, id=delivery["id"])
                    for delivery in seen.deliveries if _ours(logs, delivery, ctx.stack)))
    together(ctx, lambda c: _delete_source(c, logs, seen.source), lambda c: _delete_destination(c, logs, seen.destination),
             lambda c: log_groups.destroy(c, logs, log_group_name(c.stack), seen=seen.group))


def _delete_source(ctx: Context, logs, source: dict | None) -> None:
    if source is not None and _ours(logs, source, ctx.stack):
        ctx.change("delete", f"delivery source {source['name']}", logs.delete_delivery_source, name=source["name"])


def _delete_destination(ctx: Context, logs, destination: dict | None) -> None:
    if destination is not None and _ours(logs, destination, ctx.stack):
        ctx.change("delete", f"delivery destination {destination['name']}", logs.delete_delivery_destination,
                   name=destination["name"])


# --- the step, declared (provision/registry.py) ---------------------------------



def inventory(config: Config) -> list[str]:
    """The stack's log delivery, its source and destination (by tag), read back with plain boto3 in us-east-1."""
    logs, found = boto3.client("logs", region_name=EDGE_REGION), []
    for kind, listing, key in (("delivery", logs.describe_deliveries, "deliveries"),
                               ("delivery source", logs.describe_delivery_sources, "deliverySources"),
                               ("delivery destination", logs.describe_delivery_destinations, "deliveryDestinations")):
        found += [f"{kind} {item.get('name') or item['id']}" for item in listing()[key]
                  if is_ours(logs.list_tags_for_resource(resourceArn=item["arn"])["tags"], config.stack.name)]
    return found


def _arns(names: Names, action: str) -> list[str]:
    """The delivery parts (the delivery's id is AWS's) and the log group they deliver to."""
    stack = names.config.stack.name
    source = names.arn("logs", EDGE_REGION, f"delivery-source:{source_name(stack)}")
    destination = names.arn("logs", EDGE_REGION, f"delivery-destination:{destination_name(stack)}")
    delivery = names.arn("logs", EDGE_REGION, "delivery:*")
    if action == "logs:DeleteDeliverySource":  # the reference lists it on delivery-destination (sic); it
        return [source, destination]           # deletes the source, which AWS's example policy grants
    if "DeliverySource" in action:
        return [source]
    if "DeliveryDestination" in action:
        return [destination]
    if action == "logs:CreateDelivery":
        return [source, destination, delivery]
    if "Delivery" in action:
        return [delivery]
    group = log_groups.arns(names, action, EDGE_REGION, log_group_name(stack))
    tagging = action in ("logs:TagResource", "logs:ListTagsForResource")  # the delivery parts are tagged too
    return group + [source, destination, delivery] if tagging else group


BEYOND = (
    Beyond("logs", "PutDeliverySource", ("logs:TagResource", "cloudfront:AllowVendedLogDeliveryForResource"),
           "CloudFront developer guide, 'Configure standard logging (v2)', permissions: a CloudFront delivery "
           "source needs cloudfront:AllowVendedLogDeliveryForResource on the distribution; tags on create need "
           "logs:TagResource"),
    Beyond("logs", "PutDeliveryDestination", ("logs:TagResource",),
           "CloudWatch Logs API reference, PutDeliveryDestination: tags given at creation need logs:TagResource"),
    Beyond("logs", "CreateDelivery", ("logs:TagResource", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                                      "logs:DescribeLogGroups"),
           "CloudWatch Logs user guide, 'Logs sent to CloudWatch Logs' (V2 permissions): the delivery adds the "
           "log group to a log-delivery resource policy; tags on create need logs:TagResource"),
    log_groups.LOG_GROUP_TAGGED,
)


def leaves(config: Config, account: Account) -> list[str]:
    """With [logs] cloudfront: the log group, the delivery source and destination, and the delivery (its id
    is CloudWatch Logs')."""
    if not config.logs.cloudfront:
        return []
    stack = config.stack.name
    return [f"log group {log_group_name(stack)}", f"delivery source {source_name(stack)}",
            f"delivery destination {destination_name(stack)}", "delivery"]


STEP = Step(NAME, "CloudFront logging", ensure, destroy, needs=("cloudfront",), observe=observe,
            sees_needs=False,
            inventory=(log_groups.inventory, inventory), leaves=leaves, arns={"logs": _arns},
            creates=("CreateLogGroup", "PutDeliverySource", "PutDeliveryDestination", "CreateDelivery"),
            removes=("DeleteDelivery", "DeleteDeliverySource", "DeleteDeliveryDestination"), beyond=BEYOND)
