"""Deploy, re-deploy and teardown of the example stack against the embedded emulator (moto).

Prints wall time and AWS calls (changing ones apart) for each phase. Each round
uses a fresh emulator; the figures are the median over the rounds.

    .venv/bin/python bench/deploy.py [--rounds 3] [--validation email|dns]
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from provision import config as config_module, runner  # noqa: E402
from provision.context import make_context  # noqa: E402
from provision.local.certs import stand_in_bundle  # noqa: E402
from provision.local.emulator import emulator, seed  # noqa: E402
from provision.output import Output  # noqa: E402
from provision.steps import STEPS  # noqa: E402

PHASES = ("deploy", "re-deploy", "teardown")


def one_round(validation: str) -> dict[str, tuple[float, int, int]]:
    """Time each phase in a fresh emulator: {phase: (seconds, calls, changing calls)}."""
    figures = {}
    with emulator(), tempfile.TemporaryDirectory() as state_dir:
        config = config_module.load(ROOT / "stack.example.toml")
        config = dataclasses.replace(config, state_dir=Path(state_dir),
                                     domain=dataclasses.replace(config.domain, validation=validation))
        session = boto3.Session(region_name=config.stack.region)
        config = seed(session, config)
        stand_in_bundle(Path(state_dir))  # as --local: no download of AWS's RDS CA bundle
        for phase in PHASES:
            ctx = make_context(config, session=session, sleep=lambda s: None,
                               out=Output(Console(file=io.StringIO(), width=200)))
            started = time.perf_counter()
            (runner.teardown if phase == "teardown" else runner.deploy)(ctx, STEPS)
            figures[phase] = (time.perf_counter() - started, ctx.clients.calls.total, ctx.clients.calls.changing)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--validation", choices=("email", "dns"), default="email")
    args = parser.parse_args()
    os.environ.setdefault("RDS_EDGE_DB_PASSWORD", "bench-only")
    os.environ.setdefault("RDS_EDGE_AUTHORIZATION", "Bearer bench-only")
    rounds = [one_round(args.validation) for _ in range(args.rounds)]
    table = Table(title=f"Example stack ({args.validation} validation) on the embedded emulator, "
                        f"median of {args.rounds} rounds")
    for column in ("phase", "wall time (s)", "min (s)", "AWS calls", "changing"):
        table.add_column(column, justify="right" if column != "phase" else "left")
    for phase in PHASES:
        seconds = [r[phase][0] for r in rounds]
        calls, changing = rounds[0][phase][1], rounds[0][phase][2]
        table.add_row(phase, f"{statistics.median(seconds):.2f}", f"{min(seconds):.2f}", str(calls),
                      str(changing))
    Console().print(table)
    print("The emulator answers at once and never makes anything wait: on AWS, the waits (Lambda Active, "
          "CloudFront Deployed, certificate issued) dominate; the call counts carry over.")


if __name__ == "__main__":
    main()
