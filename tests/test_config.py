"""Settings: defaults, the TOML file, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings, load_settings, locale_from_flag
from bot.crm.base import LockReason
from bot.errors import ConfigError

SECRET = "c2VjcmV0LWtleS10aGF0LW11c3Qtc3RheS1oaWRkZW4="  # any string works: it is only stored


def write(tmp_path: Path, text: str, name: str = "unlockbot.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ or {})
    return str(raised.value)


def test_an_empty_file_and_environment_give_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), {})
    assert settings == Settings()
    assert settings.bot.default_locale == "zh-CN"
    assert settings.bot.timezone is None  # each locale's own: Asia/Shanghai for zh-CN, UTC for en
    assert settings.totp.max_failures == 5
    assert settings.crm.backend == "sql"
    assert settings.crm.timeout_seconds == 5.0
    assert settings.security.secret_key is None
    assert settings.policy == {}
    # Empty URLs mean SQLite files in the data directory: two databases, the CRM being another system.
    assert settings.database_url == f"sqlite:///{Path('.unlockbot') / 'unlockbot.db'}"
    assert settings.crm_database_url == f"sqlite:///{Path('.unlockbot') / 'crm.db'}"
    assert settings.key_file == Path(".unlockbot") / "secret.key"
    assert settings.image_dir == Path(".unlockbot") / "images"


def test_the_toml_file_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [bot]
        default_locale = "en"
        timezone = "Asia/Shanghai"
        data_dir = "/srv/unlockbot"

        [database]
        url = "postgresql+psycopg://bot@127.0.0.1/bot"

        [totp]
        max_failures = 3

        [crm]
        timeout_seconds = 2.5

        [crm.sql]
        url = "sqlite:///crm-from-file.db"

        [policy.failed_password]
        path = "self_service"

        [policy.policy_violation]
        path = "approval"
        totp = false
        """,
    )
    settings = load_settings(path, {})
    assert settings.bot.default_locale == "en"
    assert settings.bot.timezone == "Asia/Shanghai"
    assert settings.bot.data_dir == Path("/srv/unlockbot")
    assert settings.database_url == "postgresql+psycopg://bot@127.0.0.1/bot"
    assert settings.totp.max_failures == 3
    assert settings.crm.timeout_seconds == 2.5
    assert settings.crm_database_url == "sqlite:///crm-from-file.db"
    assert settings.key_file == Path("/srv/unlockbot/secret.key")
    assert settings.policy["failed_password"].path == "self_service"
    assert settings.policy["failed_password"].totp is True
    assert settings.policy["policy_violation"].path == "approval"
    assert settings.policy["policy_violation"].totp is False


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[totp]\nmax_failures = 9\n", name="elsewhere.toml")
    settings = load_settings(None, {"UNLOCKBOT_CONFIG": str(path)})
    assert settings.totp.max_failures == 9


def test_environment_overrides_a_section_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///from-file.db"\necho = true\n')
    settings = load_settings(path, {"UNLOCKBOT_DATABASE__URL": "postgresql+psycopg://env@127.0.0.1/bot"})
    assert settings.database.url == "postgresql+psycopg://env@127.0.0.1/bot"
    assert settings.database.echo is True  # the rest of the section still comes from the file


def test_environment_overrides_a_nested_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[crm]\ntimeout_seconds = 3\n\n[crm.sql]\nurl = "sqlite:///from-file.db"\n')
    settings = load_settings(path, {"UNLOCKBOT_CRM__SQL__URL": "sqlite:///from-env.db"})
    assert settings.crm.sql.url == "sqlite:///from-env.db"
    assert settings.crm_database_url == "sqlite:///from-env.db"
    assert settings.crm.timeout_seconds == 3.0


def test_a_nested_override_works_without_the_table_in_the_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), {"UNLOCKBOT_CRM__SQL__URL": "sqlite:///from-env.db"})
    assert settings.crm.sql.url == "sqlite:///from-env.db"


def test_an_environment_string_is_coerced_to_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, "[totp]\nmax_failures = 3\n")
    settings = load_settings(path, {"UNLOCKBOT_TOTP__MAX_FAILURES": "7"})
    assert settings.totp.max_failures == 7
    assert isinstance(settings.totp.max_failures, int)


def test_unrelated_and_test_variables_are_ignored(tmp_path: Path) -> None:
    environ = {
        "HOME": "/root",
        "UNLOCKBOTX": "1",
        "UNLOCKBOT_TEST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    }
    assert load_settings(write(tmp_path, ""), environ) == Settings()


@pytest.mark.parametrize(
    ("toml", "key", "expected"),
    [
        ('[totp]\nmax_failures = "many"\n', "totp.max_failures", "valid integer"),
        ("[totp]\nmax_failures = 0\n", "totp.max_failures", "greater than or equal to 1"),
        ('[crm]\ntimeout_seconds = "soon"\n', "crm.timeout_seconds", "valid number"),
        ('[database]\nurl = "mysql://127.0.0.1/bot"\n', "database.url", "sqlite"),
        ('[bot]\ndefault_locale = "fr"\n', "bot.default_locale", "'zh-CN' or 'en'"),
        ("[totp]\nmax_tries = 3\n", "totp.max_tries", "unknown key"),
        ("[nosuch]\nanything = 1\n", "nosuch", "unknown key"),
        ('[bot]\ntimezone = "Mars/Olympus_Mons"\n', "bot.timezone", "unknown time zone"),
        ('[policy.failed_password]\npath = "teleport"\n', "policy.failed_password.path", "'self_service'"),
        ("[policy.failed_password]\ntotp = true\n", "policy.failed_password.path", "required"),
    ],
)
def test_an_invalid_file_value_names_the_key_and_the_file(tmp_path: Path, toml: str, key: str, expected: str) -> None:
    path = write(tmp_path, toml)
    message = config_error(path)
    line = next((line for line in message.splitlines() if line.strip().startswith(f"{key}:")), None)
    assert line is not None, message
    assert expected in line
    assert f"[{path}]" in line


def test_an_unsupported_crm_url_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[crm.sql]\nurl = "mysql://127.0.0.1/crm"\n')
    message = config_error(path)
    assert "crm.sql.url" in message
    assert "sqlite" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("toml", "environ", "shown"),
    [
        (
            '[database]\nurl = "mysql://bot:hunter2@db.example.com:3306/unlockbot"\n',
            {},
            "mysql://bot:***@db.example.com:3306/unlockbot",
        ),
        (
            "",
            {"UNLOCKBOT_CRM__SQL__URL": "mysql+pymysql://crm:hunter2@10.0.0.5/crm"},
            "mysql+pymysql://crm:***@10.0.0.5/crm",
        ),
        # libpq also takes the password as a query parameter.
        ('[database]\nurl = "mysql://db.example.com/bot?password=hunter2&ssl=1"\n', {}, "password=***&ssl=1"),
        (
            '[crm.rest]\nbase_url = "ftp://admin:hunter2@crm.example.com/api"\n',
            {},
            "ftp://admin:***@crm.example.com/api",
        ),
    ],
)
def test_a_url_in_a_config_error_shows_no_password(
    tmp_path: Path, toml: str, environ: dict[str, str], shown: str
) -> None:
    message = config_error(write(tmp_path, toml), environ)
    assert "hunter2" not in message
    assert shown in message


def test_an_unknown_policy_reason_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[policy.forgot_coffee]\npath = "approval"\n\n[policy.network]\npath = "none"\n')
    message = config_error(path)
    assert "policy:" in message
    assert "forgot_coffee" in message
    assert "network" not in message.split("expected")[0]  # a known reason is not blamed
    assert LockReason.FAILED_PASSWORD.value in message  # the valid reasons are listed


def test_every_invalid_key_is_reported_at_once(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, '[totp]\nmax_failures = "x"\n\n[bot]\ntimezone = "Nowhere/Land"\n'))
    assert "totp.max_failures" in message
    assert "bot.timezone" in message


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("UNLOCKBOT_TOTP__MAX_FAILURES", "seven", "totp.max_failures"),
        ("UNLOCKBOT_TOTP__MAX_TRIES", "3", "totp.max_tries"),
        ("UNLOCKBOT_BOT__TIMEZONE", "Mars/Olympus_Mons", "bot.timezone"),
        ("UNLOCKBOT_POLICY__FAILED_PASSWORD__PATH", "teleport", "policy.failed_password.path"),
        ("UNLOCKBOT_DATABASE__ECHO", "loudly", "database.echo"),
        ("UNLOCKBOT_TOTP", "7", "totp"),
    ],
)
def test_an_invalid_override_names_the_key_and_the_variable(tmp_path: Path, name: str, value: str, key: str) -> None:
    path = write(tmp_path, "[totp]\nmax_failures = 3\n")
    message = config_error(path, {name: value})
    line = next((line for line in message.splitlines() if line.strip().startswith(f"{key}:")), None)
    assert line is not None, message
    assert f"[{name}]" in line
    assert str(path) not in line  # the file is not blamed for what the environment set


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("UNLOCKBOT_NOSUCH__ANYTHING", "1", "nosuch"),
        ("UNLOCKBOT_POLICY__FORGOT_COFFEE__PATH", "approval", "policy"),
    ],
)
def test_an_unknown_section_from_the_environment_names_the_variable(
    tmp_path: Path, name: str, value: str, key: str
) -> None:
    path = write(tmp_path, "")
    message = config_error(path, {name: value})
    assert f"{key}:" in message
    assert f"[{name}]" in message
    assert str(path) not in message


def test_a_missing_explicit_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "unlockbot.toml"
    message = config_error(missing)
    assert str(missing) in message
    assert "does not exist" in message


def test_a_missing_file_from_the_environment_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "gone.toml"
    with pytest.raises(ConfigError) as raised:
        load_settings(None, {"UNLOCKBOT_CONFIG": str(missing)})
    assert str(missing) in str(raised.value)


def test_invalid_toml_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[totp\nmax_failures = 3\n")
    message = config_error(path)
    assert str(path) in message
    assert "not valid TOML" in message


def test_the_secret_key_is_never_shown(tmp_path: Path) -> None:
    path = write(tmp_path, f'[security]\nsecret_key = "{SECRET}"\nprevious_keys = ["{SECRET}-old"]\n')
    settings = load_settings(path, {})
    assert settings.security.secret_key is not None
    assert settings.security.secret_key.get_secret_value() == SECRET
    assert settings.security.previous_keys[0].get_secret_value() == f"{SECRET}-old"
    for shown in (repr(settings), str(settings), repr(settings.security), str(settings.security)):
        assert SECRET not in shown
    assert "**" in repr(settings.security)


def test_a_secret_from_the_environment_is_never_shown(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), {"UNLOCKBOT_SECURITY__SECRET_KEY": SECRET})
    assert settings.security.secret_key is not None
    assert settings.security.secret_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


@pytest.mark.parametrize(
    ("toml", "environ"),
    [
        # Something else is wrong: the error must not quote the secret that sits next to it.
        (f'[security]\nsecret_key = "{SECRET}"\n\n[totp]\nmax_failures = "x"\n', {}),
        (f'[security]\nsecret_key = "{SECRET}"\nsecret_kye = "{SECRET}"\n', {}),
        # The secret itself has the wrong type.
        (f'[security]\nsecret_key = ["{SECRET}"]\n', {}),
        (f'[security]\nsecret_key = {{ value = "{SECRET}" }}\n', {}),
        (f'[security]\nprevious_keys = "{SECRET}"\n', {}),
        ("", {"UNLOCKBOT_SECURITY__PREVIOUS_KEYS": SECRET}),
        # A key in a list, given with the wrong type.
        ("[security]\nprevious_keys = [8675309123456789]\n", {}),
        ("", {"UNLOCKBOT_SECURITY__SECRET_KEY": SECRET, "UNLOCKBOT_TOTP__MAX_FAILURES": "x"}),
    ],
)
def test_a_config_error_never_shows_the_secret(tmp_path: Path, toml: str, environ: dict[str, str]) -> None:
    message = config_error(write(tmp_path, toml), environ)
    assert "invalid settings" in message
    assert SECRET not in message
    assert "8675309123456789" not in message


@pytest.mark.parametrize(
    ("toml", "environ"),
    [
        (f'security = "{SECRET}"\n', {}),
        ("", {"UNLOCKBOT_SECURITY": SECRET}),
    ],
)
def test_a_secret_given_as_the_security_section_is_not_shown(
    tmp_path: Path, toml: str, environ: dict[str, str]
) -> None:
    message = config_error(write(tmp_path, toml), environ)
    assert "security:" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("flag", "locale"),
    [
        ("zh", "zh-CN"),
        ("ZH", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("zh-cn", "zh-CN"),
        ("en", "en"),
        ("EN", "en"),
        (None, None),
    ],
)
def test_locale_from_flag(flag: str | None, locale: str | None) -> None:
    assert locale_from_flag(flag) == locale


@pytest.mark.parametrize("flag", ["fr", "cn", "zh-TW", "en-US", "english", ""])
def test_locale_from_flag_rejects_others(flag: str) -> None:
    with pytest.raises(ConfigError, match="--lang") as raised:
        locale_from_flag(flag)
    assert repr(flag) in str(raised.value)
