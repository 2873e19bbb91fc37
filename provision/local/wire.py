"""What the two local servers hand their logic, and get back: a request, an answer."""
from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    note: str = ""  # why, for the request log (never a secret)


def message(status: int, text: str, note: str = "") -> Answer:
    """API Gateway's way of saying no: {"message": text}."""
    return Answer(status, json.dumps({"message": text}).encode(), note=note or text)


@dataclass(frozen=True)
class Incoming:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # names in lower case
    peer: str
    lines: tuple[tuple[str, str], ...] = ()  # every header line as sent, in order (a name may repeat)

    def values(self, name: str) -> tuple[str, ...]:
        """Every value sent for a header (lower-case name), in order: a header may be sent twice."""
        if self.lines:
            return tuple(v for k, v in self.lines if k == name)
        return (self.headers[name],) if name in self.headers else ()
