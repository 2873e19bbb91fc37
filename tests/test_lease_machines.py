"""Two deploys of one stack at once from two state directories (two machines) against one emulator:
exactly one proceeds, the other names the holder (alive, though stopped); the holder killed, the next run on
this machine takes its lease over at once (another machine would wait for it to lapse: test_lease_lost.py).
Real processes and moto's server, since a lease must hold across processes."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3

from provision import config as config_module, lease
from provision.local.emulator import emulator, seed_database
from tests.support import merged, write_toml

EXPIRY_S = 15  # the killed holder's lease lapses this long after its last renewal
CLI = str(Path(sys.executable).with_name("rds-edge-api"))


def machine(tmp_path, name, rds_ca_pem):
    """A config in a directory of its own, so its state directory is its own."""
    home = tmp_path / name
    home.mkdir()
    (home / "rds-ca.pem").write_bytes(rds_ca_pem)
    return write_toml(home / "stack.toml", merged({"database": {"ca_bundle": "rds-ca.pem"},
                                                   "lease": {"expiry_s": EXPIRY_S}}))


def deploy(path, *args):
    return subprocess.Popen([CLI, "deploy", "--config", str(path), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def held_by(dynamodb):
    found = dynamodb.get_item(TableName=lease.TABLE, Key={"stack": {"S": "demo"}}, ConsistentRead=True)
    return found.get("Item", {}).get("where", {}).get("S")


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def table_exists(dynamodb):
    return lease.TABLE in dynamodb.list_tables()["TableNames"]


def test_two_machines_one_lease(tmp_path, secrets, rds_ca_pem):
    a, b, c = (machine(tmp_path, name, rds_ca_pem) for name in ("laptop", "ci", "other-laptop"))
    with emulator():
        seed_database(boto3.Session(region_name="eu-west-1"), config_module.load(a))
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        procs = [deploy(a), deploy(b)]  # two machines, started at once
        try:
            where = wait_for(lambda: table_exists(dynamodb) and held_by(dynamodb), 120, "a lease to be taken")
            [holder] = [p for p in procs if where.endswith(f"pid {p.pid}")]
            [loser] = [p for p in procs if p is not holder]
            holder.send_signal(signal.SIGSTOP)  # holds the lease, renews nothing, until killed
            text, _ = loser.communicate(timeout=120)
            assert loser.returncode == 1, text
            assert "lease in the account is held by" in text and where in text and "(deploy, since" in text
            assert holder.poll() is None  # exactly one proceeds: the other never got past the lease
            holder.kill()
            holder.wait(timeout=30)
            assert held_by(dynamodb) == where  # a killed run gives nothing back

            after = deploy(c, "--wait")
            text, _ = after.communicate(timeout=600)
            assert after.returncode == 0, text
            assert f"took over stack demo's lease from {where}" in text and "held by another run" not in text
            assert "Holding stack demo's lease" in text and "Outputs" in text
            assert held_by(dynamodb) is None  # given back at the end
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=30)
