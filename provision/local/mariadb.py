"""A throwaway MariaDB server: for the tests, the benchmark, scripts/invoke-handler and --local.

The server lives in a temporary directory, listens on a free loopback port and
a private socket, and uses real accounts with passwords (root gets a random
one). kill() / start() let tests simulate a crashed and restarted database.
With ``tls`` (provision/local/certs.py ServerFiles) the server offers TLS with
that certificate; without it, it offers none, as a server with TLS off would.
"""
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

START_TIMEOUT = 30  # seconds; a cold start takes well under one
STOP_TIMEOUT = 30
MISSING = ("mariadbd / mariadb-install-db not found: run `scripts/bootstrap test mariadb` "
           "(it installs Debian's mariadb-server) or install MariaDB yourself")


def find_binary(name):
    """Debian puts mariadbd in /usr/sbin, which is not on every user's PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MariaDB:
    """One mariadbd process with its own data directory; use as a context manager."""

    def __init__(self, tls=None):
        self.tls = tls
        self.mariadbd = find_binary("mariadbd")
        self.install_db = find_binary("mariadb-install-db")
        if not (self.mariadbd and self.install_db):
            raise RuntimeError(MISSING)
        self.dir = Path(tempfile.mkdtemp(prefix="rds-edge-mariadb-"))
        self.datadir = self.dir / "data"
        self.socket = str(self.dir / "mysqld.sock")
        self.log = self.dir / "error.log"
        self.host = "127.0.0.1"
        self.port = None
        self.root_password = secrets.token_urlsafe(18)
        self.proc = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        """Initialise the data directory on first use, then start and wait for the server."""
        first = not self.datadir.exists()
        if first:
            done = subprocess.run(
                [self.install_db, "--no-defaults", "--auth-root-authentication-method=normal",
                 "--skip-test-db", "--skip-name-resolve", "--user=root", f"--datadir={self.datadir}"],
                capture_output=True, text=True, timeout=120)
            if done.returncode:
                raise RuntimeError("mariadb-install-db failed:\n" + (done.stdout + done.stderr)[-3000:])
        for attempt in range(3):  # the free port may be taken before mariadbd binds it
            self.port = self.port if (self.port and attempt == 0) else free_port()
            if self._spawn():
                break
        else:
            raise RuntimeError(f"mariadbd did not start; log:\n{self.log_tail()}")
        if first:
            self._secure()

    def _spawn(self):
        self.proc = subprocess.Popen(
            [self.mariadbd, "--no-defaults", "--user=root", f"--datadir={self.datadir}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--pid-file={self.dir / 'mysqld.pid'}", f"--log-error={self.log}",
             f"--tmpdir={self.dir}", "--skip-name-resolve",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
             # Throwaway data: skip the doublewrite buffer and per-commit fsync
             # (a killed mariadbd still loses nothing, only an OS crash would).
             "--innodb-doublewrite=0", "--innodb-flush-log-at-trx-commit=2", *self._tls_options()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self._connect_root(password=None).close()
                return True
            except pymysql.OperationalError as e:
                if e.args[0] == 1045:  # access denied: up, and already secured
                    return True
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mariadbd not ready after {START_TIMEOUT}s; log:\n{self.log_tail()}")

    def _tls_options(self):
        if self.tls is None:
            return []
        return [f"--ssl-ca={self.tls.ca}", f"--ssl-cert={self.tls.cert}", f"--ssl-key={self.tls.key}"]

    def _connect_root(self, password, database=None):
        return pymysql.connect(unix_socket=self.socket, user="root", password=password or "",
                               database=database, connect_timeout=2, autocommit=True,
                               charset="utf8mb4", ssl_disabled=True)  # a local socket

    def _secure(self):
        """Give root a password and keep only root@localhost (socket) as the admin account."""
        with self._connect_root(password=None) as conn, conn.cursor() as cur:
            cur.execute("SELECT user, host FROM mysql.user WHERE NOT (user = 'root' AND host = 'localhost')"
                        " AND user <> 'mariadb.sys'")
            for user, host in cur.fetchall():
                cur.execute("DROP USER %s@%s", (user, host))
            cur.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (self.root_password,))

    def admin(self, database=None):
        """A new root connection over the socket (autocommit, utf8mb4, session time zone UTC)."""
        conn = self._connect_root(self.root_password, database)
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
        return conn

    def create_database(self, name, user, password, privileges="SELECT"):
        """Create (or recreate) a database and an account that may use it from any host."""
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        self.create_user(name, user, password, privileges)

    def create_user(self, database, user, password, privileges="SELECT", require_ssl=False):
        """(Re)create an account that may use the database from any host, with TLS only if asked."""
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))
            cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s" + (" REQUIRE SSL" if require_ssl else ""),
                        (user, password))
            cur.execute(f"GRANT {privileges} ON `{database}`.* TO %s@'%%'", (user,))

    def env(self, database, user, password):
        """DB_* settings that point the handler at this server over TCP: verified TLS if it has TLS."""
        tls = {"DB_TLS": "verify", "DB_CA_FILE": str(self.tls.ca)} if self.tls else {"DB_TLS": "off"}
        return {"DB_HOST": self.host, "DB_PORT": str(self.port), "DB_NAME": database,
                "DB_USER": user, "DB_PASSWORD": password, "DB_AUTH": "password", **tls}

    def stop(self):
        """Shut down cleanly (SIGTERM), falling back to SIGKILL."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def kill(self):
        """Crash the server (SIGKILL), as a failed database host would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def log_tail(self, lines=20):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


if __name__ == "__main__":  # smoke test: .venv/bin/python -m provision.local.mariadb
    with MariaDB() as db:
        print(f"up on port {db.port}, datadir {db.datadir}")
