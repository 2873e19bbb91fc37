"""One module per subcommand of ``rds-edge-api``; ``provision/cli.py`` lists them and shares the rest."""
