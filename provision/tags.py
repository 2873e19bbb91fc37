"""The stack's tags: how every resource is found, audited and removed."""
from __future__ import annotations

MANAGED_BY = "rds-edge-api"


def stack_tags(stack: str) -> dict[str, str]:
    return {"stack": stack, "managed-by": MANAGED_BY}


def tag_list(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """Tags in the [{"Key": ..., "Value": ...}] shape most services take."""
    return [{key: k, value: v} for k, v in tags.items()]


def as_dict(tags: list[dict] | dict | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    """Tags as a dict, whichever shape a service returned them in."""
    if not tags:
        return {}
    if isinstance(tags, dict):
        return dict(tags)
    return {t[key]: t[value] for t in tags}


def is_ours(tags: list[dict] | dict | None, stack: str) -> bool:
    """True when the tags mark the resource as this stack's."""
    found = as_dict(tags)
    return found.get("stack") == stack and found.get("managed-by") == MANAGED_BY
