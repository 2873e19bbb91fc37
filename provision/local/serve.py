"""`deploy --local --serve`: the whole guarded request path, served on loopback from what was deployed.

    curl ──> edge (port N)          CloudFront + WAF, as the distribution and the web ACL say
               ──> API stand-in (N+1)  API Gateway's stage: method, API key, validator, mapping
                     ──> lambda/handler.py  with the function's deployed environment
                           ──> throwaway MariaDB  the config's table with sample rows, over TLS
                                                  (the deployed DB_TLS mode, a throwaway CA)

Every request reads the configuration back from the emulator with boto3 (it
is local and cheap): a change made in the emulator shows in the next answer,
and a drift in any resource shows as a wrong answer. Nothing comes from the
toolkit's memory.

The edge (edge.py) and the API stand-in (api_stand_in.py) are plain
functions from a request to an answer; this module puts them behind two
HTTP servers on loopback (plain HTTP) and starts and stops what they need.
"""
from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from ..errors import DeployError
from ..steps import function as function_step
from . import api_stand_in, edge, sample_data, waf_eval
from .certs import ServerFiles, make_ca, server_files
from .mariadb import MariaDB
from .readback import Deployed
from .wire import Answer, Incoming

BAD_REQUEST = Answer(400, b"Bad Request: the request line holds a character no URL may (a control or "
                          b"non-ASCII one).\n", "text/plain", "control or non-ASCII character in the request line")


def escaped(text: str) -> str:
    """Text for the request log: control and other unprintable characters as escapes, so none reaches the
    operator's terminal raw (an ESC sequence could rewrite it)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _http_handler(answer: Callable[[Incoming], Answer], log: Callable[[str], None], name: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"rds-edge-api-local-{name}"

        def _serve(self):
            path, _, query = self.path.partition("?")
            lines = tuple((k.lower(), v) for k, v in self.headers.items())
            request = Incoming(self.command, path, query, dict(lines), self.client_address[0], lines)
            line = self.command + self.path
            if not (line.isprintable() and line.isascii()):  # as CloudFront: a 400, never a 5xx
                result = BAD_REQUEST
            else:
                try:
                    result = answer(request)
                except Exception as exc:  # a bug or the emulator gone: say so here, not to the caller
                    result = Answer(502, f"The local {name} failed; its terminal says why.\n".encode(), "text/plain",
                                    f"local failure: {type(exc).__name__}: {exc}")
            self.send_response(result.status)
            self.send_header("Content-Type", result.content_type)
            self.send_header("Content-Length", str(len(result.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(result.body)
            caller = edge.source_address(request) if name == "edge" else request.peer
            log(escaped(f"{name:4} {caller:>15} {self.command} {path} -> {result.status} {result.note}"))

        def __getattr__(self, attribute):  # any method, even one http.server does not know: the edge decides
            if attribute.startswith("do_"):
                return self._serve
            raise AttributeError(attribute)

        def log_message(self, *args):  # one line per request comes from _serve
            pass

    return Handler


def _start(handler, port: int) -> ThreadingHTTPServer:
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise DeployError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); choose another with --port") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"local-{port}", daemon=True).start()
    return server


@dataclass(frozen=True)
class DatabaseLink:
    """How the local function reaches the local MariaDB: what stands in for RDS's TLS and IAM sign-in."""
    tls: ServerFiles
    password: str
    environment: dict[str, str]


def database_link(env: dict[str, str], directory: Path) -> DatabaseLink:
    """The deployed DB_TLS mode kept as it is, against a server certificate for 127.0.0.1 from a throwaway CA
    (DB_CA_FILE names that CA: the deployed one is a path inside the function's zip). IAM database
    authentication is RDS's own, so with DB_AUTH=iam the function signs in with a throwaway password instead."""
    tls = server_files(directory / "mariadb-tls", make_ca("rds-edge-api --serve stand-in RDS CA"), "127.0.0.1")
    environment = {"DB_CA_FILE": str(tls.ca)}
    password = env.get("DB_PASSWORD", "")
    if env.get("DB_AUTH") == "iam":
        password = secrets.token_urlsafe(18)
        environment.update(DB_AUTH="password", DB_PASSWORD=password)
    return DatabaseLink(tls, password, environment)


class LocalPath:
    """MariaDB with the sample rows, the API stand-in on port+1 and the edge on port (0: any free ports).

    A context manager: leaving it stops both servers and MariaDB and removes their files.
    """

    def __init__(self, config, session, port: int = 8080, log: Callable[[str], None] | None = None):
        self.config, self.session, self.port = config, session, port
        self.log = log or (lambda line: None)
        self.servers: list[ThreadingHTTPServer] = []
        self.files: Path | None = None
        self.database: MariaDB | None = None
        self.function: api_stand_in.LocalFunction | None = None
        self.iam_stood_in = False  # DB_AUTH=iam deployed; locally a throwaway password stands in

    def __enter__(self) -> "LocalPath":
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        self.files = Path(tempfile.mkdtemp(prefix="rds-edge-serve-"))
        deployed = Deployed(self.session, self.config)
        env = deployed.function_environment(function_step.function_name(self.config.stack.name))
        link = database_link(env, self.files)
        self.database = MariaDB(tls=link.tls).__enter__()
        sample_data.load(self.database, env["DB_NAME"], env["DB_USER"], link.password,
                         env["DB_TABLE"], env["DB_KEY_COLUMN"])
        self.iam_stood_in = env.get("DB_AUTH") == "iam"
        function = api_stand_in.LocalFunction(
            {"DB_HOST": self.database.host, "DB_PORT": str(self.database.port), **link.environment})
        throttles = api_stand_in.Throttles()
        api = _start(_http_handler(lambda r: api_stand_in.answer(deployed, function, r, throttles), self.log, "api"),
                     self.port + 1 if self.port else 0)
        self.servers.append(api)
        api_port = api.server_address[1]
        rates = waf_eval.Rates()
        self.servers.append(_start(_http_handler(lambda r: edge.answer(deployed, r, api_port, rates), self.log,
                                                 "edge"), self.port))
        self.function = function

    @property
    def edge_port(self) -> int:
        return self.servers[1].server_address[1]

    @property
    def api_port(self) -> int:
        return self.servers[0].server_address[1]

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}/{self.config.api.path}"

    @property
    def invoke_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/{self.config.api.stage}/{self.config.api.path}"

    def private_file(self, name: str, text: str) -> Path:
        """A file only this user can read, removed when serving stops."""
        if self.files is None:
            raise RuntimeError("the served path has not started: no private directory yet")
        path = self.files / name
        path.touch(mode=0o600)
        path.write_text(text, encoding="utf-8")
        return path

    def __exit__(self, *exc) -> None:
        if self.files is not None:
            shutil.rmtree(self.files, ignore_errors=True)
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers = []
        if self.function is not None:
            with contextlib.suppress(Exception):  # the handler's connection, before its server goes
                self.function.module._reset()
        if self.database is not None:
            self.database.__exit__()
            self.database = None
