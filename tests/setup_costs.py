"""What every test would otherwise pay again in set-up, paid once per test process.

- botocore parses its JSON service models once per loader, and each ``boto3.Session``
  makes its own loader: a test making 7 sessions and 97 clients loaded about a thousand
  model files. The tests share one loader (the models are read-only data). The toolkit
  itself is untouched: on AWS each process still makes its sessions as boto3 does.
- moto builds its 1,582 AWS managed IAM policies on every account reset. The tests keep
  only those the toolkit attaches (``MANAGED_POLICIES``; tests/test_setup_costs.py checks
  the list covers every managed policy ARN in provision/).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

import botocore.loaders
import botocore.session
import pytest

# The AWS managed policies the toolkit attaches (path under arn:aws:iam::aws:policy/ -> moto's key).
MANAGED_POLICIES = ("service-role/AWSLambdaVPCAccessExecutionRole", "service-role/AmazonAPIGatewayPushToCloudWatchLogs")


class _PathsOnce(list):
    """A loader's search paths, where boto3's append of its own data path on every Session happens once."""

    def append(self, path) -> None:
        if path not in self:
            super().append(path)


def shared_loader_factory():
    """``botocore.session.create_loader`` that hands every session one loader (AWS_DATA_PATH still honoured)."""
    shared = botocore.loaders.Loader(extra_search_paths=_PathsOnce())
    original = botocore.loaders.create_loader

    def create_loader(search_path_string=None):
        return shared if search_path_string is None else original(search_path_string)
    return create_loader


def managed_policies_cut(data: str) -> str:
    """moto's managed-policy JSON reduced to ``MANAGED_POLICIES``."""
    return json.dumps({name: doc for name, doc in json.loads(data).items()
                       if f"{doc['Path'].strip('/')}/{name}".lstrip("/") in MANAGED_POLICIES})


@contextmanager
def shared_setup() -> Iterator[None]:
    """For the test session: one botocore loader for all sessions, moto's managed policies cut."""
    import moto.iam.models

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", shared_loader_factory())
        patch.setattr(moto.iam.models, "aws_managed_policies_data",
                      managed_policies_cut(moto.iam.models.aws_managed_policies_data))
        yield
