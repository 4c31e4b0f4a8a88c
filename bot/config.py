"""Settings: loaded once at start from one TOML file plus environment overrides.

The file is ``--config PATH``, else ``$UNLOCKBOT_CONFIG``, else ``./unlockbot.toml``
when it exists; with none of them every key takes its default, which runs the
embedded demo. Any key can be overridden by ``UNLOCKBOT_<SECTION>__<KEY>``
(``[database] url`` is ``UNLOCKBOT_DATABASE__URL``; deeper tables add more
``__``). Invalid settings stop the start with a ``ConfigError`` naming each key,
what it expected and where the value came from. Secrets are ``SecretStr`` and
never appear in a repr or a log.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.channel_settings import (
    DingTalkSettings,
    FeishuSettings,
    SlackSettings,
    TelegramSettings,
    WeComSettings,
)
from bot.channel_settings import (
    Section as _Section,
)
from bot.errors import ConfigError
from bot.messages import LOCALES

ENV_PREFIX = "UNLOCKBOT_"
DEFAULT_CONFIG_FILE = Path("unlockbot.toml")


class BotSettings(_Section):
    default_locale: Literal["zh-CN", "en"] = "zh-CN"
    # The time zone replies show times in when the person's own is not known (an IANA name);
    # unset: Asia/Shanghai in Chinese replies, UTC in English ones.
    timezone: str | None = None
    data_dir: Path = Path(".unlockbot")
    templates_dir: Path | None = None
    knowledge_dir: Path | None = None
    # A conversation left this long in the middle of a flow starts fresh at the next message.
    idle_timeout_minutes: float = Field(default=30, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if not value:  # unset, or set empty to take the locale's default
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Asia/Shanghai')") from exc
        return value


def _database_url(value: str) -> str:
    if value and not value.startswith(("sqlite", "postgresql")):
        raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
    return value


class DatabaseSettings(_Section):
    # Empty means a SQLite file in [bot] data_dir.
    url: str = ""
    echo: bool = False
    # Connections each process keeps open to PostgreSQL, and how many more it may open at a busy moment. A turn
    # holds one for its transaction: a pool smaller than the turns under way at once makes turns queue for it.
    # (SQLite ignores both: one file, one writer.)
    # Connections past pool_size are closed as soon as they are returned: a pool that is often short opens and
    # closes connections all the time, which costs more CPU than the turns it serves.
    pool_size: int = Field(default=20, ge=1, le=200)
    max_overflow: int = Field(default=10, ge=0, le=500)

    _supported = field_validator("url")(_database_url)


class SecuritySettings(_Section):
    # A Fernet key (32 url-safe base64 bytes); or a file holding one.
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None
    # Keys that may still decrypt old secrets during a rotation.
    previous_keys: tuple[SecretStr, ...] = ()
    # The key that signs the audit trail (32 or more random bytes, url-safe base64); or a file holding one.
    # Unset everywhere: <data_dir>/audit.key, made at the first start. Replicas must share one key.
    audit_key: SecretStr | None = None
    audit_key_file: Path | None = None


class TotpSettings(_Section):
    issuer: str = "unlockbot"
    link_code_hours: int = Field(default=24, ge=1, le=24 * 30)
    max_failures: int = Field(default=5, ge=1, le=100)
    lockout_seconds: int = Field(default=60, ge=1)
    lockout_max_seconds: int = Field(default=86_400, ge=1)
    # After a right code, a follow-up action in the same chat within this time asks for no other code.
    grace_minutes: float = Field(default=5, ge=0, le=60)


class SqlCrmSettings(_Section):
    # Empty means a SQLite file of its own in [bot] data_dir: the CRM is another system.
    url: str = ""

    _supported = field_validator("url")(_database_url)


def _web_url(value: str) -> str:
    if value and not value.startswith(("https://", "http://")):
        raise ValueError("expected an https:// (or http://) URL")
    return value.rstrip("/")


def _https_url(value: str) -> str:
    if value and not value.startswith("https://"):
        raise ValueError("expected an https:// URL")
    return value.rstrip("/")


class ResilienceSettings(_Section):
    # Extra attempts for calls that change nothing (lookups, lock status, probe); never for unlocks or resets.
    retries: int = Field(default=2, ge=0, le=5)
    # The first pause before a retry; each next one doubles, with random jitter, all within timeout_seconds.
    retry_backoff_seconds: float = Field(default=0.2, ge=0, le=10)
    # Failed calls in a row after which the bot stops asking the CRM for cool_down_seconds.
    failure_threshold: int = Field(default=5, ge=1, le=1000)
    cool_down_seconds: float = Field(default=30.0, gt=0, le=3600)


class SalesforceSettings(_Section):
    # The org's My Domain URL: the OAuth token endpoint and the REST API both live there.
    instance_url: str = ""
    # The connected app's consumer key and secret (OAuth client credentials flow).
    client_id: str = ""
    client_secret: SecretStr | None = None
    api_version: str = Field(default="62.0", pattern=r"^\d{2,3}\.0$")
    # PEM file of CA certificates to trust instead of the system's (a TLS-inspecting proxy, a test server).
    ca_file: FilePath | None = None
    # How many recent LoginHistory rows are read to explain a lock.
    history_rows: int = Field(default=20, ge=1, le=200)

    _https = field_validator("instance_url")(_https_url)


class KeycloakSettings(_Section):
    # The server's root URL, e.g. https://sso.example.com (add /auth for Keycloak 16 and older).
    base_url: str = ""
    # The realm whose users sign in to the CRM.
    realm: str = ""
    # The realm of the service-account client; empty means the same realm.
    client_realm: str = ""
    client_id: str = ""
    client_secret: SecretStr | None = None
    ca_file: FilePath | None = None

    _web = field_validator("base_url")(_web_url)


class RestPaths(_Section):
    """Where each call goes, relative to base_url; {username}, {query}, {since}, {licence} and {limit} are
    filled in, URL-encoded."""

    find_account: str = "/accounts?query={query}"
    lock_status: str = "/accounts/{username}/lock"
    unlock: str = "/accounts/{username}/unlock"
    reset_password: str = "/accounts/{username}/password-reset"  # noqa: S105 (a path)
    add_trusted_ip: str = "/accounts/{username}/trusted-ips"
    licence: str = "/accounts/{username}/licence"
    licences: str = "/licences"
    inactive_users: str = "/licences/{licence}/users?order=last_sign_in&limit={limit}"
    system_status: str = "/system/status"
    locks_since: str = "/locks/count?since={since}"
    lock_events: str = "/locks/events?since={since}"
    probe: str = "/health"


class RestFields(_Section):
    """Where each fact is in the CRM's JSON; a dotted name reaches into nested objects ("data.login")."""

    username: str = "username"
    email: str = "email"
    display_name: str = "display_name"
    active: str = "active"
    locked: str = "locked"
    reason: str = "reason"
    locked_at: str = "locked_at"
    evidence: str = "evidence"
    sent_to: str = "sent_to"
    count: str = "count"


class RestCrmSettings(_Section):
    base_url: str = ""
    # "bearer": Authorization: Bearer <token>; "header": <header_name>: <token>; "none": no credentials.
    auth: Literal["bearer", "header", "none"] = "bearer"
    token: SecretStr | None = None
    header_name: str = "X-Api-Key"
    # What the in-house CRM implements; each needs its path in [crm.rest.paths].
    capabilities: tuple[str, ...] = ("lock_status", "login_history", "unlock", "probe")
    paths: RestPaths = RestPaths()
    fields: RestFields = RestFields()
    # The CRM's own reason codes mapped to ours; codes neither listed nor ours become "unknown".
    reasons: dict[str, str] = Field(default_factory=dict)
    ca_file: FilePath | None = None

    _web = field_validator("base_url")(_web_url)

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from bot.crm.base import Capability

        known = {c.value for c in Capability}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown capabilities {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        return value

    @field_validator("reasons")
    @classmethod
    def _known_reasons(cls, value: dict[str, str]) -> dict[str, str]:
        from bot.crm.base import LockReason

        known = {r.value for r in LockReason}
        unknown = sorted(set(value.values()) - known)
        if unknown:
            raise ValueError(f"unknown lock reasons {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        return value


class CrmSettings(_Section):
    backend: Literal["sql", "salesforce", "keycloak", "rest"] = "sql"
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    resilience: ResilienceSettings = ResilienceSettings()
    sql: SqlCrmSettings = SqlCrmSettings()
    salesforce: SalesforceSettings = SalesforceSettings()
    keycloak: KeycloakSettings = KeycloakSettings()
    rest: RestCrmSettings = RestCrmSettings()

    @model_validator(mode="after")
    def _chosen_backend_is_configured(self) -> CrmSettings:
        required = {
            "salesforce": {
                "instance_url": self.salesforce.instance_url,
                "client_id": self.salesforce.client_id,
                "client_secret": self.salesforce.client_secret,
            },
            "keycloak": {
                "base_url": self.keycloak.base_url,
                "realm": self.keycloak.realm,
                "client_id": self.keycloak.client_id,
                "client_secret": self.keycloak.client_secret,
            },
            "rest": {
                "base_url": self.rest.base_url,
                **({"token": self.rest.token} if self.rest.auth != "none" else {}),
            },
        }.get(self.backend, {})
        missing = [f"crm.{self.backend}.{key}" for key, value in required.items() if not value]
        if missing:
            raise ValueError(f"backend = {self.backend!r} needs {', '.join(missing)}")
        return self


PolicyPath = Literal["self_service", "approval", "none"]


class PolicyRule(_Section):
    path: PolicyPath
    totp: bool = True
    # Whether the approving admin must give their own TOTP code; unset keeps the reason's default.
    approver_totp: bool | None = None


class RequestSettings(_Section):
    lifetime_hours: float = Field(default=24, gt=0)
    remind_after_minutes: float = Field(default=30, gt=0)
    remind_every_minutes: float = Field(default=60, gt=0)
    # After this many reminders the escalation admins are asked too.
    escalate_after_reminders: int = Field(default=3, ge=1)
    self_service_per_day: int = Field(default=3, ge=0)
    reset_cooldown_minutes: float = Field(default=15, ge=0)
    # Questions one person may hand to the admins in a day (each one notifies every admin).
    questions_per_day: int = Field(default=3, ge=0)


class RetentionSettings(_Section):
    # How long the housekeeper keeps what only matters for a while; the audit trail is never pruned.
    processed_events_days: float = Field(default=7, gt=0)  # event ids remembered against redelivery
    notifications_days: float = Field(default=30, gt=0)  # notifications, once delivered
    conversations_days: float = Field(default=90, gt=0)  # conversations nobody touched for this long


class AdminSettings(_Section):
    # CRM usernames of the people who may decide requests and run admin commands.
    usernames: tuple[str, ...] = ()
    # Asked as well when a request has waited through escalate_after_reminders reminders.
    escalation: tuple[str, ...] = ()
    # Once a week (the first housekeeping round of each ISO week in UTC, so Monday; one replica sends it) the
    # numbers of `stats` for the last 7 days are posted with their chart to every channel's admin destination
    # (bot.reports.digest); with none configured, each admin is notified, with a button that draws the chart.
    weekly_digest: bool = False


class AlertSettings(_Section):
    # Direct messages the bot sends unasked: a lock as it happens, maintenance ahead and over. People opt out
    # one by one ("stop alerts"); false here sends none to anybody.
    enabled: bool = True
    # How often the CRM is asked for new locks (one replica asks per period); backends without lock events never.
    poll_seconds: float = Field(default=60, ge=1, le=3600)
    # How long before a maintenance window people are told of it (and again when it ends).
    maintenance_notice_hours: float = Field(default=24, gt=0, le=24 * 14)
    # An incident: at least incident_min_locks locks within incident_window_minutes, and more than
    # incident_factor times what such a window held on average over the incident_baseline_hours before it.
    # The admins are told once; "is this normal?" and "is it just me?" say so while it lasts.
    incident_window_minutes: float = Field(default=10, gt=0, le=24 * 60)
    incident_factor: float = Field(default=3.0, ge=1)
    incident_min_locks: int = Field(default=5, ge=2)
    incident_baseline_hours: float = Field(default=24, gt=0, le=24 * 30)

    @model_validator(mode="after")
    def _baseline_longer_than_window(self) -> AlertSettings:
        if self.incident_baseline_hours * 60 <= self.incident_window_minutes:
            raise ValueError("incident_baseline_hours must be longer than incident_window_minutes")
        return self


class HttpSettings(_Section):
    # The one HTTP listener shared by webhooks (Telegram, Slack) and /healthz.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class ConsoleSettings(_Section):
    # Where images (QR codes) shown in the console are written; empty means data_dir/images.
    image_dir: Path | None = None


class LogSettings(_Section):
    # What `unlockbot serve` logs: "info" is warnings, errors and one line per turn; "debug" adds our own debug
    # lines. Other commands show warnings and errors only, unless run with -v; -vv adds the libraries' debug output.
    level: Literal["debug", "info", "warning", "error"] = "info"
    # "text": one line per record; "json": one JSON object per line, stack traces included (for log collectors).
    format: Literal["text", "json"] = "text"


class Settings(_Section):
    bot: BotSettings = BotSettings()
    database: DatabaseSettings = DatabaseSettings()
    security: SecuritySettings = SecuritySettings()
    totp: TotpSettings = TotpSettings()
    crm: CrmSettings = CrmSettings()
    policy: dict[str, PolicyRule] = Field(default_factory=dict)
    requests: RequestSettings = RequestSettings()
    retention: RetentionSettings = RetentionSettings()
    admins: AdminSettings = AdminSettings()
    alerts: AlertSettings = AlertSettings()
    telegram: TelegramSettings = TelegramSettings()
    http: HttpSettings = HttpSettings()
    slack: SlackSettings = SlackSettings()
    feishu: FeishuSettings = FeishuSettings()
    dingtalk: DingTalkSettings = DingTalkSettings()
    wecom: WeComSettings = WeComSettings()
    console: ConsoleSettings = ConsoleSettings()
    log: LogSettings = LogSettings()

    @field_validator("policy")
    @classmethod
    def _known_reasons(cls, value: dict[str, PolicyRule]) -> dict[str, PolicyRule]:
        from bot.crm.base import LockReason

        known = {r.value for r in LockReason}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"unknown lock reason(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"
            )
        return value

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.bot.data_dir / 'unlockbot.db'}"

    @property
    def crm_database_url(self) -> str:
        return self.crm.sql.url or f"sqlite:///{self.bot.data_dir / 'crm.db'}"

    @property
    def image_dir(self) -> Path:
        return self.console.image_dir or self.bot.data_dir / "images"

    @property
    def key_file(self) -> Path:
        return self.security.secret_key_file or self.bot.data_dir / "secret.key"

    @property
    def audit_key_file(self) -> Path:
        return self.security.audit_key_file or self.bot.data_dir / "audit.key"


def locale_from_flag(flag: str | None) -> str | None:
    """``zh``/``en`` (or a full locale) from a command line flag, as one of ``LOCALES``."""
    if flag is None:
        return None
    for locale in LOCALES:
        if flag.lower() in (locale.lower(), locale.split("-")[0].lower()):
            return locale
    raise ConfigError(f"--lang: expected one of zh, en; got {flag!r}")


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "UNLOCKBOT_CONFIG" or name.startswith("UNLOCKBOT_TEST_"):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _env_value(value)
    return tree


def _env_value(value: str) -> Any:
    """Lists come as JSON arrays (``["sam", "tina"]``); everything else stays text for validation."""
    if value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # validation names the variable and what it expected
    return value


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_SECRET_WORDS = ("secret", "key", "token", "password")
# user:password@ in any scheme://; the password may hold anything but "@" (SQLAlchemy parses it so).
_URL_PASSWORD = re.compile(r"(?P<start>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
# libpq and many HTTP APIs also take credentials as query parameters.
_QUERY_SECRET = re.compile(
    r"(?i)(?P<start>[?&;](?:password|passwd|pwd|secret|client_secret|token|access_token|api_?key|key)=)[^&#;\s'\"]*"
)


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (in the user part or the query)."""
    return _QUERY_SECRET.sub(r"\g<start>***", _URL_PASSWORD.sub(r"\g<start>***@", text))


def _describe(error: Mapping[str, Any], origin: str) -> str:
    parts = [str(part) for part in error["loc"]]
    key = ".".join(parts)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    got = error.get("input")
    secret = parts[:1] == ["security"] or any(word in part for part in parts for word in _SECRET_WORDS)
    if isinstance(got, str):
        got = mask_url(got)  # a database URL quoted back must not show its password
    shown = "" if secret or error["type"] == "extra_forbidden" or isinstance(got, Mapping) else f" (got {got!r})"
    return f"  {key}: {message}{shown} [{origin}]"


def _env_source(loc: tuple[Any, ...], environ: Mapping[str, str]) -> str | None:
    """The environment variable that set the value at ``loc`` (or a value below it), if any."""
    prefix = ENV_PREFIX + "__".join(str(part).upper() for part in loc)
    for name in sorted(environ):
        if name == prefix or name.startswith(prefix + "__"):
            return name
    return None


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the settings once; raise ``ConfigError`` naming every bad key."""
    environ = os.environ if environ is None else environ
    explicit = path or (Path(environ["UNLOCKBOT_CONFIG"]) if environ.get("UNLOCKBOT_CONFIG") else None)
    file = explicit or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {file} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from exc
    overrides = _env_overrides(environ)
    try:
        return Settings.model_validate(_merge(data, overrides))
    except ValidationError as exc:
        origin = f"{file}" if file else "defaults"
        lines = []
        for error in exc.errors():
            lines.append(_describe(error, _env_source(error["loc"], environ) or origin))
        raise ConfigError("invalid settings:\n" + "\n".join(lines)) from None
