"""The command as the operator runs it, behind a slow link: deploy, no-op re-deploy and teardown.

The emulator (moto's server, ThreadedMotoServer, in this process) sits behind
a loopback proxy that holds every AWS call for a fixed delay (0 and 120 ms:
about a real API round trip), counting the calls and the most in flight at
once. Each phase runs the installed console script ``rds-edge-api`` as a
process, end to end (the interpreter's start, the imports, the config check,
the preflight, the lease and the steps), and takes its wall time and its CPU
(user + system of that child alone, from ``os.wait4``). For each stack (email
and dns validation, both with a hosted zone) and phase it prints the median of
the rounds: wall at each delay, the command's own CPU at the first delay, the
calls (the lease's bookkeeping included), the changing calls the command
reports, the most in flight, and the sequential round trips on the critical
path ((wall at 120 ms - wall at 0 ms) / 120 ms).

Before the clock starts, one read goes to each service the stack uses: moto
builds a service's backend on its first call (IAM loads AWS's managed
policies), about 1.8 s of CPU that AWS never spends; the warm-up's time is
printed beside the table.

``--runner`` also times the runner alone, in this process (the steps' graph
without the interpreter's start, the preflight or the lease), beside it.

Then a model of a real teardown: the emulator made to take its time as AWS
does (a disabled distribution deploys in 10 minutes; a deleted VPC function's
network interfaces hold its security group for 25 minutes), at 1 s a minute.
Run one after the other, the two chains take their sum; side by side, about
the longer one.

    .venv/bin/python bench/latency.py [--rounds 3] [--delays 0,120] [--runner] [--no-model]
"""
from __future__ import annotations

import argparse
import dataclasses
import http.client
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from botocore.client import BaseClient  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from provision import config as config_module, runner  # noqa: E402
from provision.context import make_context  # noqa: E402
from provision.local.certs import stand_in_bundle  # noqa: E402
from provision.local.emulator import emulator, seed  # noqa: E402
from provision.output import Output  # noqa: E402
from provision.steps import STEPS  # noqa: E402

PHASES = ("deploy", "re-deploy", "teardown")
COMMAND = Path(sys.executable).with_name("rds-edge-api")  # the installed console script, as the operator runs it
CALLS_LINE = re.compile(r"(\d+) AWS calls \((\d+) changing\)")
PLACEHOLDER_ZONE = "Z0123456789ABCDEFGHIJ"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
SCALE = 60.0  # simulated seconds per wall second in the teardown model: 1 s a minute
CLOUDFRONT_DISABLE_MIN, ENI_RELEASE_MIN = 10, 25


@dataclasses.dataclass(frozen=True)
class Figures:
    """One phase: wall and CPU seconds, calls through the link, changing calls the command reported,
    the most calls in flight at once."""
    wall: float
    cpu: float
    calls: int
    changing: int
    most: int


@dataclasses.dataclass
class Link:
    """The delay, and what went through: requests, and the most in flight at once."""
    delay: float
    requests: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def reset(self) -> None:
        with self.lock:
            self.requests = self.most_in_flight = 0


TRACE: list | None = None


def _operation(headers, path: str, body: bytes) -> str:
    service = (headers.get("Authorization") or "").split("/")[3:4]
    target = headers.get("X-Amz-Target") or ""
    action = re.search(rb"Action=(\w+)", body)
    name = target.split(".")[-1] or (action.group(1).decode() if action else path.split("?")[0][:60])
    return f"{service[0] if service else '?'} {name}"


@contextmanager
def slow_link(target: str, link: Link):
    """A loopback proxy to ``target`` that holds each request ``link.delay`` seconds; yields its URL."""
    upstream = urlsplit(target)

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            began = time.perf_counter()
            link.enter()
            try:
                time.sleep(link.delay)
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
            finally:
                link.leave()
            if TRACE is not None:
                TRACE.append((began, time.perf_counter(), _operation(self.headers, self.path, body)))
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _write_config(folder: Path, validation: str, zone_id: str) -> Path:
    """stack.example.toml with the validation chosen and a hosted zone named; state in ``folder``/.state."""
    text = (ROOT / "stack.example.toml").read_text()
    text = text.replace('validation = "email"', f'validation = "{validation}"')
    text = text.replace(f'# hosted_zone_id = "{PLACEHOLDER_ZONE}"', f'hosted_zone_id = "{zone_id}"')
    path = folder / "stack.toml"
    path.write_text(text)
    return path


def _stack(folder: Path, validation: str, session) -> tuple[Path, config_module.Config]:
    """The operator's side seeded in the emulator, and the config file naming it."""
    config = seed(session, config_module.load(_write_config(folder, validation, PLACEHOLDER_ZONE)))
    path = _write_config(folder, validation, config.domain.hosted_zone_id)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    stand_in_bundle(config.state_dir)  # as --local: no download of AWS's RDS CA bundle
    return path, config


def _ctx(config, session, sleep=lambda s: None):
    return make_context(config, session=session, sleep=sleep, out=Output(Console(file=io.StringIO(), width=200)))


# One read per service (and region) the stack calls: each builds moto's backend before the clock starts.
WARM_UP = (("iam", None, "list_roles", {}), ("sts", None, "get_caller_identity", {}),
           ("lambda", None, "list_functions", {}), ("apigateway", None, "get_rest_apis", {}),
           ("logs", None, "describe_log_groups", {}), ("logs", "us-east-1", "describe_log_groups", {}),
           ("wafv2", "us-east-1", "list_web_acls", {"Scope": "CLOUDFRONT"}),
           ("cloudfront", "us-east-1", "list_distributions", {}), ("acm", "us-east-1", "list_certificates", {}),
           ("s3", None, "list_buckets", {}), ("ses", "mail", "list_identities", {}),
           ("sns", "us-east-1", "list_topics", {}), ("events", "us-east-1", "list_rules", {}),
           ("dynamodb", None, "list_tables", {}), ("route53", None, "list_hosted_zones", {}))
warm_ups: list[float] = []


def _warm_up(session, config) -> None:
    started = time.perf_counter()
    for service, region, call, kwargs in WARM_UP:
        where = {None: config.stack.region, "mail": config.domain.mail_region}.get(region, region)
        getattr(session.client(service, region_name=where), call)(**kwargs)
    warm_ups.append(time.perf_counter() - started)


def run_command(argv: list[str], env: dict[str, str], folder: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the command's process alone, its output); a failure stops the bench."""
    with open(folder / "command.out", "w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen([str(COMMAND), *argv], env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if process.returncode != 0:
        raise RuntimeError(f"rds-edge-api {' '.join(argv)} exited {process.returncode}:\n{text}")
    return wall, usage.ru_utime + usage.ru_stime, text


def command_env() -> dict[str, str]:
    """The environment the command runs in: its modules compiled once, as pip compiles an installed
    package, in a cache of the bench's own (this machine may set PYTHONDONTWRITEBYTECODE, which would
    compile every module again on every run, and the worktree stays clean)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "rds-edge-api-bench-pycache")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "provision")], env=env, check=True)
    return env


def one_round(validation: str, delay: float) -> dict[str, Figures]:
    """{phase: figures}, each phase the console script run as a process, in a fresh emulator behind the link."""
    figures = {}
    with emulator() as endpoint, tempfile.TemporaryDirectory() as folder:
        session = boto3.Session(region_name=config_module.load(ROOT / "stack.example.toml").stack.region)
        path, config = _stack(Path(folder), validation, session)
        _warm_up(session, config)
        link = Link(delay)
        with slow_link(endpoint, link) as proxy:
            env = {**command_env(), "AWS_ENDPOINT_URL": proxy}
            for phase in PHASES:
                argv = ["teardown", "--yes"] if phase == "teardown" else ["deploy"]
                link.reset()
                wall, cpu, text = run_command([*argv, "--config", str(path)], env, Path(folder))
                reported = CALLS_LINE.findall(text)
                figures[phase] = Figures(wall, cpu, link.requests, int(reported[-1][1]) if reported else -1,
                                         link.most_in_flight)
    return figures


def runner_round(validation: str, delay: float) -> dict[str, float]:
    """{phase: seconds} of the runner alone, in this process: the steps' graph, no start-up, preflight or lease."""
    seconds = {}
    with emulator() as endpoint, tempfile.TemporaryDirectory() as folder:
        session = boto3.Session(region_name=config_module.load(ROOT / "stack.example.toml").stack.region)
        _, config = _stack(Path(folder), validation, session)
        _warm_up(session, config)
        with slow_link(endpoint, Link(delay)) as proxy:
            os.environ["AWS_ENDPOINT_URL"] = proxy
            for phase in PHASES:
                ctx = _ctx(config, session)
                started = time.perf_counter()
                (runner.teardown if phase == "teardown" else runner.deploy)(ctx, STEPS)
                seconds[phase] = time.perf_counter() - started
            os.environ["AWS_ENDPOINT_URL"] = endpoint
    return seconds


@contextmanager
def aws_takes_its_time():
    """The emulator's slow state changes as AWS has them, on the simulated clock (wall time x SCALE)."""
    original, marks = BaseClient._make_api_call, {}

    def now() -> float:
        return time.monotonic() * SCALE

    def call(client, operation, params):
        if operation == "DeleteSecurityGroup" and now() < marks.get("function deleted", now()) + ENI_RELEASE_MIN * 60:
            raise ClientError({"Error": {"Code": "DependencyViolation", "Message": "resource has a dependent object"}},
                              operation)
        answer = original(client, operation, params)
        if operation == "UpdateDistribution" and not params["DistributionConfig"]["Enabled"]:
            marks["distribution disabled"] = now()
        elif operation == "DeleteFunction":
            marks["function deleted"] = now()
        elif operation == "GetDistribution" and "distribution disabled" in marks:
            if now() < marks["distribution disabled"] + CLOUDFRONT_DISABLE_MIN * 60:
                answer["Distribution"]["Status"] = "InProgress"
        return answer

    BaseClient._make_api_call = call
    try:
        yield
    finally:
        BaseClient._make_api_call = original


def teardown_model() -> float:
    """Simulated minutes a dns stack's teardown takes when AWS takes its time."""
    with emulator(), tempfile.TemporaryDirectory() as folder:
        session = boto3.Session(region_name=config_module.load(ROOT / "stack.example.toml").stack.region)
        _, config = _stack(Path(folder), "dns", session)
        runner.deploy(_ctx(config, session), STEPS)
        with aws_takes_its_time():
            started = time.monotonic()
            runner.teardown(_ctx(config, session, sleep=lambda s: time.sleep(s / SCALE)), STEPS)
            return (time.monotonic() - started) * SCALE / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delays", default="0,120", help="milliseconds added to each call, comma-separated")
    parser.add_argument("--runner", action="store_true", help="also time the runner alone, in this process")
    parser.add_argument("--stacks", default="email,dns", help="validations to run, comma-separated")
    parser.add_argument("--no-model", action="store_true", help="skip the teardown model")
    args = parser.parse_args()
    os.environ.setdefault("RDS_EDGE_DB_PASSWORD", "bench-only")
    os.environ.setdefault("RDS_EDGE_AUTHORIZATION", "Bearer bench-only")
    delays = [int(d) for d in args.delays.split(",")]
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    table = Table(title=f"rds-edge-api as a process behind a slow link, median of {args.rounds} rounds")
    columns = ["stack", "phase", *(f"wall at {d} ms (s)" for d in delays), f"CPU at {delays[0]} ms (s)"]
    columns += [f"runner alone at {d} ms (s)" for d in delays] if args.runner else []
    columns += ["calls", "changing", "most in flight", "round trips on the critical path"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("stack", "phase") else "right")
    for validation in args.stacks.split(","):
        results = {d: [one_round(validation, d / 1000) for _ in range(args.rounds)] for d in delays}
        alone = ({d: [runner_round(validation, d / 1000) for _ in range(args.rounds)] for d in delays}
                 if args.runner else {})
        for phase in PHASES:
            walls = {d: statistics.median(r[phase].wall for r in results[d]) for d in delays}
            cpu = statistics.median(r[phase].cpu for r in results[delays[0]])
            last = results[delays[-1]][0][phase]
            path = (f"{(walls[delays[-1]] - walls[delays[0]]) / ((delays[-1] - delays[0]) / 1000):.0f}"
                    if len(delays) > 1 and delays[-1] > delays[0] else "-")
            shares = [f"{statistics.median(r[phase] for r in alone[d]):.2f}" for d in delays] if alone else []
            table.add_row(validation, phase, *(f"{walls[d]:.2f}" for d in delays), f"{cpu:.2f}", *shares,
                          str(last.calls), str(last.changing), str(last.most), path)
    Console(width=200).print(table)
    print(f"Warm-up before each round (one read per service, building moto's backends; not timed above): "
          f"median {statistics.median(warm_ups):.2f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    if args.no_model:
        return
    minutes = teardown_model()
    print(f"Teardown model (CloudFront disable {CLOUDFRONT_DISABLE_MIN} min, network interfaces "
          f"{ENI_RELEASE_MIN} min): {minutes:.1f} simulated minutes; one chain after the other would take "
          f"{CLOUDFRONT_DISABLE_MIN + ENI_RELEASE_MIN} min or more, the longer chain alone {ENI_RELEASE_MIN} min.")


if __name__ == "__main__":
    main()
