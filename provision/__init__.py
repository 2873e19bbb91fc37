"""rds-edge-api provisioning: provision/steps.py lists the steps in order and explains why."""
