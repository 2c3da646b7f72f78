"""Training and iterations: train, list, get, rename, delete, performance, publish, unpublish."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from loupe_common import storage_keys
from loupe_common.errors import BadRequest, Conflict, LoupeError, NotFound
from loupe_gateway import performance, serialize, validation
from loupe_gateway.api.common import account, json_body, no_content
from loupe_gateway.app import state

log = logging.getLogger(__name__)
bp = Blueprint("iterations", __name__)


@bp.post("/projects/<project_id>/train")
def train_project(project_id: str):
    cfg, backends = state().config, state().backends
    args = request.args
    body = request.get_json(silent=True) or {}
    selected = body.get("selectedTags") if isinstance(body, dict) else None
    iteration = backends.create_iteration(
        account(), project_id,
        training_type=args.get("trainingType", ""),
        reserved_budget_in_hours=validation.parse_float(
            args.get("reservedBudgetInHours"), "reservedBudgetInHours", 0.0
        ),
        force_train=validation.parse_bool(args.get("forceTrain")),
        selected_tag_ids=validation.parse_guid_list(selected or []),
        min_images_per_tag=cfg.min_images_per_tag,
    )
    try:
        backends.request_training(iteration, account())
    except LoupeError as err:
        # Without a job nobody would ever finish this iteration, and it would block the next
        # training ("already in progress"): end it as Failed now.
        try:
            backends.fail_iteration(iteration.id, f"training could not be queued: {err.message}")
        except LoupeError as finish_err:
            log.error("iteration %s left in Training: %r", iteration.id, finish_err)
        raise
    return jsonify(serialize.iteration(iteration))


@bp.get("/projects/<project_id>/iterations")
def get_iterations(project_id: str):
    its = state().backends.list_iterations(account(), project_id)
    return jsonify([serialize.iteration(it) for it in its])


@bp.get("/projects/<project_id>/iterations/<iteration_id>")
def get_iteration(project_id: str, iteration_id: str):
    it = state().backends.get_iteration(account(), project_id, iteration_id)
    return jsonify(serialize.iteration(it))


@bp.patch("/projects/<project_id>/iterations/<iteration_id>")
def update_iteration(project_id: str, iteration_id: str):
    body = json_body("Iteration")
    backends = state().backends
    if body.get("name") is None:
        it = backends.get_iteration(account(), project_id, iteration_id)
    else:
        it = backends.update_iteration(account(), project_id, iteration_id, str(body["name"]))
    return jsonify(serialize.iteration(it))


@bp.delete("/projects/<project_id>/iterations/<iteration_id>")
def delete_iteration(project_id: str, iteration_id: str):
    backends = state().backends
    artifact_key = backends.delete_iteration(account(), project_id, iteration_id)
    try:
        if artifact_key:
            backends.delete_objects([artifact_key])
        backends.delete_prefix(storage_keys.export_prefix(project_id, iteration_id))
    except LoupeError as err:
        log.warning("iteration %s deleted, but not its artifact or exports: %r", iteration_id, err)
    return no_content()


@bp.get("/projects/<project_id>/iterations/<iteration_id>/performance")
def get_iteration_performance(project_id: str, iteration_id: str):
    # Recomputed at `threshold` from the held-out evaluation; `overlapThreshold` (object
    # detection only) is validated and ignored.
    threshold = validation.parse_float(request.args.get("threshold"), "threshold", 0.5)
    if not 0.0 <= threshold <= 1.0:
        raise BadRequest("threshold must be within [0, 1]", "BadRequest")
    validation.parse_float(request.args.get("overlapThreshold"), "overlapThreshold", 0.3)
    it = state().backends.get_iteration(account(), project_id, iteration_id)
    if it.status != "Completed":
        raise Conflict(f"{it.name} is {it.status}", "BadRequestIterationIsNotTrained")
    if not it.HasField("performance"):
        raise NotFound(f"{it.name} has no performance", "NotFoundIterationPerformance")
    if not it.evaluation:
        return jsonify(serialize.iteration_performance(it.performance))
    perf = performance.at_threshold(performance.load(it), threshold)
    return jsonify(serialize.iteration_performance(perf))


@bp.post("/projects/<project_id>/iterations/<iteration_id>/publish")
def publish_iteration(project_id: str, iteration_id: str):
    args = request.args
    publish_name = args.get("publishName", "")
    prediction_id = args.get("predictionId", "")
    if not publish_name or not prediction_id:
        raise BadRequest(
            "publishName and predictionId are required", "BadRequestRequiredParamIsNull"
        )
    backends = state().backends
    it = backends.publish_iteration(
        account(), project_id, iteration_id, publish_name, prediction_id,
        validation.parse_bool(args.get("overwrite")),
    )
    try:
        backends.load_iteration(it.project_id, it.id, it.artifact_key)
    except LoupeError:
        # A name that cannot predict must not stay published.
        try:
            backends.unpublish_iteration(account(), project_id, iteration_id)
        except LoupeError as err:
            log.error("iteration %s stays published but not loaded: %r", iteration_id, err)
        raise
    return jsonify(True)


@bp.delete("/projects/<project_id>/iterations/<iteration_id>/publish")
def unpublish_iteration(project_id: str, iteration_id: str):
    backends = state().backends
    it = backends.get_iteration(account(), project_id, iteration_id)
    if not it.publish_name:
        raise Conflict(f"{it.name} is not published", "BadRequestIterationNotPublished")
    backends.unload_iteration(it.id)
    backends.unpublish_iteration(account(), project_id, iteration_id)
    return no_content()
