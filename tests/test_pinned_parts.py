"""The function is built from pinned parts (issue 17): listed files only, the hash-pinned PyMySQL, reproducibly;
the RDS CA bundle is fetched over HTTPS only and cached without following links."""
import configparser
import http.server
import importlib.metadata
import io
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from provision.aws import ca_bundle, package
from provision.errors import DeployError
from provision.local.certs import make_ca, server_files

ROOT = Path(__file__).resolve().parent.parent


def names(pkg):
    return zipfile.ZipFile(io.BytesIO(pkg.data)).namelist()


def source_copy(tmp_path, name="lambda"):
    source = tmp_path / name
    shutil.copytree(package.SOURCE, source, ignore=shutil.ignore_patterns("__pycache__"))
    return source


# --- the function's own files: the list, nothing else ---------------------------------------

def test_only_the_listed_files_ship(tmp_path):
    source = source_copy(tmp_path)
    (source / ".env").write_text("DB_PASSWORD=stray-secret-NEVER-SHIPPED\n")
    (source / "notes.txt").write_text("notes\n")
    (source / "extra").mkdir()
    (source / "extra" / "module.py").write_text("x = 1\n")
    (tmp_path / "outside.txt").write_text("outside-NEVER-SHIPPED\n")
    os.symlink(tmp_path / "outside.txt", source / "linked.py")
    pkg = package.build(source)
    shipped = names(pkg)
    assert [n for n in shipped if not n.startswith("pymysql/")] == ["handler.py"]
    assert all(re.fullmatch(r"pymysql/([a-z_]+/)?[A-Za-z_]+\.py", n) for n in shipped if n != "handler.py"), shipped
    assert b"NEVER-SHIPPED" not in b"".join(zipfile.ZipFile(io.BytesIO(pkg.data)).read(n) for n in shipped)


def test_a_listed_file_that_is_a_symbolic_link_stops_the_build(tmp_path):
    source = source_copy(tmp_path)
    (tmp_path / "elsewhere.py").write_text("print('not the handler')\n")
    (source / "handler.py").unlink()
    os.symlink(tmp_path / "elsewhere.py", source / "handler.py")
    with pytest.raises(DeployError, match="symbolic link is never followed"):
        package.build(source)


# --- PyMySQL: the pinned one, file for file ---------------------------------------------------

def pin():
    text = (package.SOURCE / package.REQUIREMENTS).read_text()
    found = re.search(r"(?m)^PyMySQL==(\S+) --hash=sha256:([0-9a-f]{64})$", text)
    assert found, text
    return found.group(1)


def test_pymysql_is_pinned_by_hash_and_the_toolkit_asks_for_the_same_version():
    version = pin()
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    requires = [line.split("#")[0].strip() for line in setup["options"]["install_requires"].splitlines()]
    assert f"pymysql=={version}" in requires
    assert "--require-hashes" in (ROOT / "scripts" / "bootstrap").read_text()


def fake_pymysql(tmp_path, version=None, tamper=None):
    """A copy of the installed PyMySQL (files and dist-info), optionally another version or one file changed."""
    dist = importlib.metadata.distribution("PyMySQL")
    site = tmp_path / "site"
    shutil.copytree(Path(dist.locate_file("pymysql")), site / "pymysql", ignore=shutil.ignore_patterns("__pycache__"))
    info = Path(dist._path)  # the dist-info directory
    shutil.copytree(info, site / info.name)
    if version:
        metadata = site / info.name / "METADATA"
        metadata.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {version}", metadata.read_text()))
    if tamper:
        with (site / "pymysql" / tamper).open("a") as file:
            file.write("\n# changed\n")
    return importlib.metadata.PathDistribution(site / info.name)


def test_the_pinned_pymysql_builds(tmp_path, monkeypatch):
    monkeypatch.setattr(package, "installed_pymysql", lambda: fake_pymysql(tmp_path))
    assert "pymysql/connections.py" in names(package.build())


@pytest.mark.parametrize("change", [{"tamper": "connections.py"}, {"tamper": "constants/CLIENT.py"},
                                    {"version": "1.1.0"}], ids=repr)
def test_another_pymysql_stops_the_build(tmp_path, monkeypatch, change):
    monkeypatch.setattr(package, "installed_pymysql", lambda: fake_pymysql(tmp_path, **change))
    with pytest.raises(DeployError, match="PyMySQL"):
        package.build()


# --- reproducible: same inputs, same bytes ------------------------------------------------------

BUILD = "from provision.aws import package; import sys; sys.stdout.write(package.build(package.SOURCE).sha256)"


def test_same_inputs_give_the_same_bytes_wherever_and_whenever_built(tmp_path, rds_ca_pem):
    a, b = source_copy(tmp_path, "a"), source_copy(tmp_path / "elsewhere", "b")
    os.utime(b / "handler.py", (0, 0))
    os.chmod(b / "handler.py", 0o600)
    assert package.build(a, rds_ca_pem).data == package.build(b, rds_ca_pem).data
    other_process = subprocess.run([sys.executable, "-c", BUILD], cwd=ROOT, capture_output=True, text=True,
                                   env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True).stdout
    assert other_process == package.build().sha256
    with (b / "handler.py").open("a") as file:
        file.write("# changed\n")
    assert package.build(b, rds_ca_pem).sha256 != package.build(a, rds_ca_pem).sha256


# --- the RDS CA bundle: HTTPS only, cached without following links --------------------------------

@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    """A loopback HTTPS server (a throwaway CA): /bundle.pem, and redirects to https and to plain http."""
    ca = make_ca("bundle test CA")
    files = server_files(tmp_path_factory.mktemp("https"), ca, "127.0.0.1")
    bundle = make_ca("served bundle").pem

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            port = self.server.server_address[1]
            targets = {"/to-http": f"http://127.0.0.1:{port}/bundle.pem",
                       "/to-https": f"https://127.0.0.1:{port}/bundle.pem"}
            if self.path in targets:
                self.send_response(302)
                self.send_header("Location", targets[self.path])
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(bundle)))
            self.end_headers()
            self.wfile.write(bundle)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(files.cert, files.key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = ssl.create_default_context(cafile=str(files.ca))
    yield SimpleNamespace(url=f"https://127.0.0.1:{server.server_address[1]}", client=client, bundle=bundle)
    server.shutdown()
    server.server_close()


def test_the_bundle_download_follows_a_redirect_to_https(https_server):
    assert ca_bundle._download(https_server.url + "/to-https", https_server.client) == https_server.bundle


def test_the_bundle_download_refuses_a_redirect_away_from_https(https_server):
    with pytest.raises(OSError, match="refused a redirect away from HTTPS, to http://127.0.0.1"):
        ca_bundle._download(https_server.url + "/to-http", https_server.client)


def test_the_bundle_download_refuses_plain_http():
    with pytest.raises(OSError, match="not HTTPS"):
        ca_bundle._download("http://truststore.pki.rds.amazonaws.com/global/global-bundle.pem")


def stack(tmp_path):
    return SimpleNamespace(database=SimpleNamespace(tls="verify", ca_bundle=None), state_dir=tmp_path / ".state")


def test_the_cached_copy_is_written_without_following_a_link(tmp_path, rds_ca_pem):
    config = stack(tmp_path)
    config.state_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    for name in ("rds-global-bundle.part", "rds-global-bundle.pem.part"):  # where a partial copy might go
        os.symlink(victim, config.state_dir / name)
    assert ca_bundle.load(config) == rds_ca_pem
    cached = config.state_dir / ca_bundle.CACHE_NAME
    assert not cached.is_symlink() and cached.read_bytes() == rds_ca_pem
    assert victim.read_text() == "untouched\n"
    assert oct(cached.stat().st_mode & 0o777) == oct(0o644)


def test_a_cached_copy_that_is_a_link_is_refused(tmp_path, bundle_downloads):
    config = stack(tmp_path)
    config.state_dir.mkdir()
    elsewhere = tmp_path / "someone-elses.pem"
    elsewhere.write_bytes(make_ca("someone else").pem)
    os.symlink(elsewhere, config.state_dir / ca_bundle.CACHE_NAME)
    with pytest.raises(DeployError, match="symbolic link is never followed"):
        ca_bundle.load(config)
    assert bundle_downloads == []
