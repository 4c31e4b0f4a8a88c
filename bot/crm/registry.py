"""Which CRM backend the settings ask for, built and wrapped in the resilience layer.

The remote backends (``salesforce``, ``keycloak``, ``rest``) come wrapped in
``ResilientCrm``. The embedded ``sql`` backend does not: it runs in-process,
bounds every call with its own time-out and maps database failures to
``CrmUnavailable`` already, and the demo and its tests reach its database
through the concrete ``SqlCrm``.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import make_url

from bot.clock import Clock
from bot.config import Settings
from bot.crm.base import CrmBackend
from bot.crm.keycloak import KeycloakCrm
from bot.crm.resilient import ResilientCrm
from bot.crm.rest import RestCrm
from bot.crm.salesforce import SalesforceCrm
from bot.crm.sql import SqlCrm
from bot.storage.crm_keys import StoredKeys
from bot.storage.db import Database


def build_crm(settings: Settings, clock: Clock, database: Database | None = None) -> SqlCrm | ResilientCrm:
    """The configured backend, ready to use; the caller closes it with ``aclose``.

    With the bot's ``database``, the idempotency keys of Salesforce and Keycloak unlocks are kept there,
    shared by every replica; without it (a one-off check), in memory.
    """
    crm = settings.crm
    if crm.backend == "sql":
        # The same pool sizes as the bot's own database: every turn under way may be asking the CRM at once.
        pool = (settings.database.pool_size, settings.database.max_overflow)
        return SqlCrm(Database(settings.crm_database_url, pool=pool), clock, timeout=crm.timeout_seconds)
    backend: CrmBackend
    if crm.backend == "salesforce":
        keys = StoredKeys(database, clock, "salesforce") if database is not None else None
        backend = SalesforceCrm(crm.salesforce, timeout=crm.timeout_seconds, keys=keys)
    elif crm.backend == "keycloak":
        keys = StoredKeys(database, clock, "keycloak") if database is not None else None
        backend = KeycloakCrm(crm.keycloak, clock, timeout=crm.timeout_seconds, keys=keys)
    else:
        backend = RestCrm(crm.rest, timeout=crm.timeout_seconds)
    resilience = crm.resilience
    return ResilientCrm(
        backend,
        clock,
        timeout=crm.timeout_seconds,
        retries=resilience.retries,
        backoff=resilience.retry_backoff_seconds,
        failure_threshold=resilience.failure_threshold,
        cool_down=timedelta(seconds=resilience.cool_down_seconds),
    )


def crm_location(settings: Settings) -> str:
    """Where the configured CRM is, for an operator to read: a URL, never a secret."""
    crm = settings.crm
    if crm.backend == "sql":
        return make_url(settings.crm_database_url).render_as_string(hide_password=True)
    if crm.backend == "salesforce":
        return crm.salesforce.instance_url
    if crm.backend == "keycloak":
        return f"{crm.keycloak.base_url} (realm {crm.keycloak.realm})"
    return crm.rest.base_url
