"""A tiny schema migration runner.

Applies `migrations/NNNN_name.sql` files in numeric order, each once and in its own transaction,
recording the version in `schema_migrations`. A transaction-scoped advisory lock serialises
concurrent runners (several replicas starting at once, or the Helm migration Job racing a pod):
the second waits, then finds the work done.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: Arbitrary constant that identifies Loupe's migration lock among advisory locks.
ADVISORY_LOCK_ID = 0x4C6F757065  # "Loupe"
_NAME = re.compile(r"^(\d+)_[\w-]+\.sql$")


def discover(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    """(version, path) of every migration file, sorted; duplicate versions are an error."""
    found: dict[int, Path] = {}
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(
                f"two migrations share version {version}: {found[version].name}, {path.name}"
            )
        found[version] = path
    return sorted(found.items())


def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Applies pending migrations.

    Args:
        dsn: PostgreSQL connection string.
        directory: folder of numbered .sql files.
    Returns:
        The versions applied by this call (empty when the schema was up to date).
    """
    applied_now: list[int] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            # Under the lock too: concurrent CREATE TABLE IF NOT EXISTS can still collide.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied timestamptz NOT NULL DEFAULT now())"
            )
        for version, path in discover(directory):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
                done = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
                ).fetchone()
                if done:
                    continue
                log.info("applying migration %s", path.name)
                conn.execute(path.read_text())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (version, path.name),
                )
                applied_now.append(version)
    return applied_now
