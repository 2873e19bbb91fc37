"""Hostile requests through the served path (deploy --local --serve), sent as raw bytes (issue 17).

Whatever the request, the caller gets an answer below 500 with no stack trace, and the request log
that reaches the operator's terminal holds no raw control character. Repeated headers follow the
model in provision/local/waf_eval.py (any value of a repeated header may match, as WAF documents for
a repeated query argument) and edge.source_address (the first value of the first X-Forwarded-For).
"""
import base64
import socket
from contextlib import ExitStack

import pytest

from provision.local.serve import LocalPath
from tests.support import ALLOWED, BLOCKED, SERVE_AUTHORIZATION as AUTHORIZATION

WRONG = "Bearer wrong-value"


@pytest.fixture(scope="module")
def edge(served):  # noqa: F811
    """A second served path on the same deployment, whose request log the test reads."""
    config, session, _ = served
    log = []
    with ExitStack() as stack:
        path = stack.enter_context(LocalPath(config, session, port=0, log=log.append))
        yield path, log


def send(path, raw: bytes) -> tuple[int, bytes]:
    """One raw HTTP exchange with the edge: (status, body)."""
    with socket.create_connection(("127.0.0.1", path.edge_port), timeout=30) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def request(target: str | bytes, *headers: tuple[str, str], method: bytes = b"GET") -> bytes:
    target = target.encode("latin-1") if isinstance(target, str) else target
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def items(path, query="key=42"):
    return f"/{path.config.api.path}?{query}"


def good(*extra, xff=ALLOWED, authorization=AUTHORIZATION):
    return (("X-Forwarded-For", xff), ("Authorization", authorization), *extra)


def never_a_5xx_or_a_trace(status, body):
    assert status < 500, (status, body[:300])
    for leak in (b"Traceback", b'File "', b"stackTrace", b"errorType", b"Exception"):
        assert leak not in body, body[:300]


# --- repeated headers -----------------------------------------------------------------------

@pytest.mark.parametrize("first, second, status", [
    (WRONG, AUTHORIZATION, 200), (AUTHORIZATION, WRONG, 200), (AUTHORIZATION, AUTHORIZATION, 200),
    (WRONG, WRONG, 403), ("", WRONG, 403),
], ids=["wrong-then-right", "right-then-wrong", "right-twice", "wrong-twice", "empty-then-wrong"])
def test_two_authorization_headers_are_both_seen_by_waf(edge, first, second, status):
    path, _ = edge
    got, body = send(path, request(items(path), ("X-Forwarded-For", ALLOWED), ("Authorization", first),
                                   ("Authorization", second)))
    assert got == status, body


@pytest.mark.parametrize("headers, status", [
    ([BLOCKED, ALLOWED], 403), ([ALLOWED, BLOCKED], 200), ([f"{ALLOWED}, {BLOCKED}"], 200),
    ([f"{BLOCKED}, {ALLOWED}"], 403), ([f"not-an-address, {ALLOWED}"], 403), (["", ALLOWED], 403),
], ids=["blocked-then-allowed", "allowed-then-blocked", "allowed-first-in-one", "blocked-first-in-one",
        "garbage-first", "empty-then-allowed"])
def test_the_caller_is_the_first_value_of_the_first_forwarded_for_header(edge, headers, status):
    path, _ = edge
    lines = [("X-Forwarded-For", value) for value in headers] + [("Authorization", AUTHORIZATION)]
    got, body = send(path, request(items(path), *lines))
    assert got == status, body


# --- control characters: a 400, and the log escaped -------------------------------------------

@pytest.mark.parametrize("target", [b"/items\x1b[2J", b"/ite\x07ms?key=42", b"/items?key=4\x1b]0;owned\x072",
                                    b"/\x7fitems", b"/items\x00", b"/items?key=\x0142", b"/it\xc3\xa9ms",
                                    b"/items?key=\x85"], ids=repr)
def test_a_control_character_in_the_request_line_is_a_400_logged_escaped(edge, target):
    path, log = edge
    before = len(log)
    status, body = send(path, request(target, *good()))
    assert status == 400, body
    never_a_5xx_or_a_trace(status, body)
    written = log[before:]
    assert written and all(line.isprintable() for line in written), written
    assert "\\x1b" in "".join(written) or b"\x1b" not in target.partition(b"?")[0]


# --- the hostile families: never a 5xx, never a trace -----------------------------------------

NESTED_CURSOR = base64.urlsafe_b64encode(b"[" * 1536).decode().rstrip("=")
HOSTILE = [
    # the query
    ("key=%ff", ()), ("key=%00", ()), ("key=%C0%80", ()), ("key=%ED%A0%80", ()), ("key=" + "k" * 300, ()),
    ("key=42&key=7", ()), ("key[]=42", ()), ("key=%0d%0aX-Injected:%201", ()), ("key=", ()), ("", ()),
    ("key=42&after=" + NESTED_CURSOR, ()), ("key=42&after=" + "A" * 5000, ()), ("key=42&after=%ff", ()),
    ("key=42&after=W1tbW1tbXV1dXV1d", ()), ("key=%2542", ()), ("key=42%", ()), ("key=%%%", ()),
    ("key=$context.identity.sourceIp", ()), ("key=#set($x=1)$x", ()), ("key=\"}]", ()), ("key=" + "%F0%9F%98%80" * 60, ()),
    # the path
    ("key=42", ("path", "//items")), ("key=42", ("path", "/items/../items")), ("key=42", ("path", "/ITEMS")),
    ("key=42", ("path", "/items/")), ("key=42", ("path", "/items;x=1")), ("key=42", ("path", "/%69tems")),
    ("key=42", ("path", "/items%2f..")), ("key=42", ("path", "/" + "a" * 8000)), ("key=42", ("path", "*")),
    ("key=42", ("path", "http://127.0.0.1/items")),
    # the headers
    ("key=42", ("header", ("Authorization", AUTHORIZATION + " "))), ("key=42", ("header", ("X-Api-Key", "x" * 5000))),
    ("key=42", ("header", ("X-Forwarded-For", "1.2.3.4\x1b[2J"))), ("key=42", ("header", ("Content-Length", "5"))),
    ("key=42", ("header", ("Transfer-Encoding", "chunked"))), ("key=42", ("header", ("Host", "evil.example"))),
    ("key=42", ("header", ("X-Big", "b" * 70_000))), ("key=42", ("header", ("Authorization", "\xe9\xff"))),
    # the method
    ("key=42", ("method", b"POST")), ("key=42", ("method", b"DELETE")), ("key=42", ("method", b"FOO")),
    ("key=42", ("method", b"get")), ("key=42", ("method", b"TRACE")), ("key=42", ("method", b"CONNECT")),
]


@pytest.mark.parametrize("query, change", HOSTILE, ids=[f"{i}:{q[:30]!r}:{c!r:.40}" for i, (q, c) in enumerate(HOSTILE)])
def test_a_hostile_request_never_gets_a_5xx_or_a_trace(edge, query, change):
    path, log = edge
    target, headers, method = items(path, query), list(good()), b"GET"
    if change and change[0] == "path":
        target = change[1] + ("?" + query if query and change[1] != "*" else "")
    elif change and change[0] == "header":
        headers.append(change[1])
    elif change and change[0] == "method":
        method = change[1]
    before = len(log)
    status, body = send(path, request(target, *headers, method=method))
    never_a_5xx_or_a_trace(status, body)
    assert all(line.isprintable() for line in log[before:])


def test_the_hostile_families_are_many(edge):
    assert len(HOSTILE) >= 45


def test_a_repeated_query_argument_matches_when_any_value_does():
    """WAF's developer guide (Request components, Single query parameter): all the values, OR logic."""
    from provision.local import waf_eval
    statement = {"ByteMatchStatement": {"FieldToMatch": {"SingleQueryArgument": {"Name": "a"}}, "SearchString": "2",
                                        "PositionalConstraint": "EXACTLY",
                                        "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}
    assert waf_eval.matches(statement, waf_eval.Request("203.0.113.1", "GET", "/", "a=1&A=2", {}), lambda arn: [])
    assert not waf_eval.matches(statement, waf_eval.Request("203.0.113.1", "GET", "/", "b=2", {}), lambda arn: [])
