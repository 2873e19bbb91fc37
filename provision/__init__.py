"""Provisioning steps: see STEPS below for the order and why."""
