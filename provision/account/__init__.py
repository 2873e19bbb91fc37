"""Look-ups about the account rather than one stack's resources: the preflight's checks before a
change, the stacks the account holds (``stacks``), and what was found of them (``discovered``)."""
