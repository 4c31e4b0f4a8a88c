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
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.errors import ConfigError
from bot.messages import LOCALES

ENV_PREFIX = "UNLOCKBOT_"
DEFAULT_CONFIG_FILE = Path("unlockbot.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotSettings(_Section):
    default_locale: Literal["zh-CN", "en"] = "zh-CN"
    timezone: str = "UTC"
    data_dir: Path = Path(".unlockbot")
    templates_dir: Path | None = None
    knowledge_dir: Path | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
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

    _supported = field_validator("url")(_database_url)


class SecuritySettings(_Section):
    # A Fernet key (32 url-safe base64 bytes); or a file holding one.
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None
    # Keys that may still decrypt old secrets during a rotation.
    previous_keys: tuple[SecretStr, ...] = ()


class TotpSettings(_Section):
    issuer: str = "unlockbot"
    link_code_hours: int = Field(default=24, ge=1, le=24 * 30)
    max_failures: int = Field(default=5, ge=1, le=100)
    lockout_seconds: int = Field(default=60, ge=1)
    lockout_max_seconds: int = Field(default=86_400, ge=1)


class SqlCrmSettings(_Section):
    # Empty means a SQLite file of its own in [bot] data_dir: the CRM is another system.
    url: str = ""

    _supported = field_validator("url")(_database_url)


class CrmSettings(_Section):
    backend: Literal["sql"] = "sql"
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    sql: SqlCrmSettings = SqlCrmSettings()


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


class AdminSettings(_Section):
    # CRM usernames of the people who may decide requests and run admin commands.
    usernames: tuple[str, ...] = ()
    # Asked as well when a request has waited through escalate_after_reminders reminders.
    escalation: tuple[str, ...] = ()


class TelegramLinkSettings(_Section):
    # The bot's Telegram username, for the deep links printed with link codes.
    bot_username: str = ""


class HttpSettings(_Section):
    # The one HTTP listener shared by webhooks (Telegram, Slack) and /healthz.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class ConsoleSettings(_Section):
    # Where images (QR codes) shown in the console are written; empty means data_dir/images.
    image_dir: Path | None = None


class Settings(_Section):
    bot: BotSettings = BotSettings()
    database: DatabaseSettings = DatabaseSettings()
    security: SecuritySettings = SecuritySettings()
    totp: TotpSettings = TotpSettings()
    crm: CrmSettings = CrmSettings()
    policy: dict[str, PolicyRule] = Field(default_factory=dict)
    requests: RequestSettings = RequestSettings()
    admins: AdminSettings = AdminSettings()
    telegram: TelegramLinkSettings = TelegramLinkSettings()
    http: HttpSettings = HttpSettings()
    console: ConsoleSettings = ConsoleSettings()

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


def _describe(error: Mapping[str, Any], origin: str) -> str:
    parts = [str(part) for part in error["loc"]]
    key = ".".join(parts)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    got = error.get("input")
    secret = parts[:1] == ["security"] or any(word in part for part in parts for word in _SECRET_WORDS)
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
