"""Per-image performance of a trained iteration (`…/iterations/{id}/performance/images`): the
evaluated images, from the iteration's stored held-out evaluation (loupe_gateway.performance),
with the predictions each got from a head that never saw it."""
from __future__ import annotations

from collections.abc import Sequence

from loupe.v1 import metadata_pb2 as mpb
from loupe_common.errors import Conflict
from loupe_gateway import performance
from loupe_gateway.clients import Backends
from loupe_gateway.flows import tag_types
from loupe_gateway.serialize import Ranked


def evaluation(backends: Backends, account_id: str, project_id: str, iteration_id: str
               ) -> performance.StoredEvaluation:
    """The held-out evaluation of a Completed iteration.

    Raises:
        Conflict (BadRequestIterationIsNotTrained): the iteration is not Completed.
        NotFound: no such iteration, or it has no (readable) evaluation.
    """
    it = backends.get_iteration(account_id, project_id, iteration_id)
    if it.status != "Completed":
        raise Conflict(f"{it.name} is {it.status}", "BadRequestIterationIsNotTrained")
    return performance.load(it)


def image_performances(backends: Backends, account_id: str, project_id: str,
                       iteration_id: str, tag_ids: Sequence[str], order_by: str, take: int,
                       skip: int) -> tuple[list[tuple[mpb.Image, Ranked]], dict[str, str]]:
    """A page of the evaluated images truly tagged with any of `tag_ids` (all when empty).

    Returns:
        ([(image, its held-out predictions, highest first)], tag id -> tag type).
    """
    stored = evaluation(backends, account_id, project_id, iteration_id)
    ids = performance.images_with_tags(stored, tag_ids)
    if not ids:
        return [], {}
    page = backends.list_images(account_id, project_id, image_ids=ids, order_by=order_by,
                                take=take, skip=skip)
    predictions = performance.predictions_of(stored)
    types = tag_types(backends, account_id, project_id)
    return [(img, predictions.get(img.id, [])) for img in page.images], types


def image_performance_count(backends: Backends, account_id: str, project_id: str,
                            iteration_id: str, tag_ids: Sequence[str]) -> int:
    """How many evaluated images (still in the project) are truly tagged with any of
    `tag_ids` (all when empty)."""
    stored = evaluation(backends, account_id, project_id, iteration_id)
    ids = performance.images_with_tags(stored, tag_ids)
    if not ids:
        return 0
    return backends.list_images(account_id, project_id, image_ids=ids, take=1).total
