"""The partition of a region: the second field of every ARN the toolkit writes."""
from __future__ import annotations


def partition(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
