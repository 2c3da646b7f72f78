"""Training and iterations without Flask: start a training, an iteration's performance at a
threshold, publish and unpublish. The REST blueprint (`api/iterations.py`) and the public gRPC
API (`grpcapi/`) both call these."""
from __future__ import annotations

import logging
from collections.abc import Sequence

from loupe.v1 import metadata_pb2 as mpb
from loupe_common import storage_keys
from loupe_common.errors import BadRequest, Conflict, LoupeError, NotFound
from loupe_gateway import performance
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig

log = logging.getLogger(__name__)


def train(backends: Backends, config: GatewayConfig, account_id: str, project_id: str, *,
          training_type: str = "", reserved_budget_in_hours: float = 0.0,
          force_train: bool = False, selected_tag_ids: Sequence[str] = ()) -> mpb.Iteration:
    """Creates an iteration (metadata checks the training rules) and queues its job.

    The job is written to the hand-off outbox with the iteration (one commit); this call then
    produces it and marks it sent. Should this process die between the two, the reconciler
    (reconciler.py) produces it instead, so no crash point leaves an iteration without its job.

    Returns:
        The new iteration, Training.
    Raises:
        Unavailable: Kafka did not take the job (the iteration is then Failed at once).
    """
    iteration = backends.create_iteration(
        account_id, project_id, training_type=training_type,
        reserved_budget_in_hours=reserved_budget_in_hours, force_train=force_train,
        selected_tag_ids=list(selected_tag_ids), min_images_per_tag=config.min_images_per_tag,
    )
    try:
        backends.request_training(iteration, account_id)
    except LoupeError as err:
        # Without a job nobody would ever finish this iteration, and it would block the next
        # training ("already in progress"): end it as Failed now.
        try:
            backends.fail_iteration(iteration.id, f"training could not be queued: {err.message}")
        except LoupeError as finish_err:
            # Its outbox row is still unsent: the reconciler produces the job later.
            log.error("iteration %s left in Training for the reconciler: %r", iteration.id,
                      finish_err)
        raise
    try:
        backends.mark_training_job_sent(iteration.id)
    except LoupeError as err:
        # The job is queued; the reconciler produces it once more later, which a trainer skips.
        log.warning("training job of %s sent but not marked sent: %r", iteration.id, err)
    return iteration


def delete(backends: Backends, account_id: str, project_id: str, iteration_id: str) -> None:
    """Deletes an iteration, then its artifact and exports (a storage failure there is logged:
    the iteration is gone either way)."""
    artifact_key = backends.delete_iteration(account_id, project_id, iteration_id)
    try:
        if artifact_key:
            backends.delete_objects([artifact_key])
        backends.delete_prefix(storage_keys.export_prefix(project_id, iteration_id))
    except LoupeError as err:
        log.warning("iteration %s deleted, but not its artifact or exports: %r", iteration_id, err)


def check_threshold(threshold: float) -> None:
    """Raises BadRequest when `threshold` is outside [0, 1]."""
    if not 0.0 <= threshold <= 1.0:
        raise BadRequest("threshold must be within [0, 1]", "BadRequest")


def iteration_performance(backends: Backends, account_id: str, project_id: str,
                          iteration_id: str, threshold: float) -> mpb.Performance:
    """A Completed iteration's performance, recomputed at `threshold` from its held-out
    evaluation (the stored performance when it has none).

    Raises:
        BadRequest: `threshold` outside [0, 1].
        Conflict (BadRequestIterationIsNotTrained): the iteration is not Completed.
        NotFound (NotFoundIterationPerformance): it has no performance.
    """
    check_threshold(threshold)
    it = backends.get_iteration(account_id, project_id, iteration_id)
    if it.status != "Completed":
        raise Conflict(f"{it.name} is {it.status}", "BadRequestIterationIsNotTrained")
    if not it.HasField("performance"):
        raise NotFound(f"{it.name} has no performance", "NotFoundIterationPerformance")
    if not it.evaluation:
        return it.performance
    return performance.at_threshold(performance.load(it), threshold)


def publish(backends: Backends, account_id: str, project_id: str, iteration_id: str,
            publish_name: str, prediction_resource_id: str, overwrite: bool) -> mpb.Iteration:
    """Publishes an iteration and loads it in the prediction service; a name that cannot
    predict does not stay published.

    Raises:
        BadRequest (BadRequestRequiredParamIsNull): no publish name or prediction resource id.
    """
    if not publish_name or not prediction_resource_id:
        raise BadRequest(
            "publishName and predictionId are required", "BadRequestRequiredParamIsNull"
        )
    it = backends.publish_iteration(
        account_id, project_id, iteration_id, publish_name, prediction_resource_id, overwrite,
    )
    try:
        backends.load_iteration(it.project_id, it.id, it.artifact_key)
    except LoupeError:
        try:
            backends.unpublish_iteration(account_id, project_id, iteration_id)
        except LoupeError as err:
            log.error("iteration %s stays published but not loaded: %r", iteration_id, err)
        raise
    return it


def unpublish(backends: Backends, account_id: str, project_id: str, iteration_id: str) -> None:
    """Withdraws an iteration's publish name and unloads it from the prediction service.

    Raises:
        Conflict (BadRequestIterationNotPublished): it is not published.
    """
    it = backends.get_iteration(account_id, project_id, iteration_id)
    if not it.publish_name:
        raise Conflict(f"{it.name} is not published", "BadRequestIterationNotPublished")
    backends.unload_iteration(it.id)
    backends.unpublish_iteration(account_id, project_id, iteration_id)
