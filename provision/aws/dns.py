"""Route 53 records the stack writes in the operator's hosted zone, if one is given.

Records carry no tags: they are known by name and type, and only ever
written (UPSERT) or deleted with their exact current values.
"""
from __future__ import annotations

from dataclasses import dataclass

import boto3

from ..config import Config
from ..context import Context
from ..registry import Names

CLOUDFRONT_ZONE_ID = "Z2FDTNDATAQYW2"  # the fixed hosted zone of every CloudFront alias target


@dataclass(frozen=True)
class Record:
    name: str
    type: str
    values: tuple[str, ...] = ()
    ttl: int = 300
    alias_target: str | None = None  # a CloudFront domain, for alias A/AAAA records

    def text(self) -> str:
        """The record as the operator would type it at a DNS provider."""
        target = self.alias_target or " ".join(self.values)
        return f"{self.name}  {self.type}  {target}"

    def to_route53(self) -> dict:
        rrset: dict = {"Name": _fqdn(self.name), "Type": self.type}
        if self.alias_target:
            rrset["AliasTarget"] = {"HostedZoneId": CLOUDFRONT_ZONE_ID, "DNSName": _fqdn(self.alias_target),
                                    "EvaluateTargetHealth": False}
        else:
            rrset["TTL"] = self.ttl
            rrset["ResourceRecords"] = [{"Value": v} for v in self.values]
        return rrset


def _fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def _route53(ctx: Context):
    return ctx.client("route53", "us-east-1")


def current(ctx: Context, zone_id: str, name: str, rtype: str) -> dict | None:
    """The record set of that name and type in the zone, or None."""
    found = _route53(ctx).list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=_fqdn(name), StartRecordType=rtype, MaxItems="1")
    for rrset in found["ResourceRecordSets"]:
        if rrset["Name"].lower() == _fqdn(name) and rrset["Type"] == rtype:
            return rrset
    return None


def _same(existing: dict, wanted: dict) -> bool:
    if "AliasTarget" in wanted:
        alias = existing.get("AliasTarget") or {}
        return (alias.get("DNSName", "").lower().rstrip(".") == wanted["AliasTarget"]["DNSName"].rstrip(".")
                and alias.get("HostedZoneId") == wanted["AliasTarget"]["HostedZoneId"])
    return (existing.get("TTL") == wanted["TTL"]
            and sorted(r["Value"] for r in existing.get("ResourceRecords", []))
            == sorted(r["Value"] for r in wanted["ResourceRecords"]))


_UNREAD: dict = {}  # "existing" not given: read it here


def ensure(ctx: Context, zone_id: str, record: Record, existing: dict | None = _UNREAD) -> None:
    """Write the record unless it is already exactly so. existing: its record set as already read (None: none)."""
    if existing is _UNREAD:
        existing = current(ctx, zone_id, record.name, record.type)
    wanted = record.to_route53()
    if existing and _same(existing, wanted):
        return
    kind = "update" if existing else "create"
    ctx.change(kind, f"DNS record {record.text()}", _route53(ctx).change_resource_record_sets,
               HostedZoneId=zone_id,
               ChangeBatch={"Comment": f"rds-edge-api stack {ctx.stack}",
                            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": wanted}]})


def remove(ctx: Context, zone_id: str, name: str, rtype: str, only_if: Record | None = None,
           existing: dict | None = _UNREAD) -> None:
    """Delete the record of that name and type, if present (and, given only_if, if it is ours).
    existing: its record set as already read (None: none)."""
    if existing is _UNREAD:
        existing = current(ctx, zone_id, name, rtype)
    if existing is None:
        return
    if only_if is not None and not _same(existing, only_if.to_route53()):
        ctx.out.note(f"Leaving DNS record {name} {rtype}: its value is not the one this stack wrote")
        return
    ctx.change("delete", f"DNS record {name} {rtype}", _route53(ctx).change_resource_record_sets,
               HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": existing}]})


def validation_mx(config) -> Record:
    """The MX that routes the domain's mail to SES during email validation (removed before the final record)."""
    return Record(config.domain.name, "MX", (f"10 inbound-smtp.{config.domain.mail_region}.amazonaws.com",))


# --- for the steps' STEP (provision/registry.py): the certificate's, mail's and domain record's records ----


def listed(name: str, rtype: str) -> str:
    """A record as ``inventory`` names it."""
    return f"dns {rtype} {_fqdn(name)}"


def inventory(config: Config) -> list[str]:
    """Every record under the stack's domain in the account's hosted zones (records carry no tags: by name),
    read back with plain boto3."""
    route53 = boto3.client("route53")
    return [listed(record["Name"], record["Type"]) for zone in route53.list_hosted_zones()["HostedZones"]
            for record in route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
            if record["Type"] not in ("NS", "SOA") and config.domain.name in record["Name"]]


def arns(names: Names, action: str) -> list[str]:
    """The operator's zone (none given: the records are printed, and only the lookups are granted, on "*")."""
    if action == "route53:GetChange":
        return [names.unowned_arn("route53", "change/*")]
    zone = names.config.domain.hosted_zone_id
    return [names.unowned_arn("route53", f"hostedzone/{zone}")] if zone else ["*"]
