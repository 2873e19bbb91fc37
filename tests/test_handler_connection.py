"""The function's link to the database on real MariaDB servers: verified TLS and IAM tokens.

The session's server offers TLS with a certificate for 127.0.0.1 from a test CA;
a second server offers no TLS at all. MariaDB has no AWSAuthenticationPlugin:
the IAM tests prove the token botocore signs (checked here against an
independent SigV4 computation) and that the handler presents it as the password
over TLS, to an account whose password is that very token; they cannot prove
that RDS accepts it.
"""
import datetime
import hashlib
import hmac
import json
import os
import secrets
import ssl
import subprocess
import sys
import urllib.parse
from pathlib import Path
from unittest import mock

import handler  # lambda/handler.py (pytest's pythonpath has lambda/)
import pytest

ROOT = Path(__file__).resolve().parent.parent

DATABASE, USER = "link", "link_reader"
PASSWORD = secrets.token_urlsafe(18)
IAM_USER = "iam_reader"
CLOCK = datetime.datetime(2026, 11, 25, 12, 0, 0)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
               "AWS_SESSION_TOKEN": "session-token-example", "AWS_REGION": "eu-west-1"}


def _load(server):
    server.create_database(DATABASE, USER, PASSWORD)
    with server.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, sku VARCHAR(32) NOT NULL, KEY (sku))")
        cur.execute("INSERT INTO items VALUES (1, 'sku-1')")
    return server


@pytest.fixture(scope="module")
def tls_db(mariadb_server):
    return _load(mariadb_server)


@pytest.fixture(scope="module")
def plain_db(plain_mariadb_server):
    return _load(plain_mariadb_server)


@pytest.fixture
def point(monkeypatch):
    """point(server, **DB_*) -> aim the handler at server's `link` database, fresh module state."""
    def apply(server, **settings):
        for name in ("DB_PASSWORD", "DB_CA_FILE"):
            monkeypatch.delenv(name, raising=False)
        env = {**server.env(DATABASE, USER, PASSWORD), "DB_TABLE": "items", "DB_KEY_COLUMN": "sku", **settings}
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        handler._reset()
    yield apply
    handler._reset()


def invoke():
    return handler.handler({"key": "sku-1", "sourceIp": "203.0.113.9"}, None)


def failure(capsys):
    """Invoke expecting the generic 500; return the reason the log line gives."""
    with pytest.raises(handler.Internal) as info:
        invoke()
    assert str(info.value) == "[Internal] database unavailable"
    log = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert log["outcome"] == "internal"
    return log["error"]


def cipher():
    """The TLS cipher of the handler's own connection, as the server sees it ('' when plain)."""
    with handler._conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        return cur.fetchone()[1]


# --- TLS -------------------------------------------------------------------------------

def test_verify_with_the_right_ca_is_encrypted_and_checked(point, tls_db, tls_files):
    point(tls_db, DB_TLS="verify", DB_CA_FILE=str(tls_files.ca))
    assert invoke()["items"] == [{"id": 1, "sku": "sku-1"}]
    assert cipher()
    sock = handler._conn._sock
    assert isinstance(sock, ssl.SSLSocket) and sock.context.verify_mode == ssl.CERT_REQUIRED
    assert sock.context.check_hostname is True


def test_verify_is_the_default_and_needs_a_ca_file(point, tls_db, capsys):
    point(tls_db, DB_TLS=None, DB_CA_FILE=None)
    with pytest.raises(handler.Internal, match=r"^\[Internal\] service misconfigured$"):
        invoke()
    assert "DB_CA_FILE" in json.loads(capsys.readouterr().out.strip())["error"]


def test_unrelated_ca_is_refused(point, tls_db, other_ca, capsys):
    point(tls_db, DB_TLS="verify", DB_CA_FILE=str(other_ca))
    assert "CERTIFICATE_VERIFY_FAILED" in failure(capsys)
    assert handler._conn is None


def test_certificate_for_another_name_is_refused(point, tls_db, tls_files, capsys):
    """The certificate names 127.0.0.1 only; the same server reached as 'localhost' must not pass."""
    point(tls_db, DB_TLS="verify", DB_CA_FILE=str(tls_files.ca), DB_HOST="localhost")
    reason = failure(capsys)
    assert "CERTIFICATE_VERIFY_FAILED" in reason and "localhost" in reason


@pytest.mark.parametrize("mode", ["verify", "required"])
def test_server_without_tls_is_refused_before_credentials(point, plain_db, tls_files, capsys, mode):
    """Never a silent plain-text connection: the refusal comes before authentication (not 'Access denied')."""
    point(plain_db, DB_TLS=mode, DB_CA_FILE=str(tls_files.ca) if mode == "verify" else None,
          DB_PASSWORD="wrong-on-purpose")
    reason = failure(capsys)
    assert "server offers none" in reason and "Access denied" not in reason


def test_required_encrypts_without_checking_the_server(point, tls_db, other_ca):
    point(tls_db, DB_TLS="required")
    assert invoke()["items"]
    assert cipher()
    assert handler._conn._sock.context.verify_mode == ssl.CERT_NONE


def test_off_works_against_a_plain_server(point, plain_db):
    point(plain_db, DB_TLS="off")
    assert invoke()["items"] == [{"id": 1, "sku": "sku-1"}]
    assert cipher() == ""


def test_account_created_with_require_ssl_refuses_plain_text(point, tls_db, tls_files, capsys):
    """docs/database.md's REQUIRE SSL: the server itself refuses the account without TLS."""
    tls_db.create_user(DATABASE, "ssl_only", PASSWORD, require_ssl=True)
    point(tls_db, DB_USER="ssl_only", DB_TLS="verify", DB_CA_FILE=str(tls_files.ca))
    assert invoke()["items"]
    point(tls_db, DB_USER="ssl_only", DB_TLS="off")
    assert "Access denied" in failure(capsys)


@pytest.mark.parametrize("setting", [{"DB_TLS": "maybe"}, {"DB_AUTH": "kerberos"}, {"DB_MAX_ROWS": "0"},
                                     {"DB_MAX_ROWS": "many"}, {"DB_AUTH": "iam", "DB_TLS": "off"}], ids=repr)
def test_bad_link_settings_are_refused_without_connecting(point, tls_db, capsys, setting):
    point(tls_db, **setting)
    with pytest.raises(handler.Internal, match=r"^\[Internal\] service misconfigured$"):
        invoke()
    assert handler._conn is None


# --- IAM tokens ------------------------------------------------------------------------

def token_at(moment, host="db.example.com", port=3306, user="api_reader"):
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        return handler._iam_token({"host": host, "port": port, "user": user})


def sigv4(secret, date, region, service, string_to_sign):
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_iam_token_is_an_rds_db_presigned_url(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    token = token_at(CLOCK)
    assert not token.startswith("https://")
    url = urllib.parse.urlsplit("https://" + token)
    assert url.netloc == "db.example.com:3306" and url.path == "/"
    query = urllib.parse.parse_qsl(url.query, strict_parsing=True)
    params = dict(query)
    assert len(params) == len(query)
    assert params["Action"] == "connect" and params["DBUser"] == "api_reader"
    assert params["X-Amz-Expires"] == "900"
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Credential"] == "AKIDEXAMPLE/20261125/eu-west-1/rds-db/aws4_request"
    assert params["X-Amz-Date"] == "20261125T120000Z"
    assert params["X-Amz-SignedHeaders"] == "host"
    assert params["X-Amz-Security-Token"] == CREDENTIALS["AWS_SESSION_TOKEN"]
    # The signature, recomputed from the SigV4 specification rather than trusted.
    canonical_query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                               for k, v in sorted(query) if k != "X-Amz-Signature")
    canonical = "\n".join(["GET", "/", canonical_query, f"host:{url.netloc}", "", "host",
                           hashlib.sha256(b"").hexdigest()])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", "20261125T120000Z", "20261125/eu-west-1/rds-db/aws4_request",
                         hashlib.sha256(canonical.encode()).hexdigest()])
    assert params["X-Amz-Signature"] == sigv4(CREDENTIALS["AWS_SECRET_ACCESS_KEY"], "20261125", "eu-west-1",
                                              "rds-db", to_sign)
    # Same clock, same token; a minute later, another one.
    assert token_at(CLOCK) == token
    assert token_at(CLOCK + datetime.timedelta(minutes=1)) != token


def test_iam_token_is_presented_as_the_password_over_tls(point, tls_db, tls_files, monkeypatch, capsys):
    """An account whose password is the token the handler will sign (fixed clock) lets it in;
    a token signed a minute later does not. A new connection signs a new token."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    token = token_at(CLOCK, host=tls_db.host, port=tls_db.port, user=IAM_USER)
    tls_db.create_user(DATABASE, IAM_USER, token, require_ssl=True)
    point(tls_db, DB_AUTH="iam", DB_USER=IAM_USER, DB_PASSWORD=None, DB_TLS="verify", DB_CA_FILE=str(tls_files.ca))
    assert "DB_PASSWORD" not in os.environ
    signed = []
    real = handler._iam_token

    def counting(settings):
        signed.append(settings["user"])
        return real(settings)

    monkeypatch.setattr(handler, "_iam_token", counting)
    with mock.patch("botocore.auth.get_current_datetime", return_value=CLOCK):
        assert invoke()["items"] == [{"id": 1, "sku": "sku-1"}]
        assert cipher()
        assert invoke()["items"]  # the connection is reused: no new token
        assert signed == [IAM_USER]
        with tls_db.admin() as conn, conn.cursor() as cur:
            cur.execute("KILL %s", (handler._conn.thread_id(),))
        assert invoke()["items"]  # reconnected, with a freshly signed token
        assert signed == [IAM_USER, IAM_USER]
    handler._reset()
    with mock.patch("botocore.auth.get_current_datetime", return_value=CLOCK + datetime.timedelta(minutes=1)):
        reason = failure(capsys)
    assert "Access denied" in reason
    leaked = "X-Amz-Signature" in reason or token in capsys.readouterr().out
    assert not leaked, "the token in the log"


def test_password_mode_never_imports_botocore(tls_db, tls_files):
    """Cold starts in password mode stay lean: botocore is loaded by the iam mode only."""
    env = {**os.environ, **tls_db.env(DATABASE, USER, PASSWORD), "DB_TABLE": "items", "DB_KEY_COLUMN": "sku",
           "DB_TLS": "verify", "DB_CA_FILE": str(tls_files.ca)}
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import handler;"
            " r = handler.handler({'key': 'sku-1'}, None);"
            " print(len(r['items']), 'botocore' in sys.modules, 'boto3' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "lambda")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "1 False False"


def test_server_certificate_for_another_host_is_refused(point, tls_db, tls_files, test_ca, capsys):
    """The server reloads (FLUSH SSL) a certificate from the right CA that names db.other.example."""
    from provision.local import certs

    saved = tls_files.cert.read_bytes(), tls_files.key.read_bytes()
    cert, key = certs.issue(test_ca, "db.other.example")
    try:
        tls_files.cert.write_bytes(cert)
        tls_files.key.write_bytes(key)
        with tls_db.admin() as conn, conn.cursor() as cur:
            cur.execute("FLUSH SSL")
        point(tls_db, DB_TLS="verify", DB_CA_FILE=str(tls_files.ca))
        reason = failure(capsys)
        assert "CERTIFICATE_VERIFY_FAILED" in reason and "127.0.0.1" in reason
        point(tls_db, DB_TLS="required")  # encrypted, unchecked: the same server is accepted
        assert invoke()["items"]
    finally:
        tls_files.cert.write_bytes(saved[0])
        tls_files.key.write_bytes(saved[1])
        with tls_db.admin() as conn, conn.cursor() as cur:
            cur.execute("FLUSH SSL")
    point(tls_db, DB_TLS="verify", DB_CA_FILE=str(tls_files.ca))
    assert invoke()["items"]
