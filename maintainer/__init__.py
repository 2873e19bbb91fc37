"""The maintainer's tools, run from a checkout by scripts/ (``scripts/record-aws-calls``).

Not part of the installed package (setup.cfg installs ``provision`` only), and nothing in provision/
imports them (tests/test_layout.py): they drive the toolkit from outside, as the console script does.
"""
