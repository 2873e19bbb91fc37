"""The console script ``rds-edge-api``: ``cli.main`` as a process that ends as soon as its work is done.

A run makes a dozen or more botocore clients, whose service models (EC2's
alone is a 1.7 MB JSON document) are hundreds of thousands of small dicts
and lists. At exit the interpreter's last garbage collections walk every one
of them: about 0.3 s of CPU, a third of a no-op re-deploy's, spent on memory
the process's end frees anyway. ``gc.freeze()`` once the command is over
moves them out of the collector's sight (Python's gc module: frozen objects
are ignored by all future collections). The collector still runs while the
command does, but less often (``GC_THRESHOLD``): the models are loaded in a
burst, which otherwise sets off a full collection over them every few
thousand allocations; cyclic garbage is still collected.

Tests call ``cli.main`` in-process; only the installed script comes here.
"""
from __future__ import annotations

import gc
import sys

GC_THRESHOLD = (20_000, 10, 10)  # allocations before a young collection (CPython's default: 700)


def run() -> None:
    gc.set_threshold(*GC_THRESHOLD)
    from .cli import main

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
    sys.exit(code)
