"""Settings of the chat channels: `[telegram]`, `[slack]`, `[feishu]`, `[dingtalk]`, `[wecom]`, one section each.

A channel is on when its credentials are filled in (``configured``); ``serve`` starts every channel that is.
``has_admin_destination`` says whether its admin group, channel or people are set, for request cards and the
weekly digest.
Each ``api_base_url`` exists to point the channel at a local fake of the platform in tests, never at
anything else in production. Secrets are ``SecretStr``: never in a repr or a log.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _base_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("expected an https:// URL")
    return value.rstrip("/")


def _events_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("expected a path starting with '/'")
    return value


_TELEGRAM_TOKEN = re.compile(r"^[0-9]+:[A-Za-z0-9_-]+$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramSettings(Section):
    # The bot's Telegram username, for the deep links printed with link codes.
    bot_username: str = ""
    # The token BotFather gave; unset means the Telegram channel is off.
    token: SecretStr | None = None
    # The Bot API server: Telegram's, a local Bot API server, or a test fake. The token follows each URL.
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    # "polling" asks Telegram for updates; "webhook" has Telegram post them to [http] at webhook_path.
    mode: Literal["polling", "webhook"] = "polling"
    # Telegram sends it back in X-Telegram-Bot-Api-Secret-Token on every webhook request; required for webhooks.
    secret_token: SecretStr | None = None
    webhook_path: str = "/telegram/webhook"
    # The public HTTPS address in front of [http], without webhook_path; when set, the bot registers
    # webhook_url + webhook_path with Telegram at start.
    webhook_url: str = ""
    # The group (a negative id) where request cards with Approve / Deny are posted; unset posts none.
    admin_chat_id: int | None = None
    # At most this many sends in any one second (Telegram's flood control answers 429 past 30); lower it when
    # another bot shares the token's limit. Each replica paces its own sends: N replicas take 30 / N each.
    messages_per_second: float = Field(default=30, gt=0, le=30)

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TELEGRAM_TOKEN.match(value.get_secret_value()):
            raise ValueError("expected the token BotFather gave, such as 123456789:AA... (digits, a colon, letters)")
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WEBHOOK_SECRET.match(value.get_secret_value()):
            raise ValueError("expected 1-256 characters from A-Z, a-z, 0-9, _ and - (what Telegram accepts)")
        return value

    @field_validator("webhook_path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected a path starting with '/', such as '/telegram/webhook'")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        if value and not value.startswith("https://"):
            raise ValueError("expected an https:// URL (Telegram posts webhooks over HTTPS only)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> TelegramSettings:
        if self.mode == "webhook" and self.secret_token is None:
            raise ValueError(
                "mode = 'webhook' needs secret_token, so that requests not from Telegram are refused "
                "(set [telegram] secret_token or UNLOCKBOT_TELEGRAM__SECRET_TOKEN)"
            )
        return self

    @property
    def configured(self) -> bool:
        return self.token is not None

    @property
    def has_admin_destination(self) -> bool:
        """Whether admin posts (request cards, the weekly digest) have somewhere to go."""
        return self.admin_chat_id is not None


class SlackSettings(Section):
    # The bot token (xoxb-...); unset leaves the Slack channel off.
    bot_token: SecretStr | None = None
    # The app-level token (xapp-...) with connections:write; Socket Mode needs it.
    app_token: SecretStr | None = None
    # The app's signing secret; HTTP mode checks every request with it.
    signing_secret: SecretStr | None = None
    # The Web API's base URL; change it only to point the bot at a test fake.
    api_base_url: str = "https://slack.com/api/"
    # "socket": the bot connects out to Slack, no public URL needed; "http": Slack posts to [http] /slack/events.
    mode: Literal["socket", "http"] = "socket"
    # The ID (C0123456789, not #name) of the channel where request cards are posted; empty means none.
    admin_channel: str = Field(default="", pattern=r"^([CG][A-Z0-9]{6,})?$")

    @field_validator("api_base_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("expected an https:// URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _mode_has_its_secret(self) -> SlackSettings:
        if self.bot_token is None:
            return self
        if self.mode == "http" and self.signing_secret is None:
            raise ValueError("mode = 'http' needs slack.signing_secret to check Slack's requests")
        if self.mode == "socket" and self.app_token is None:
            raise ValueError("mode = 'socket' needs slack.app_token (an xapp- token with connections:write)")
        return self

    @property
    def configured(self) -> bool:
        return self.bot_token is not None

    @property
    def has_admin_destination(self) -> bool:
        return bool(self.admin_channel)


class FeishuSettings(Section):
    """Feishu (Lark): a custom app of the tenant, with the bot ability turned on."""

    # The app's credentials (Developer Console > Credentials & Basic Info); unset app_id leaves Feishu off.
    app_id: str = Field(default="", pattern=r"^(cli_[A-Za-z0-9]+)?$")
    app_secret: SecretStr | None = None
    # Events & Callbacks > Encryption Strategy: the token checked on every event, and the key events are
    # encrypted and signed with. Webhook mode needs both; the long connection needs neither.
    verification_token: SecretStr | None = None
    encrypt_key: SecretStr | None = None
    # "websocket": the SDK's long connection, no public URL; "webhook": Feishu posts events to [http] events_path.
    mode: Literal["websocket", "webhook"] = "websocket"
    events_path: str = "/feishu/events"
    # https://open.feishu.cn for Feishu, https://open.larksuite.com for Lark (no path).
    api_base_url: str = "https://open.feishu.cn"
    # The group chat (oc_...) where request cards with Approve / Deny are posted; empty posts none.
    admin_chat_id: str = Field(default="", pattern=r"^(oc_[A-Za-z0-9]+)?$")

    _url = field_validator("api_base_url")(_base_url)
    _path = field_validator("events_path")(_events_path)

    @field_validator("api_base_url")
    @classmethod
    def _origin(cls, value: str) -> str:
        # lark-oapi takes an origin only, and plain http only on this machine (a test fake).
        scheme, _, host = value.partition("://")
        if "/" in host or "?" in host:
            raise ValueError("expected an origin without a path, such as https://open.feishu.cn")
        if scheme == "http" and (host.rpartition(":")[0] or host) not in ("127.0.0.1", "localhost"):
            raise ValueError("expected an https:// URL")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.app_id)

    @property
    def has_admin_destination(self) -> bool:
        return bool(self.admin_chat_id)

    @model_validator(mode="after")
    def _complete(self) -> FeishuSettings:
        if self.app_id and self.app_secret is None:
            raise ValueError("[feishu] app_id needs app_secret")
        if self.app_id and self.mode == "webhook":
            missing = [name for name in ("verification_token", "encrypt_key") if getattr(self, name) is None]
            if missing:
                raise ValueError(
                    f"mode = 'webhook' needs [feishu] {' and '.join(missing)}, so that events are encrypted and "
                    "signed and forged ones are refused"
                )
        return self


class DingTalkSettings(Section):
    """DingTalk: an internal enterprise app with a robot."""

    # The app's Client ID (AppKey) and Client Secret (AppSecret); unset client_id leaves DingTalk off.
    client_id: str = ""
    client_secret: SecretStr | None = None
    # The robot's code, for sending messages as the robot; empty means the Client ID (DingTalk gives an
    # internal app's robot the app's Client ID as its code).
    robot_code: str = ""
    # "stream": the SDK's Stream connection, no public URL; "http": the robot posts to [http] events_path,
    # every request signed with the app secret (timestamp and sign headers).
    mode: Literal["stream", "http"] = "stream"
    events_path: str = "/dingtalk/events"
    # http mode: the public HTTPS address in front of [http], without events_path. When set, the bot tells
    # DingTalk at start to post card button presses to public_url + events_path.
    public_url: str = ""
    api_base_url: str = "https://api.dingtalk.com"
    # The older server API (oapi) some calls still live on, such as a user's details by user id.
    oapi_base_url: str = "https://oapi.dingtalk.com"
    # The group conversation (openConversationId, cid...) where request cards go; empty posts none.
    admin_conversation_id: str = ""

    _urls = field_validator("api_base_url", "oapi_base_url")(_base_url)
    _path = field_validator("events_path")(_events_path)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith("https://"):
            raise ValueError("expected an https:// URL (DingTalk posts callbacks over HTTPS only)")
        return value.rstrip("/")

    @field_validator("admin_conversation_id")
    @classmethod
    def _conversation(cls, value: str) -> str:
        if value and (not value.startswith("cid") or any(char.isspace() for char in value)):
            raise ValueError("expected the group's openConversationId, which starts with 'cid'")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.client_id)

    @property
    def has_admin_destination(self) -> bool:
        return bool(self.admin_conversation_id)

    @property
    def robot(self) -> str:
        return self.robot_code or self.client_id

    @model_validator(mode="after")
    def _complete(self) -> DingTalkSettings:
        if self.client_id and self.client_secret is None:
            raise ValueError("[dingtalk] client_id needs client_secret")
        return self


_WECOM_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")
_WECOM_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class WeComSettings(Section):
    """WeCom (企业微信): a self-built app of the company."""

    # My Company > Company ID; unset leaves WeCom off.
    corp_id: str = ""
    # The app's AgentId and Secret (App Management > the app).
    agent_id: int | None = None
    secret: SecretStr | None = None
    # The app's "Receive messages" settings: Token and EncodingAESKey (43 characters).
    token: SecretStr | None = None
    encoding_aes_key: SecretStr | None = None
    events_path: str = "/wecom/events"
    api_base_url: str = "https://qyapi.weixin.qq.com"
    # Member user ids (Contacts > the member > Account; not names) of the admins who receive request cards
    # with Approve / Deny; empty sends none. Each must also be linked to a CRM account in [admins] usernames.
    admin_users: tuple[str, ...] = ()

    _url = field_validator("api_base_url")(_base_url)
    _path = field_validator("events_path")(_events_path)

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WECOM_AES_KEY.match(value.get_secret_value()):
            raise ValueError("expected the 43 letters and digits of the app's EncodingAESKey")
        return value

    @field_validator("admin_users")
    @classmethod
    def _user_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for user in value:
            if not _WECOM_USER_ID.match(user):
                raise ValueError(f"{user!r} is not a WeCom user id (1-64 of letters, digits and _-@., as in Contacts)")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.corp_id)

    @property
    def has_admin_destination(self) -> bool:
        return bool(self.admin_users)

    @model_validator(mode="after")
    def _complete(self) -> WeComSettings:
        if self.corp_id:
            missing = [
                name
                for name, value in (
                    ("agent_id", self.agent_id),
                    ("secret", self.secret),
                    ("token", self.token),
                    ("encoding_aes_key", self.encoding_aes_key),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"[wecom] corp_id needs {', '.join(missing)}")
        return self
