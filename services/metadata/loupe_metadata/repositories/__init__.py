"""The metadata service's repositories, one per aggregate, all over one `db.Database`.

Each public method is one RPC of metadata.proto and runs in exactly one transaction. Project-
scoped methods take the caller's account id and answer NotFoundProject for a project of another
account (see lookups.project_row).

  accounts.py     accounts and API keys
  projects.py     projects
  tags.py         tags, live or as an iteration trained them
  images.py       images, their tag links and metadata
  iterations.py   iterations: create (freezing the training set), read, rename, publish, delete
  training.py     the trainer's calls: training set, progress, finish
  handoff.py      the training jobs' outbox (hand-off to Kafka) and the iterations it strands
  predictions.py  stored predictions
  lookups.py      reads and not-found errors shared by the repositories
  rows.py         rows to `loupe.v1` messages
"""
from loupe_metadata.repositories.accounts import AccountRepository
from loupe_metadata.repositories.handoff import HandoffRepository
from loupe_metadata.repositories.images import ImageRepository
from loupe_metadata.repositories.iterations import IterationRepository
from loupe_metadata.repositories.predictions import PredictionRepository
from loupe_metadata.repositories.projects import ProjectRepository
from loupe_metadata.repositories.tags import TagRepository
from loupe_metadata.repositories.training import TrainingRepository

__all__ = [
    "AccountRepository",
    "HandoffRepository",
    "ImageRepository",
    "IterationRepository",
    "PredictionRepository",
    "ProjectRepository",
    "TagRepository",
    "TrainingRepository",
]
