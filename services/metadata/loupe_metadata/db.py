"""The one way the metadata repositories reach PostgreSQL: a transaction on a pooled connection.

Every repository method opens exactly one transaction with `Database.transaction()` and does all
of its reads and writes on that cursor, so a method's checks and writes commit or roll back
together. There is no retry: a serialization failure or deadlock reaches the caller as an error
(the default READ COMMITTED isolation, with row locks where a method needs them, makes those
rare).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from loupe_metadata.quotas import Quotas

#: A cursor whose rows are dicts keyed by column name, as every repository reads them.
Cursor = psycopg.Cursor[dict[str, Any]]


class Database:
    """Transactions over a connection pool.

    Args:
        pool: an open `psycopg_pool.ConnectionPool` on a migrated database (see migrate.py).
        quotas: the per-account quotas (Custom Vision's S0 limits when not given).
    """

    def __init__(self, pool: ConnectionPool, quotas: Quotas | None = None):
        self._pool = pool
        #: The install's quotas, checked by the repositories that add rows.
        self.quotas = quotas or Quotas()

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor in one transaction: committed when the block ends, rolled back on error."""
        with self._pool.connection() as conn:
            with conn.cursor(row_factory=dict_row) as cur:
                yield cur


class Repository:
    """Base of the repositories: each holds the shared `Database` and nothing else.

    Args:
        db: the service's one `Database`.
    """

    def __init__(self, db: Database):
        self._db = db
