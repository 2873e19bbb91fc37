"""The operator's IAM policy: the calls the commands make (``aws_calls.json``, recorded), what AWS
authorizes beyond each call's own action (``permissions``), the policy written from both (``policy``),
and the check of a caller against it (``caller_check``)."""
