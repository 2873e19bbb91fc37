"""The stack's TOML config, read into frozen dataclasses.

Every problem stops the run before any AWS call, as a ConfigError naming the
key ("database.table") and what is wrong with it. Secrets never sit in the
file: the file names environment variables, and a Secret reads them on use.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import math
import os
import re
import reprlib
import ssl
import stat
import tomllib
import unicodedata
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}")
REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RDS_INSTANCE_ID = re.compile(r"[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}(?<!-)")
DOMAIN_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
HOSTED_ZONE_ID = re.compile(r"[A-Z0-9]{1,32}")
API_PATH = re.compile(r"[A-Za-z0-9._-]{1,64}")
STAGE = re.compile(r"[A-Za-z0-9_]{1,128}")
# A database user that MySQL and IAM's rds-db:connect ARN (where * and ? are wildcards, ${...} a variable and /
# a separator) both read literally: no quotes, wildcards, spaces or newlines; at most MySQL's 32 characters.
DB_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
# SES receipt rule set names: letters, digits, '.', '_', '-'; start and end with a letter or digit; < 64.
RULE_SET_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?")
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"  # the local part
                   r"@(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+")  # labels, no edge hyphen

# Regions where SES receives mail (inbound-smtp.<region>.amazonaws.com exists).
SES_RECEIVING_REGIONS = frozenset({
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1",
    "eu-central-1", "eu-west-1", "eu-west-2",
    "ap-northeast-1", "ap-southeast-1", "ap-southeast-2",
})
ARCHITECTURES = ("arm64", "x86_64")
DB_AUTH_MODES = ("iam", "password")
DB_TLS_MODES = ("verify", "required", "off")
MAX_ROWS_LIMIT = 10_000  # one page is held in the function's memory
PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
MAX_CONFIG_BYTES = 1 << 20     # a stack config is a few KB
MAX_CA_BUNDLE_BYTES = 1 << 20  # AWS's global RDS bundle is about 160 KB
MAX_KEY_DEPTH = 16             # a stack config nests two deep; tomllib is quadratic in a dotted key's depth
# API Gateway's account-level throttle per Region (api-gateway-request-throttling.html, "Account-level
# throttling per Region"): a usage plan above it is throttled there anyway. Lambda's default concurrency
# quota per Region bounds reserved concurrency (lambda/latest/dg/gettingstarted-limits.html).
MAX_THROTTLE_RATE = 10_000.0
MAX_THROTTLE_BURST = 5_000
MAX_CACHE_SECONDS = 31_536_000  # one year: the largest MaxTTL a CloudFront cache policy takes by default
MAX_CONCURRENCY = 1_000
# WAF's rate-based rule (WAFv2 API reference, RateBasedStatement): Limit 10 to 2,000,000,000 requests per
# evaluation window; EvaluationWindowSec 60, 120, 300 or 600, 300 the default.
RATE_LIMIT_RANGE = (10, 2_000_000_000)
RATE_WINDOWS_S = (60, 120, 300, 600)
# RFC 9110 section 5.5: a field value is visible characters, with spaces or tabs only between them.
# obs-text (bytes >= 0x80) is refused: senders must not generate it, and WAF compares bytes.
HTTP_FIELD_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?")
MIN_AUTHORIZATION_CHARS = 20   # below this, a warning: a short value can be guessed
BARE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}(\[[0-9]+\])?")  # or a list item: columns[2]

_shown = reprlib.Repr()
_shown.maxstring = _shown.maxother = 60
shown = _shown.repr  # a value in an error line: escaped (repr), and short however large the value


class Secret:
    """A secret held in an environment variable: read on use, never shown."""

    def __init__(self, env: str):
        self.env = env

    @property
    def value(self) -> str:
        return os.environ[self.env]

    def __repr__(self) -> str:
        return f"Secret(${self.env})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.env == self.env

    def __hash__(self) -> int:
        return hash(self.env)


@dataclass(frozen=True)
class StackConfig:
    name: str
    region: str
    check_permissions: bool = False  # deploy simulates the caller's permissions first (policy --check)


@dataclass(frozen=True)
class DatabaseConfig:
    instance_id: str
    name: str
    user: str
    table: str
    key_column: str
    columns: tuple[str, ...] = ()
    auth: str = "password"           # "iam": a token per connection, no password in the function
    password: Secret | None = None   # with auth = "password" only
    tls: str = "verify"              # "verify" (chain and name), "required" (encrypted only), "off"
    ca_bundle: Path | None = None    # None: AWS's global RDS bundle, fetched by deploy
    proxy: bool = False              # an RDS Proxy before the instance (provision/steps/proxy.py); auth = "iam" only


@dataclass(frozen=True)
class AccessConfig:
    allowed_cidrs: tuple[str, ...]
    authorization: Secret
    rate_limit: int = 2000  # requests per source address per rate_window_s; the excess is answered 429
    rate_window_s: int = 300  # WAF's evaluation window: how far back it counts

    @property
    def ipv4_cidrs(self) -> tuple[str, ...]:
        return tuple(c for c in self.allowed_cidrs if ipaddress.ip_network(c).version == 4)

    @property
    def ipv6_cidrs(self) -> tuple[str, ...]:
        return tuple(c for c in self.allowed_cidrs if ipaddress.ip_network(c).version == 6)


VALIDATIONS = ("email", "dns")  # how ACM validates the certificate: each makes other resources (a policy variant)


@dataclass(frozen=True)
class DomainConfig:
    name: str
    validation: str
    hosted_zone_id: str | None = None
    mail_region: str = "us-east-1"
    validation_domain: str = ""  # the domain ACM mails (email validation); "" means acm_mail_domain(name)
    mail_rule_set: str = ""      # the operator's own active SES receipt rule set; "" means the shared one

    def __post_init__(self):
        if not self.validation_domain:
            object.__setattr__(self, "validation_domain", acm_mail_domain(self.name))

    @property
    def receives_mail(self) -> bool:
        """Whether the stack receives ACM's mail itself (SES, bucket, MX): email validation of the domain itself."""
        return self.validation == "email" and self.validation_domain == self.name


def acm_mail_domain(name: str) -> str:
    """The domain whose mailboxes ACM mails for ``name``: ACM drops a leading ``www.`` (ACM user guide,
    "AWS Certificate Manager email validation": a certificate for www.example.com is approved by mail to
    admin@example.com, not admin@www.example.com)."""
    parent = name.removeprefix("www.")
    return parent if parent != name and "." in parent else name


@dataclass(frozen=True)
class AlertsConfig:
    email: str
    health: bool = True  # CloudWatch alarms on the API's health, mailed to the same address


@dataclass(frozen=True)
class ApiConfig:
    path: str = "items"
    stage: str = "v1"
    key: Secret | None = None
    throttle_rate: float = 10.0
    throttle_burst: int = 20
    max_rows: int = 1000
    cache_seconds: int = 0  # how long CloudFront may serve a 200 again (Cache-Control max-age); 0: never cached


@dataclass(frozen=True)
class FunctionConfig:
    memory_mb: int = 256
    timeout_s: int = 10
    architecture: str = "arm64"
    log_retention_days: int = 30
    max_concurrency: int = 10  # reserved concurrency: the most database connections the function holds; 0: none


@dataclass(frozen=True)
class LeaseConfig:
    expiry_s: int = 60  # a crashed run's lease in the account lapses this long after its last renewal


@dataclass(frozen=True)
class LogsConfig:
    """The request logs beside the function's and WAF's; each costs CloudWatch Logs ingestion (docs/cost.md)."""
    api_access: bool = True   # the API Gateway stage's access log
    cloudfront: bool = True   # CloudFront's standard logging (v2) to CloudWatch Logs


@dataclass(frozen=True)
class CostConfig:
    """The traffic ``rds-edge-api cost`` and ``deploy --plan`` price (provision/cost/)."""
    requests_per_month: int = 1_000_000
    response_kb: float = 2.0           # an answer's body, as CloudFront sends it out
    handler_ms: float | None = None    # None: the time bench/handler.py measured (provision/cost/estimate.py)


@dataclass(frozen=True)
class Config:
    path: Path
    stack: StackConfig
    database: DatabaseConfig
    access: AccessConfig
    domain: DomainConfig
    api: ApiConfig = field(default_factory=ApiConfig)
    function: FunctionConfig = field(default_factory=FunctionConfig)
    alerts: AlertsConfig | None = None
    logs: LogsConfig = field(default_factory=LogsConfig)
    lease: LeaseConfig = field(default_factory=LeaseConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    # Beside the config unless given (--local uses a temporary one): always a Path once __post_init__ ran.
    state_dir: Path = None  # type: ignore[assignment]
    warnings: tuple[str, ...] = ()  # values that work but should not: the commands print them

    def __post_init__(self):
        if self.state_dir is None:
            object.__setattr__(self, "state_dir", self.path.parent / ".state")

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region the stack has resources in, for lookups by tag."""
        regions = [self.stack.region, "us-east-1"]
        if self.domain.receives_mail:
            regions.append(self.domain.mail_region)
        return tuple(dict.fromkeys(regions))


# Log retention values CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545,
                      731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


class _Section:
    """Reads one TOML table, remembering which keys were used."""

    def __init__(self, data: dict, name: str, required: bool = True):
        raw = data.get(name)
        if raw is None:
            if required:
                raise ConfigError(f"[{name}]", "section is missing")
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(name, "must be a table ([" + name + "])")
        self.raw, self.name, self.used = raw, name, set[str]()

    def key(self, key: str) -> str:
        return f"{self.name}.{key_name(key)}"

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.raw:
            if default is ...:
                raise ConfigError(self.key(key), "is required")
            return default
        value = self.raw[key]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = (float(value), True) if abs(value) <= 2 ** 53 else (math.inf, True)
        if not ok:
            raise ConfigError(self.key(key), f"must be {_kind_name(kind)}, not {_kind_name(type(value))}")
        return value

    def text(self, key: str, pattern: re.Pattern | None = None, rule: str = "", default: Any = ...) -> Any:
        value = self.get(key, str, default)
        if value is default and default is not ...:
            return value
        if not value.strip():
            raise ConfigError(self.key(key), "must not be empty")
        if not printable(value):
            raise ConfigError(self.key(key), f"{shown(value)} holds a control or invisible character")
        if pattern and not pattern.fullmatch(value):
            raise ConfigError(self.key(key), f"{shown(value)} is not valid: {rule}")
        return value

    def region(self, key: str, default: Any = ...) -> Any:
        """A region of a partition the installed botocore knows (an unknown one reaches no endpoint)."""
        value = self.text(key, REGION, "an AWS region such as eu-west-1", default)
        if value not in known_regions():
            raise ConfigError(self.key(key), f"{shown(value)} is not an AWS region the installed botocore "
                              "knows (such as eu-west-1)")
        return value

    def secret(self, key: str, default: Any = ...) -> Any:
        env = self.text(key, ENV_NAME, "an environment variable name", default)
        if env is default and default is not ...:
            return default
        if not os.environ.get(env):
            raise ConfigError(self.key(key), f"environment variable {env} is not set")
        return Secret(env)

    def number(self, key: str, kind: type, low: float, high: float, default: float, why: str) -> Any:
        """An int or float between low and high (finite: inf and nan are refused too)."""
        value = self.get(key, kind, default)
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(self.key(key), f"must be between {low:,} and {high:,} ({why})")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise ConfigError(self.key(unknown[0]), "unknown key")


def key_name(key: str) -> str:
    """A key as the error line shows it: bare, or quoted and escaped as TOML writes it (one line, short)."""
    return key if BARE_KEY.fullmatch(key) else json.dumps(key if len(key) <= 60 else key[:57] + "...")


def printable(text: str) -> bool:
    """No control, format (zero-width, bidi) or separator characters other than the space."""
    return all(c == " " or not unicodedata.category(c).startswith(("C", "Z")) for c in text)


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list", dict: "a table"}.get(kind, kind.__name__)


def read_small_file(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit`` of them; OSError or ValueError (a NUL in the name)
    otherwise. Never blocks on a FIFO, never reads /dev/zero until memory runs out."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            raise OSError(f"is {'a directory' if stat.S_ISDIR(kind) else 'not a regular file'}")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(f"is larger than {limit:,} bytes")
    return data


def why_unreadable(exc: Exception) -> str:
    """One line for an OSError or ValueError from reading a file."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__


def read_toml(path: str | Path) -> dict:
    """The config file's tables, or a ConfigError naming the file: missing, not a regular file, too
    large, not UTF-8, not TOML, or nested deeper than any stack config."""
    where = shown(str(path))[1:-1]
    try:
        text = read_small_file(Path(path), MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(where, "file not found (copy stack.example.toml to start)") from None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        problem = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else why_unreadable(exc)
        raise ConfigError(where, f"cannot be read: {problem}") from None
    for number, line in enumerate(text.splitlines(), 1):
        head = line.split("=", 1)[0] if not line.lstrip().startswith("[") else line
        if head.split("#", 1)[0].count(".") > MAX_KEY_DEPTH:
            raise ConfigError(where, f"line {number}: a key nested more than {MAX_KEY_DEPTH} deep "
                              "(a stack config nests two deep)")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(where, "not valid TOML here: values nested too deeply") from None


NOT_SECTIONS = {"path", "state_dir", "warnings"}  # Config's fields that no [section] sets


def load(path: str | Path) -> Config:
    """Read and check the whole config; raise ConfigError on the first problem."""
    data = read_toml(path)
    path = Path(path).resolve()
    known = {f.name for f in fields(Config)} - NOT_SECTIONS
    for name in data:
        if name not in known:
            raise ConfigError(f"[{key_name(name)}]", "unknown section")
    warnings: list[str] = []
    return Config(
        path=path,
        stack=_stack(_Section(data, "stack")),
        database=_database(_Section(data, "database"), path.parent),
        access=_access(_Section(data, "access"), warnings),
        domain=_domain(_Section(data, "domain")),
        api=_api(_Section(data, "api", required=False)),
        function=_function(_Section(data, "function", required=False)),
        alerts=_alerts(_Section(data, "alerts", required=False)) if "alerts" in data else None,
        logs=_logs(_Section(data, "logs", required=False)),
        lease=_lease(_Section(data, "lease", required=False)),
        cost=_cost(_Section(data, "cost", required=False)),
        warnings=tuple(warnings),
    )


LEASE_EXPIRY_RANGE = (5, 3600)


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every partition in the installed botocore's endpoint data (no AWS call, and no read
    of the AWS config files: a bad AWS_PROFILE is named where the session is made, not here)."""
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    resolver = EndpointResolver(create_loader().load_data("endpoints"))
    return frozenset(region for partition in resolver.get_available_partitions()
                     for region in resolver.get_available_endpoints("ec2", partition_name=partition))


def _lease(s: _Section) -> LeaseConfig:
    expiry = s.get("expiry_s", int, LeaseConfig.expiry_s)
    low, high = LEASE_EXPIRY_RANGE
    if not low <= expiry <= high:
        raise ConfigError(s.key("expiry_s"), f"{expiry} must be between {low} and {high} seconds")
    s.finish()
    return LeaseConfig(expiry_s=expiry)


# At most a trillion requests a month (about 380,000 a second); a body within API Gateway's 10 MB payload
# quota; a handler time within the function's longest timeout (29 s).
MAX_COST_REQUESTS = 10 ** 12
MAX_RESPONSE_KB = 10_240.0
MAX_HANDLER_MS = 29_000.0


def _cost(s: _Section) -> CostConfig:
    requests = s.number("requests_per_month", int, 0, MAX_COST_REQUESTS, CostConfig.requests_per_month,
                        "requests a month")
    response_kb = s.number("response_kb", float, 0, MAX_RESPONSE_KB, CostConfig.response_kb,
                           "kB per answer; API Gateway answers at most 10 MB")
    handler_ms = None
    if "handler_ms" in s.raw:
        handler_ms = s.number("handler_ms", float, 1, MAX_HANDLER_MS, 1, "the function's time per request, "
                              "from its Duration metric; at most the 29 s API Gateway waits")
    s.finish()
    return CostConfig(requests_per_month=requests, response_kb=response_kb, handler_ms=handler_ms)


def _stack(s: _Section) -> StackConfig:
    name = s.text("name", STACK_NAME, "letters, digits and '-', at most 32, starting with a letter")
    region = s.region("region")
    check_permissions = s.get("check_permissions", bool, False)
    s.finish()
    return StackConfig(name=name, region=region, check_permissions=check_permissions)


def _identifier(s: _Section, key: str, value: Any) -> str:
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise ConfigError(s.key(key), f"{shown(value)} is not a plain identifier "
                          "(letters, digits and '_', not starting with a digit, at most 64)")
    return value


def _database(s: _Section, base: Path) -> DatabaseConfig:
    instance_id = s.text("instance_id", RDS_INSTANCE_ID, "an RDS DB instance identifier")
    name = _identifier(s, "name", s.get("name", str))
    user = s.text("user")
    if len(user) > 32:
        raise ConfigError(s.key("user"), "is longer than MySQL's 32 characters")
    if not DB_USER.fullmatch(user):
        raise ConfigError(s.key("user"), f"{shown(user)} is not valid: letters, digits, '_', '-' and '.', not starting "
                          "with '-' or '.' (IAM's rds-db:connect reads * ? / $ as patterns, MySQL quotes others)")
    auth, tls = _choice(s, "auth", DB_AUTH_MODES, "password"), _choice(s, "tls", DB_TLS_MODES, "verify")
    password = _password(s, auth)
    if auth == "iam" and tls == "off":
        raise ConfigError(s.key("tls"),
                          'must not be "off" with auth = "iam": the token is sent as a clear-text password')
    ca_bundle = _ca_bundle(s, base, tls)
    proxy = s.get("proxy", bool, False)
    if proxy and auth != "iam":
        raise ConfigError(s.key("proxy"), 'needs auth = "iam": the proxy authenticates the function with IAM end to '
                          'end, and holds no password')
    table = _identifier(s, "table", s.get("table", str))
    key_column = _identifier(s, "key_column", s.get("key_column", str))
    columns = s.get("columns", list, [])
    for i, column in enumerate(columns):
        _identifier(s, f"columns[{i}]", column)
    if len(set(columns)) != len(columns):
        raise ConfigError(s.key("columns"), "lists a column twice")
    s.finish()
    return DatabaseConfig(instance_id=instance_id, name=name, user=user, table=table, key_column=key_column,
                          columns=tuple(columns), auth=auth, password=password, tls=tls, ca_bundle=ca_bundle,
                          proxy=proxy)


def _choice(s: _Section, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = s.get(key, str, default)
    if value not in allowed:
        raise ConfigError(s.key(key), f"{shown(value)} must be one of " + ", ".join(f'"{a}"' for a in allowed))
    return value


def _password(s: _Section, auth: str) -> Secret | None:
    """password_env with auth = "password" only: with "iam" a password would be a secret left lying about."""
    if auth == "iam":
        if "password_env" in s.raw:
            raise ConfigError(s.key("password_env"), 'must not be set with auth = "iam" (the function signs '
                              "a token instead; remove the key)")
        return None
    if "password_env" not in s.raw:
        raise ConfigError(s.key("password_env"), 'is required with auth = "password" (or use auth = "iam")')
    return s.secret("password_env")


def _ca_bundle(s: _Section, base: Path, tls: str) -> Path | None:
    """An operator's PEM bundle, relative to the config file; checked now so deploy cannot fail on it."""
    raw = s.text("ca_bundle", default=None)
    if raw is None:
        return None
    if tls != "verify":
        raise ConfigError(s.key("ca_bundle"), f'is only used with tls = "verify" (tls is "{tls}")')
    path = base / raw
    try:
        text = read_small_file(path, MAX_CA_BUNDLE_BYTES).decode("ascii")
        path = path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: resolve() on a link loop (3.11)
        raise ConfigError(s.key("ca_bundle"), f"cannot read {shown(str(path))} as a PEM file "
                          f"({'not ASCII' if isinstance(exc, UnicodeDecodeError) else why_unreadable(exc)})") from None
    if PEM_CERTIFICATE not in text:
        raise ConfigError(s.key("ca_bundle"), f"{path} holds no PEM certificate ({PEM_CERTIFICATE})")
    try:
        ssl.create_default_context(cadata=text)  # as the function will load it
    except (ValueError, ssl.SSLError) as exc:
        raise ConfigError(s.key("ca_bundle"), f"{path} is not a PEM bundle Python can load ({exc})") from None
    return path


def _cidr(key: str, cidr: Any) -> str:
    """One range in its canonical form (as WAF stores it): "2001:0DB8::/032" is "2001:db8::/32"."""
    if not isinstance(cidr, str) or "/" not in cidr:
        raise ConfigError(key, f"{shown(cidr)} is not a CIDR such as 203.0.113.0/24")
    address, _, length = cidr.partition("/")
    if "%" in address:
        raise ConfigError(key, f"{shown(cidr)} is zone-scoped (%): a zone means nothing to WAF; drop it")
    if not (length.isascii() and length.isdigit()):
        raise ConfigError(key, f"{shown(cidr)} is not a CIDR: the prefix length must be a number such as /24")
    try:
        return str(ipaddress.ip_network(f"{address}/{int(length)}", strict=True))
    except ValueError as exc:
        raise ConfigError(key, f"{shown(cidr)} is not a valid CIDR ({shown(str(exc))[1:-1]})") from None


def _access(s: _Section, warnings: list[str]) -> AccessConfig:
    given = s.get("allowed_cidrs", list)
    if not given:
        raise ConfigError(s.key("allowed_cidrs"), "must list at least one CIDR")
    cidrs = [_cidr(s.key(f"allowed_cidrs[{i}]"), cidr) for i, cidr in enumerate(given)]
    for i, cidr in enumerate(cidrs):
        network = ipaddress.ip_network(cidr)
        if network.prefixlen == 0:
            raise ConfigError(s.key(f"allowed_cidrs[{i}]"), f"{cidr!r}: WAF accepts every CIDR range except "
                              f"/0; to let every address through, list {' and '.join(_HALVES[network.version])} "
                              "(the Authorization header is then the only guard)")
    if len(set(cidrs)) != len(cidrs):
        twice = next(c for c in cidrs if cidrs.count(c) > 1)
        raise ConfigError(s.key("allowed_cidrs"), f"lists {twice} twice (perhaps written two ways)")
    authorization = s.secret("authorization_env")
    value = authorization.value
    if not HTTP_FIELD_VALUE.fullmatch(value) or len(value.encode()) > 200:
        raise ConfigError(s.key("authorization_env"), f"the value of {authorization.env} must be an HTTP header "
                          "value of at most 200 bytes (WAF's limit): visible ASCII characters, spaces or tabs "
                          "only between them, no line breaks or control characters")
    if len(value) < MIN_AUTHORIZATION_CHARS:
        warnings.append(f"{s.key('authorization_env')}: the value of {authorization.env} is only {len(value)} "
                        f"characters: a short value can be guessed; use {MIN_AUTHORIZATION_CHARS} or more random ones")
    warnings.extend(_cidr_warnings(s.key("allowed_cidrs"), cidrs))
    rate_limit = s.number("rate_limit", int, *RATE_LIMIT_RANGE, AccessConfig.rate_limit,
                          "requests per source address per window: WAF's rate-based rule limits")
    window = s.get("rate_window_s", int, AccessConfig.rate_window_s)
    if window not in RATE_WINDOWS_S:
        raise ConfigError(s.key("rate_window_s"), f"{window} must be one of {', '.join(map(str, RATE_WINDOWS_S))} "
                          "(seconds: the evaluation windows WAF's rate-based rule allows)")
    s.finish()
    return AccessConfig(allowed_cidrs=tuple(cidrs), authorization=authorization, rate_limit=rate_limit,
                        rate_window_s=window)


# Two halves that together are the whole address space (WAF refuses /0 itself: IPSet API reference).
_HALVES = {4: ("0.0.0.0/1", "128.0.0.0/1"), 6: ("::/1", "8000::/1")}
# Ranges no CloudFront edge connects from: a caller reaches CloudFront from a public address, which is
# the one WAF sees. Documentation ranges (203.0.113.0/24, 2001:db8::/32) are left out: examples use them.
_NEVER_SEEN = tuple((ipaddress.ip_network(cidr), kind) for cidr, kind in (
    ("0.0.0.0/8", "'this network'"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"), ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("::ffff:0:0/96", "IPv4-mapped"),
    ("fc00::/7", "private (unique local)"), ("fe80::/10", "link-local"), ("ff00::/8", "multicast"),
))


def _cidr_warnings(key: str, cidrs: list[str]) -> tuple[str, ...]:
    """What a deploy should say about ranges that are valid but cannot be what the operator meant:
    together every address, or a range no caller on the internet reaches CloudFront from."""
    networks = [ipaddress.ip_network(cidr) for cidr in cidrs]
    said = []
    for version in (4, 6):
        ranges: list = [n for n in networks if n.version == version]  # one version: collapse_addresses' need
        if ranges and [n.prefixlen for n in ipaddress.collapse_addresses(ranges)] == [0]:
            said.append(f"{key}: the IPv{version} ranges together cover every IPv{version} address: any caller "
                        "with the Authorization header gets through")
    unreachable = 0
    for i, network in enumerate(networks):
        kind = next((kind for block, kind in _NEVER_SEEN
                     if block.version == network.version and network.subnet_of(block)), None)  # type: ignore[arg-type]
        if kind:
            unreachable += 1
            said.append(f"{key}[{i}]: {network} is {kind}: CloudFront sees each caller's public address, "
                        "so this range never matches")
    if unreachable == len(networks):
        said.append(f"{key}: no range holds a public address: every request will be blocked")
    return tuple(said)


def _domain_name(s: _Section, key: str, value: str) -> str:
    labels = value.split(".")
    if (len(value) > 253 or len(labels) < 2 or not all(DOMAIN_LABEL.fullmatch(label) for label in labels)
            or labels[-1].isdigit()):
        raise ConfigError(s.key(key), f"{shown(value)} is not a valid lower-case domain name such as api.example.com")
    return value


def _domain(s: _Section) -> DomainConfig:
    name = _domain_name(s, "name", s.text("name").rstrip("."))
    validation = s.text("validation")
    if validation not in VALIDATIONS:
        raise ConfigError(s.key("validation"), f"{shown(validation)} must be \"email\" or \"dns\"")
    zone = s.text("hosted_zone_id", default=None)
    if zone is not None:
        zone = zone.removeprefix("/hostedzone/")
        if not HOSTED_ZONE_ID.fullmatch(zone):
            raise ConfigError(s.key("hosted_zone_id"),
                              f"{shown(zone)} is not a Route 53 hosted zone id such as Z0123456789ABC")
    mail_region = s.region("mail_region", default="us-east-1")
    if validation == "email" and mail_region not in SES_RECEIVING_REGIONS:
        raise ConfigError(s.key("mail_region"), f"SES does not receive mail in {mail_region}; use one of "
                          + ", ".join(sorted(SES_RECEIVING_REGIONS)))
    validation_domain = s.text("validation_domain", default=None)
    if validation_domain is not None:
        validation_domain = _domain_name(s, "validation_domain", validation_domain.rstrip("."))
        if validation != "email":
            raise ConfigError(s.key("validation_domain"), "applies only to validation = \"email\"")
        if name != validation_domain and not name.endswith("." + validation_domain):
            raise ConfigError(s.key("validation_domain"), f"{shown(validation_domain)} must be {name!r} or a parent "
                              f"domain of it, such as {name.split('.', 1)[1]!r}")
        if validation_domain != acm_mail_domain(validation_domain):
            raise ConfigError(s.key("validation_domain"), f"ACM drops a leading 'www.' and mails "
                              f"{acm_mail_domain(validation_domain)!r} instead: set that, or leave the key out")
    mail_rule_set = s.text("mail_rule_set", RULE_SET_NAME, "an SES receipt rule set name (letters, digits, "
                           "'.', '_', '-'; at most 64)", default="")
    if mail_rule_set and validation != "email":
        raise ConfigError(s.key("mail_rule_set"), "applies only to validation = \"email\"")
    s.finish()
    return DomainConfig(name=name, validation=validation, hosted_zone_id=zone, mail_region=mail_region,
                        validation_domain=validation_domain or acm_mail_domain(name), mail_rule_set=mail_rule_set)


def _api(s: _Section) -> ApiConfig:
    path = s.text("path", API_PATH, "one path segment of letters, digits, '.', '_' or '-'", default="items")
    if path in (".", ".."):
        raise ConfigError(s.key("path"), f"{path!r} is not a path segment: URLs resolve it away (RFC 3986 5.2.4)")
    stage = s.text("stage", STAGE, "letters, digits and '_'", default="v1")
    key = s.secret("key_env", default=None)
    if key is not None and not (20 <= len(key.value) <= 128 and HTTP_FIELD_VALUE.fullmatch(key.value)):
        raise ConfigError(s.key("key_env"), f"the value of {key.env} must be 20 to 128 characters (API Gateway's "
                          "rule) that an HTTP header can carry (visible ASCII, no line breaks or control characters)")
    rate = s.get("throttle_rate", float, 10.0)
    if not 0 < rate <= MAX_THROTTLE_RATE:  # nan fails this too
        raise ConfigError(s.key("throttle_rate"), f"must be greater than 0 and at most {MAX_THROTTLE_RATE:,.0f} "
                          "(requests per second; API Gateway's account-level limit per Region)")
    burst = s.number("throttle_burst", int, 1, MAX_THROTTLE_BURST, 20, "API Gateway's account-level burst per Region")
    cache_seconds = s.number("cache_seconds", int, 0, MAX_CACHE_SECONDS, 0,
                             "seconds; 0 turns caching off, CloudFront's longest TTL is one year")
    max_rows = s.get("max_rows", int, 1000)
    if not 1 <= max_rows <= MAX_ROWS_LIMIT:
        raise ConfigError(s.key("max_rows"), f"must be between 1 and {MAX_ROWS_LIMIT:,} (rows per response)")
    s.finish()
    return ApiConfig(path=path, stage=stage, key=key, throttle_rate=rate, throttle_burst=burst, max_rows=max_rows,
                     cache_seconds=cache_seconds)


def _alerts(s: _Section) -> AlertsConfig:
    health = s.get("health", bool, True)  # first: a wrong value of it is named even when email is missing
    email = s.text("email", EMAIL, "an e-mail address such as ops@example.com")
    s.finish()
    return AlertsConfig(email=email, health=health)


def _logs(s: _Section) -> LogsConfig:
    api_access = s.get("api_access", bool, True)
    cloudfront = s.get("cloudfront", bool, True)
    s.finish()
    return LogsConfig(api_access=api_access, cloudfront=cloudfront)


def _function(s: _Section) -> FunctionConfig:
    memory = s.get("memory_mb", int, 256)
    timeout = s.get("timeout_s", int, 10)
    arch = s.get("architecture", str, "arm64")
    retention = s.get("log_retention_days", int, 30)
    concurrency = s.get("max_concurrency", int, 10)
    if concurrency < 0:
        raise ConfigError(s.key("max_concurrency"), "must be 0 (no reservation) or more (the most connections)")
    if concurrency > MAX_CONCURRENCY:
        raise ConfigError(s.key("max_concurrency"), f"must be at most {MAX_CONCURRENCY:,} (Lambda's default "
                          "concurrency per Region; each is a database connection)")
    if not 128 <= memory <= 10240:
        raise ConfigError(s.key("memory_mb"), "must be between 128 and 10240")
    if not 1 <= timeout <= 29:
        raise ConfigError(s.key("timeout_s"), "must be between 1 and 29 (API Gateway gives up after 29 s)")
    if arch not in ARCHITECTURES:
        raise ConfigError(s.key("architecture"), f"{shown(arch)} must be one of {', '.join(ARCHITECTURES)}")
    if retention not in LOG_RETENTION_DAYS:
        raise ConfigError(s.key("log_retention_days"), f"{retention} is not one CloudWatch Logs accepts "
                          f"({', '.join(map(str, LOG_RETENTION_DAYS[:8]))}, …)")
    s.finish()
    return FunctionConfig(memory_mb=memory, timeout_s=timeout, architecture=arch, log_retention_days=retention,
                          max_concurrency=concurrency)
