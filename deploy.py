#!/usr/bin/env python3
"""Create or update the stack described by stack.toml: the same as `rds-edge-api deploy`. See README.md."""
from provision.cli import run_script

if __name__ == "__main__":
    run_script("deploy")
