"""Alembic environment: runs the bot's migrations on a blocking connection.

On PostgreSQL the migrations run under an advisory lock, taken in their
transaction: replicas that start together on one database take turns, and
each one after the first finds the schema already at the head. The lock is
per schema, so bots that share a database in separate schemas do not wait
for one another.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from bot.storage.models import Base

config = context.config
target_metadata = Base.metadata

# Any constant works: every process that migrates this schema must use the same one.
MIGRATION_LOCK = 7_351_902


def run() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Held until this transaction ends, so the next process reads the version this one wrote.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"), {"key": MIGRATION_LOCK}
                )
            context.run_migrations()
    engine.dispose()


run()
