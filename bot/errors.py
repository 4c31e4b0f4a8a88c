"""The exception tree of unlockbot.

Every error the product raises on purpose is a ``BotError``. The engine turns
one into a reply for the person (``reply`` names a template under
``templates/<locale>/errors/``) and a log line for the operator; anything
else is a bug, logged with its traceback and answered with ``errors/internal``.

    BotError
    ├── ConfigError            settings or knowledge files are invalid (start-up only)
    ├── NotADemoDatabase       a demo-only command was run on a real database
    ├── CrmError               the CRM backend could not do what was asked
    │   ├── CrmUnavailable     down, refusing connections or too slow
    │   ├── AccountNotFound    no CRM user by that name
    │   └── CrmUnsupported     this backend cannot do that (see its capabilities)
    └── IdentityError
        ├── NotLinked          the chat account is not bound to a CRM user
        └── NotEnrolled        the CRM user has no active TOTP enrolment
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error unlockbot raises on purpose."""

    reply = "errors/internal"


class ConfigError(BotError):
    """Settings or data files are invalid; the message names the key or file."""


class NotADemoDatabase(BotError):
    """A demo-only command (``demo code``) was run against a non-demo database."""


class CrmError(BotError):
    """The CRM backend could not do what was asked."""

    reply = "errors/crm_failed"


class CrmUnavailable(CrmError):
    """The backend is down, refused the connection, or did not answer in time."""

    reply = "errors/crm_unavailable"


class AccountNotFound(CrmError):
    """The CRM has no user by that name."""

    reply = "errors/account_not_found"

    def __init__(self, username: str) -> None:
        super().__init__(f"no CRM account {username!r}")
        self.username = username


class CrmUnsupported(CrmError):
    """The configured backend does not offer this capability."""

    reply = "errors/crm_unsupported"

    def __init__(self, capability: str) -> None:
        super().__init__(f"the CRM backend does not support {capability}")
        self.capability = capability


class IdentityError(BotError):
    """Who the person is could not be established."""


class NotLinked(IdentityError):
    """The chat account is not bound to any CRM user yet."""

    reply = "errors/not_linked"


class NotEnrolled(IdentityError):
    """The CRM user has no active TOTP enrolment."""

    reply = "errors/not_enrolled"
