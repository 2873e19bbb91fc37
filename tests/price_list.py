"""AWS's Price List API for the tests (moto 5.2.5 has no pricing service): GetProducts answered on the wire.

Documents are in the API's own format (botocore's pricing/2017-10-15/examples-1.json): ``PriceList`` is a
list of JSON strings, each a product with its ``attributes``, ``terms`` -> ``OnDemand`` -> offer ->
``priceDimensions`` -> rate (``beginRange``, ``endRange`` "Inf", ``pricePerUnit`` ``USD`` as a string),
``publicationDate``; filters are applied as the API applies them (TERM_MATCH and EQUALS: the attribute
equals the value; CONTAINS: holds it), pages of ``MaxResults`` with a ``NextToken``.
"""
from __future__ import annotations

import hashlib
import json

from tests.support import response

PUBLISHED = "2026-11-20T18:22:01Z"
OFFER = "JRTCKXETXF"  # AWS's on-demand offer term code
RATE = "6YS6EN2CT7"
# The regions' usage-type prefixes as AWS bills them (us-east-1 has none for Lambda, USE1 elsewhere).
PREFIX = {"eu-west-1": "EU-", "us-east-1": "USE1-"}
EDGE_PREFIX = {"Europe": "EU-", "United States": "US-"}
LOCATIONS = {"eu-west-1": "EU (Ireland)", "us-east-1": "US East (N. Virginia)"}


def document(service: str, usagetype: str, tiers: list[tuple[float, float | None, float]], *, unit: str = "Units",
             region: str | None = None, location: str | None = None, published: str = PUBLISHED,
             **attributes: str) -> dict:
    """One product of the price list, with its on-demand tiers (from, to or None, US$ per unit)."""
    sku = hashlib.sha1(f"{service}{usagetype}{region}{location}{sorted(attributes.items())}".encode()).hexdigest()[:16]
    sku = sku.upper()
    attrs = {"servicecode": service, "usagetype": usagetype, "locationType": "AWS Region" if region else
             "AWS Edge Location", "location": location or LOCATIONS.get(region or "", ""), **attributes}
    if region:
        attrs["regionCode"] = region
    dimensions = {}
    for number, (begin, end, price) in enumerate(tiers):
        code = f"{sku}.{OFFER}.{RATE}{number}"
        dimensions[code] = {"unit": unit, "endRange": "Inf" if end is None else f"{end:.0f}",
                            "description": f"${price} per {unit}", "appliesTo": [], "rateCode": code,
                            "beginRange": f"{begin:.0f}", "pricePerUnit": {"USD": f"{price:.10f}"}}
    return {"product": {"productFamily": "test", "attributes": attrs, "sku": sku}, "serviceCode": service,
            "terms": {"OnDemand": {f"{sku}.{OFFER}": {"priceDimensions": dimensions, "sku": sku,
                                                       "effectiveDate": "2026-11-01T00:00:00Z",
                                                       "offerTermCode": OFFER, "termAttributes": {}}}},
            "version": published.replace("-", "").replace(":", "").replace("T", "")[:14],
            "publicationDate": published}


def regional(service: str, usage: str, region: str, tiers, **attributes) -> dict:
    prefix = "" if (service, region) == ("AWSLambda", "us-east-1") else PREFIX[region]
    return document(service, prefix + usage, tiers, region=region, **attributes)


def catalogue(region: str = "eu-west-1", edge: str = "Europe") -> list[dict]:
    """The products an eu-west-1 stack's estimate reads, at prices unlike the project's table (so a test can
    tell them apart), and the neighbours a loose filter would also bring back."""
    docs = [
        regional("awswaf", "WebACLV2", "us-east-1", [(0, None, 5.5)], unit="WebACL"),
        regional("awswaf", "ShieldProtected-WebACLV2", "us-east-1", [(0, None, 0.0)], unit="WebACL"),
        regional("awswaf", "RuleV2", "us-east-1", [(0, None, 1.1)], unit="Rule"),
        regional("awswaf", "RequestV2-Tier1", "us-east-1", [(0, None, 6.6e-7)], unit="Request"),
        document("AmazonCloudFront", EDGE_PREFIX[edge] + "Requests-Tier2-HTTPS", [(0, None, 1.2e-6)],
                 unit="Requests", location=edge),
        document("AmazonCloudFront", EDGE_PREFIX[edge] + "Requests-HTTPS-Proxy", [(0, None, 2.2e-6)],
                 unit="Requests", location=edge),
        document("AmazonCloudFront", EDGE_PREFIX[edge] + "DataTransfer-Out-Bytes",
                 [(0, 10240, 0.086), (10240, 51200, 0.08), (51200, None, 0.06)], unit="GB",
                 transferType="CloudFront Outbound", fromLocation=edge, toLocation="External"),
        regional("AmazonApiGateway", "ApiGatewayRequest", region,
                 [(0, 333e6, 3.7e-6), (333e6, 1e9, 3.19e-6), (1e9, None, 2.71e-6)], unit="Requests"),
        regional("AmazonApiGateway", "ApiGatewayHttpRequest", region, [(0, None, 1.11e-6)], unit="Requests"),
        regional("AWSLambda", "Request-ARM", region, [(0, None, 2.1e-7)], unit="Requests"),
        regional("AWSLambda", "Request", region, [(0, None, 2.2e-7)], unit="Requests"),
        regional("AWSLambda", "Lambda-Edge-Request", region, [(0, None, 6e-7)], unit="Requests"),
        regional("AWSLambda", "Lambda-GB-Second-ARM", region,
                 [(0, 7.5e9, 1.4e-5), (7.5e9, 18.75e9, 1.2e-5), (18.75e9, None, 1.1e-5)], unit="Lambda-GB-Second"),
        regional("AWSLambda", "Lambda-Provisioned-GB-Second-ARM", region, [(0, None, 8e-6)],
                 unit="Lambda-GB-Second"),
        document("AWSLambda", "Global-Lambda-GB-Second-ARM", [(0, 400000, 0.0)], unit="Lambda-GB-Second",
                 region=region),
        regional("AWSLambda", "Lambda-GB-Second", region, [(0, 6e9, 1.7e-5), (6e9, None, 1.5e-5)],
                 unit="Lambda-GB-Second"),
        regional("AmazonCloudWatch", "CW:AlarmMonitorUsage", region, [(0, None, 0.11)], unit="Alarms"),
        regional("AmazonRDS", "RDS:ProxyUsage", region, [(0, None, 0.018)], unit="Hrs", databaseEngine="MySQL"),
        regional("AmazonRDS", "RDS:ProxyUsage", region, [(0, None, 0.018)], unit="Hrs",
                 databaseEngine="PostgreSQL"),
        regional("AmazonRDS", "InstanceUsage:db.t4g.micro", region, [(0, None, 0.018)], unit="Hrs",
                 instanceType="db.t4g.micro", vcpu="2", databaseEngine="MySQL"),
        regional("AmazonRDS", "InstanceUsage:db.r6g.2xlarge", region, [(0, None, 1.0)], unit="Hrs",
                 instanceType="db.r6g.2xlarge", vcpu="8", databaseEngine="MySQL"),
    ]
    for at, ingest in ((region, 0.57), ("us-east-1", 0.5)):
        docs += [regional("AmazonCloudWatch", "DataProcessing-Bytes", at, [(0, None, ingest)], unit="GB"),
                 regional("AmazonCloudWatch", "DataProcessingIA-Bytes", at, [(0, None, ingest / 2)], unit="GB"),
                 regional("AmazonCloudWatch", "VendedLog-Bytes", at,
                          [(0, 10240, ingest), (10240, 30720, 0.25), (30720, None, 0.1)], unit="GB"),
                 regional("AmazonCloudWatch", "TimedStorage-ByteHrs", at, [(0, None, 0.03)], unit="GB-Mo")]
    return docs


class PriceList:
    """GetProducts over ``documents``: register on a session (``install``); ``asked`` holds each request's body."""

    def __init__(self, documents: list[dict]):
        self.documents = documents
        self.asked: list[dict] = []
        self.hosts: set[str] = set()
        self.failure = None  # a callable returning an error response, to answer every call with

    def install(self, session) -> PriceList:
        session.events.register_first("before-send.pricing.GetProducts", self)
        return self

    def __call__(self, request, **_):
        body = json.loads(request.body)
        self.asked.append(body)
        self.hosts.add(request.url.split("/")[2])
        if self.failure is not None:
            return self.failure()
        found = [d for d in self.documents if d["serviceCode"] == body["ServiceCode"]
                 and all(_matches(d, f) for f in body.get("Filters", []))]
        start = int(body.get("NextToken") or 0)
        size = body.get("MaxResults", 100)
        page = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(d) for d in found[start:start + size]]}
        if start + size < len(found):
            page["NextToken"] = str(start + size)
        return response(200, json.dumps(page))

    def price(self, usagetype: str, factor: float) -> None:
        """Every product of that usage type at ``factor`` times its price, as after AWS changed it."""
        for d in self.documents:
            if d["product"]["attributes"]["usagetype"] == usagetype:
                for term in d["terms"]["OnDemand"].values():
                    for dimension in term["priceDimensions"].values():
                        usd = float(dimension["pricePerUnit"]["USD"]) * factor
                        dimension["pricePerUnit"]["USD"] = f"{usd:.10f}"


def _matches(document: dict, rule: dict) -> bool:
    value = document["product"]["attributes"].get(rule["Field"])
    if rule["Type"] in ("TERM_MATCH", "EQUALS"):
        return value == rule["Value"]
    if rule["Type"] == "CONTAINS":
        return value is not None and rule["Value"] in value
    raise AssertionError(f"filter type {rule['Type']} not used by the toolkit")


def access_denied():
    return response(400, json.dumps({"__type": "AccessDeniedException",
                                     "Message": "User is not authorized to perform: pricing:GetProducts"}))
