"""What the stack costs a month: AWS's prices (prices.py) applied to what the config makes (estimate.py)."""
