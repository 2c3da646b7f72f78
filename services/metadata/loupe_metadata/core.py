"""The metadata service's core: its repositories over one PostgreSQL database.

Transport-free: the servicer converts requests to arguments, calls the repository of the
aggregate the RPC touches (`core.projects.create_project(...)`) and wraps the result. The
repositories (loupe_metadata/repositories/) hold the SQL; db.py holds the one transaction helper
they share.
"""
from __future__ import annotations

from psycopg_pool import ConnectionPool

from loupe_metadata.db import Database
from loupe_metadata.quotas import Quotas
from loupe_metadata.repositories import (
    AccountRepository,
    HandoffRepository,
    ImageRepository,
    IterationRepository,
    PredictionRepository,
    ProjectRepository,
    TagRepository,
    TrainingRepository,
)


class MetadataCore:
    """The repositories of the metadata service, one attribute per aggregate.

    Args:
        pool: an open `psycopg_pool.ConnectionPool` on a migrated database (see migrate.py).
        quotas: the per-account quotas (Custom Vision's S0 limits when not given).
    """

    def __init__(self, pool: ConnectionPool, quotas: Quotas | None = None):
        db = Database(pool, quotas)
        self.accounts = AccountRepository(db)
        self.projects = ProjectRepository(db)
        self.tags = TagRepository(db)
        self.images = ImageRepository(db)
        self.iterations = IterationRepository(db)
        self.training = TrainingRepository(db)
        self.handoff = HandoffRepository(db)
        self.predictions = PredictionRepository(db)
