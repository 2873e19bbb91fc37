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
