#!/usr/bin/env python3
"""Remove every resource of the stack described by stack.toml. See README.md."""
import sys

from provision.cli import main

if __name__ == "__main__":
    sys.exit(main("teardown"))
