"""What the stack admits, and where it stops first: the limits of each layer, side by side.

MySQL's connection limit on RDS is ``max_connections``, by default
``{DBInstanceClassMemory/12582880}`` (RDS user guide, "Maximum number of database
connections", MySQL and MariaDB). DBInstanceClassMemory is the class's memory less
what the OS and RDS's processes keep, so the live value is a little lower than the
formula on the class's whole memory (a 1 GiB class shows about 60-66, the formula
gives 85): the table below applies the formula to 75 % of the class's memory, the
low end of what instances report, and an instance with its own parameter group
may allow more or less (``SHOW VARIABLES LIKE 'max_connections'`` says).
"""
from __future__ import annotations

import re

FORMULA_DIVISOR = 12_582_880  # bytes of DBInstanceClassMemory per connection, RDS's MySQL default
USABLE = 0.75  # of the class's memory, as DBInstanceClassMemory
GIB = 1 << 30
# Memory (GiB) by size, for the burstable (t), general purpose (m) and memory optimized (r) families of any
# generation (RDS user guide, "Hardware specifications for DB instance classes").
_MEMORY_GIB = {
    "t": {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32},
    "m": {"large": 8, "xlarge": 16, "2xlarge": 32, "4xlarge": 64, "8xlarge": 128, "12xlarge": 192,
          "16xlarge": 256, "24xlarge": 384},
    "r": {"large": 16, "xlarge": 32, "2xlarge": 64, "4xlarge": 128, "8xlarge": 256, "12xlarge": 384,
          "16xlarge": 512, "24xlarge": 768},
}
_CLASS = re.compile(r"db\.([tmr])[0-9]+[a-z-]*\.([0-9]*x?large|micro|small|medium)")


def memory_gib(instance_class: str) -> int | None:
    """The class's memory, or None for a class outside the table (x2g, z1d, serverless...)."""
    found = _CLASS.fullmatch(instance_class or "")
    return _MEMORY_GIB[found.group(1)].get(found.group(2)) if found else None


def max_connections(instance_class: str) -> int | None:
    """RDS MySQL's default max_connections for the class (an estimate: see the module's docstring)."""
    gib = memory_gib(instance_class)
    return None if gib is None else int(gib * GIB * USABLE // FORMULA_DIVISOR)


# The handler's time per request on a warm container, for what the function admits and what it is billed
# (the estimate, provision/cost/estimate.py): an upper bound of bench/handler.py's p99 over verified TLS
# against a local MariaDB (docs/benchmarks.md). On AWS the round trip to RDS inside the region adds about
# a millisecond: [cost] handler_ms states a measured figure.
HANDLER_MS = 2.0


def walls(config) -> list[tuple[str, str, float, str]]:
    """(wall, its setting, requests per second it admits, what callers get beyond it), in the order a request
    meets them."""
    access, api, function = config.access, config.api, config.function
    found = [("the per-caller limit", f"{access.rate_limit} per {access.rate_window_s} s, WAF",
              access.rate_limit / access.rate_window_s, "429 to that address"),
             ("the usage plan", f"{api.throttle_rate:g}/s, burst {api.throttle_burst}", api.throttle_rate,
              "429 to every caller")]
    if function.max_concurrency:
        found.append(("the function", f"{function.max_concurrency} concurrent x {HANDLER_MS:g} ms",
                      function.max_concurrency * 1000 / HANDLER_MS, "throttled, 5xx"))
    return found


def summary(config, instance_class: str) -> str:
    """One line: what each wall admits, where one caller and all callers stop first, and whether the database's
    connections cover what the function may open."""
    found = walls(config)
    one = min(found, key=lambda wall: wall[2])
    every = min(found[1:], key=lambda wall: wall[2])
    parts = [f"{name} ({setting}) {rate:,.1f}/s, then {beyond}" for name, setting, rate, beyond in found]
    limit, held = max_connections(instance_class), config.function.max_concurrency
    if config.database.proxy:  # the proxy's pool takes up to 100 % of max_connections (MaxConnectionsPercent)
        parts.append(f"the database {limit if limit is not None else 'an unknown number of'} connections "
                     f"({instance_class or 'class unknown'}) behind RDS Proxy, which pools the function's "
                     f"{held or 'unbounded'} connections onto them")
    elif limit is None:
        parts.append(f"the database ({instance_class or 'class unknown'}): connection limit not in the table")
    elif held and held <= limit:
        parts.append(f"the database {limit} connections ({instance_class}), the function holds at most {held}")
    else:
        parts.append(f"the database {limit} connections ({instance_class}) but the function may hold "
                     f"{held or 'as many as Lambda runs'}: lower [function] max_concurrency")
    return (f"one caller stops first at {one[0]} ({one[2]:,.1f}/s), all callers at {every[0]} ({every[2]:,.1f}/s); "
            + "; ".join(parts))
