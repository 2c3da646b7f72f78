"""Training and iterations: train, list, get, rename, delete, performance, publish, unpublish."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from loupe_gateway import serialize, validation
from loupe_gateway.api.common import account, json_body, no_content
from loupe_gateway.app import state
from loupe_gateway.flows import iterations as flow

bp = Blueprint("iterations", __name__)


@bp.post("/projects/<project_id>/train")
def train_project(project_id: str):
    args = request.args
    body = request.get_json(silent=True) or {}
    selected = body.get("selectedTags") if isinstance(body, dict) else None
    iteration = flow.train(
        state().backends, state().config, account(), project_id,
        training_type=args.get("trainingType", ""),
        reserved_budget_in_hours=validation.parse_float(
            args.get("reservedBudgetInHours"), "reservedBudgetInHours", 0.0
        ),
        force_train=validation.parse_bool(args.get("forceTrain")),
        selected_tag_ids=validation.parse_guid_list(selected or []),
    )
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
    flow.delete(state().backends, account(), project_id, iteration_id)
    return no_content()


@bp.get("/projects/<project_id>/iterations/<iteration_id>/performance")
def get_iteration_performance(project_id: str, iteration_id: str):
    # Recomputed at `threshold` from the held-out evaluation; `overlapThreshold` (object
    # detection only) is validated and ignored.
    threshold = validation.parse_float(request.args.get("threshold"), "threshold", 0.5)
    flow.check_threshold(threshold)
    validation.parse_float(request.args.get("overlapThreshold"), "overlapThreshold", 0.3)
    perf = flow.iteration_performance(state().backends, account(), project_id, iteration_id,
                                      threshold)
    return jsonify(serialize.iteration_performance(perf))


@bp.post("/projects/<project_id>/iterations/<iteration_id>/publish")
def publish_iteration(project_id: str, iteration_id: str):
    args = request.args
    flow.publish(
        state().backends, account(), project_id, iteration_id, args.get("publishName", ""),
        args.get("predictionId", ""), validation.parse_bool(args.get("overwrite")),
    )
    return jsonify(True)


@bp.delete("/projects/<project_id>/iterations/<iteration_id>/publish")
def unpublish_iteration(project_id: str, iteration_id: str):
    flow.unpublish(state().backends, account(), project_id, iteration_id)
    return no_content()
