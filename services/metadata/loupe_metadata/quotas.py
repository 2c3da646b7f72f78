"""Per-account quotas: how many projects and stored predictions an account, and tags and images a
project, may hold.

The defaults are Custom Vision's S0 tier limits, so code written against Azure meets the same
walls; an operator sets them (LOUPE_QUOTA_*, the chart's `metadata.quotas`), and 0 lifts one.
Each is checked in the transaction that adds the rows, under a lock on the parent row, so
concurrent requests cannot overshoot it together. Stored predictions are the exception: they are
recorded after the answer (through Kafka), so the gateway checks their quota before it classifies
(`StoredPredictionQuota`, cached briefly), and an account can overshoot it by what its gateways
store within that cache's lifetime.
"""
from __future__ import annotations

from dataclasses import dataclass

from loupe_common.errors import BadRequest


@dataclass(frozen=True)
class Quotas:
    projects_per_account: int = 100
    tags_per_project: int = 500
    images_per_project: int = 100_000
    #: Not a Custom Vision limit (Azure keeps 30 days of them, at most 10 stored predictions a
    #: second): Loupe's bound on what one account's stored predictions take on disk.
    stored_predictions_per_account: int = 1_000_000


#: (limit attribute, Custom Vision error code, what is counted)
_KINDS = {
    "projects": ("projects_per_account", "BadRequestExceedProjectLimit", "projects in an account"),
    "tags": ("tags_per_project", "BadRequestExceedTagPerProjectLimit", "tags in a project"),
    "images": ("images_per_project", "BadRequestImageExceededCount", "images in a project"),
}


def check(quotas: Quotas, kind: str, count: int) -> None:
    """Raises BadRequest with Custom Vision's code when `count` (after the addition) is over
    the quota of `kind` ("projects", "tags" or "images"); a quota of 0 is no limit."""
    attr, code, what = _KINDS[kind]
    limit = getattr(quotas, attr)
    if limit and count > limit:
        raise BadRequest(f"the quota of {limit} {what} is reached ({count} with this request)", code)
