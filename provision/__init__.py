"""rds-edge-api: the engine beside steps/ (the resources, in deploy order: steps/__init__.py says why),
commands/ (one module per subcommand of the console script, cli.py) and local/ (the emulator)."""
