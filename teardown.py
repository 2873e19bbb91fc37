#!/usr/bin/env python3
"""Remove every resource of the stack: the same as `rds-edge-api teardown`. See README.md."""
from provision.cli import run_script

if __name__ == "__main__":
    run_script("teardown")
