"""verify for a real deployment, tested on this machine: the stack read back from the emulator, the
caller's address from a local stand-in for checkip, the rows against the locally served path (plain
HTTP), against a closed port and a server too slow to answer. There is no network to AWS here, so the
command itself, run as typed, must say that every row cannot connect, and fail.
"""
import dataclasses
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from provision import walls
from provision.commands import verify
from provision.context import make_context
from provision.local import serving
from tests.mariadb import free_port
from tests.support import EXAMPLE, SERVE_AUTHORIZATION, Run, quiet_output


@pytest.fixture
def local_server():
    """local_server(status, body, delay=0) -> URL of a server answering every GET so."""
    servers = []

    def start(status, body, delay=0.0):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                time.sleep(delay)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_callers_address_comes_from_the_checkip_service(local_server):
    assert verify.caller_address(url=local_server(200, "203.0.113.10\n"))[0] == "203.0.113.10"
    caller, why = verify.caller_address(url=local_server(503, "busy"))
    assert caller is None and "503" in why


def test_the_target_is_read_back_from_the_deployed_stack(served, local_server, monkeypatch):
    config, session, _ = served
    monkeypatch.setattr(verify, "CHECKIP_URL", local_server(200, "198.51.100.7"))
    target = verify.aws_target(make_context(config, session=session, out=quiet_output()), "42")
    cf = session.client("cloudfront", region_name="us-east-1")
    distribution = cf.list_distributions()["DistributionList"]["Items"][0]["DomainName"]
    api = next(a for a in session.client("apigateway", region_name=config.stack.region).get_rest_apis()["items"]
               if a["name"] == config.stack.name)
    # api.example.com does not resolve here: the distribution's own domain stands in.
    assert target.edge_url == f"https://{distribution}/items"
    assert target.invoke_url == f"https://{api['id']}.execute-api.eu-west-1.amazonaws.com/v1/items"
    assert (target.caller, target.authorization, target.claim, target.blocked) == ("198.51.100.7", SERVE_AUTHORIZATION,
                                                                                   None, None)


def test_from_outside_allowed_cidrs_every_edge_row_expects_403_and_says_why(served):
    """The served path, called with no X-Forwarded-For: the edge sees 127.0.0.1, outside the example's ranges."""
    config, _, path = served
    target = walls.Target(edge_url=path.edge_url, invoke_url=path.invoke_url, authorization=SERVE_AUTHORIZATION,
                           allowed_cidrs=config.access.allowed_cidrs, caller="127.0.0.1", key="42", timeout=10)
    rows = walls.check(target)
    assert [r.wall for r in rows] == ["caller address", "WAF + API + function", "API validator",
                                      "WAF: Authorization", "API key"]
    assert all(r.ok for r in rows), rows
    assert "OUTSIDE allowed_cidrs" in rows[0].got
    assert rows[1].expected.startswith("403") and "outside allowed_cidrs" in rows[1].expected
    out = quiet_output()
    assert walls.show(rows, out) is True
    assert SERVE_AUTHORIZATION not in out.console.file.getvalue()


def test_a_wall_that_does_not_hold_fails_its_row(served, local_server):
    """An 'edge' that lets everything through (200 for any request) fails the walls it should be."""
    config, _, path = served
    anything = local_server(200, '{"key": "42", "items": []}')
    target = walls.Target(edge_url=anything, invoke_url=anything, authorization=SERVE_AUTHORIZATION,
                           allowed_cidrs=config.access.allowed_cidrs, caller="203.0.113.10", key="42", timeout=10)
    failed = {r.request for r in walls.check(target) if not r.ok}
    assert failed == {"right Authorization, no key parameter", "wrong Authorization",
                      "straight to the API, without the API key"}


def test_rows_that_cannot_connect_say_so_within_the_timeout(local_server):
    closed = f"http://127.0.0.1:{free_port()}/items"
    slow = local_server(200, "late", delay=3)
    target = walls.Target(edge_url=closed, invoke_url=slow, authorization="x", allowed_cidrs=("203.0.113.0/24",),
                           caller="203.0.113.10", key="42", timeout=0.5)
    started = time.monotonic()
    rows = walls.check(target)
    assert time.monotonic() - started < 5
    assert all(r.got.startswith("cannot connect") and not r.ok for r in rows[1:]), rows


def test_verify_as_typed_reads_the_stack_and_reports_unreachable_rows(served, local_server, monkeypatch):
    """No network to AWS here: the command finds the stack, then every request row cannot connect: exit 1."""
    monkeypatch.setattr(verify, "CHECKIP_URL", local_server(200, "203.0.113.10"))
    code, text = Run("verify", EXAMPLE, "--timeout", "2")
    assert code == 1, text
    assert "does not resolve to the distribution yet" in text and "cloudfront.net" in text
    assert "203.0.113.10, inside allowed_cidrs" in text
    assert text.count("cannot connect") == 4 and "4 of 5 rows do not hold" in text
    assert "the first call can fail once while Lambda restores the function" in text
    assert SERVE_AUTHORIZATION not in text


def test_verify_of_a_stack_that_is_not_deployed_says_so(served, monkeypatch, tmp_path):
    config_text = open(EXAMPLE).read().replace('name = "orders-api"', 'name = "never-deployed"')
    (tmp_path / "stack.toml").write_text(config_text)
    code, text = Run("verify", tmp_path / "stack.toml")
    assert code == 1 and "never-deployed is not deployed" in text


def test_the_local_target_claims_an_allowed_and_a_blocked_address():
    assert serving.local_addresses(("203.0.113.0/24", "2001:db8::/32")) == ("203.0.113.10", "198.51.100.77")
    assert serving.local_addresses(("2001:db8::/32",)) == ("2001:db8::a", "100::1")
    assert serving.local_addresses(("198.51.100.0/24",)) == ("198.51.100.10", "192.0.2.99")


def test_one_set_of_checks_for_both_targets(served):
    """verify --local is the same check() with more inputs: its rows are a superset of the AWS rows."""
    config, session, path = served
    local = serving.local_target(path, config, session)
    aws_like = dataclasses.replace(local, claim=None, blocked=None, expect_items=None, missing_key=None,
                                   api_key=None, caller="203.0.113.10")
    assert {r.wall for r in walls.check(aws_like)} <= {r.wall for r in walls.check(local)}


def test_the_custom_domain_is_used_only_once_it_resolves_to_the_distribution(monkeypatch):
    answers = {"api.example.com": ("api.example.com", {"192.0.2.1"}),
               "d1.cloudfront.net": ("d1.cloudfront.net", {"192.0.2.9"})}
    monkeypatch.setattr(verify, "_resolved", lambda host: answers[host])
    assert verify.edge_host("api.example.com", "d1.cloudfront.net")[0] == "d1.cloudfront.net"  # points elsewhere
    answers["api.example.com"] = ("d1.cloudfront.net", {"192.0.2.9"})  # a CNAME to the distribution
    assert verify.edge_host("api.example.com", "d1.cloudfront.net")[0] == "api.example.com"
    answers["api.example.com"] = ("api.example.com", {"192.0.2.9", "192.0.2.10"})  # an alias record
    assert verify.edge_host("api.example.com", "d1.cloudfront.net")[0] == "api.example.com"
    answers["api.example.com"] = ("api.example.com", set())  # not resolving at all
    assert verify.edge_host("api.example.com", "d1.cloudfront.net")[0] == "d1.cloudfront.net"
