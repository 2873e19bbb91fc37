"""--local: the embedded AWS emulator (moto) and what runs against it on this machine alone."""
