"""Quick test (`POST …/projects/{projectId}/quicktest/image|url?iterationId&store`): classify
one image with a trained iteration, without publishing it. Without `iterationId` the latest
Completed iteration of the project is used. Unless `store=false` the image and result are kept
for the Predictions view, as for a prediction."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from loupe.v1 import metadata_pb2 as mpb
from loupe_common.errors import Conflict, NotFound
from loupe_gateway import serialize, validation
from loupe_gateway.api import fetching
from loupe_gateway.api.common import account
from loupe_gateway.app import state
from loupe_gateway.flows import tag_types
from loupe_gateway.flows.prediction import admit_store

bp = Blueprint("quicktest", __name__)


def _iteration(project_id: str) -> mpb.Iteration:
    backends = state().backends
    raw = request.args.get("iterationId")
    if raw:
        it = backends.get_iteration(account(), project_id, validation.parse_guid(raw))
        if it.status != "Completed":
            raise Conflict(f"{it.name} is {it.status}", "BadRequestIterationIsNotTrained")
        return it
    completed = [
        it for it in backends.list_iterations(account(), project_id) if it.status == "Completed"
    ]
    if not completed:
        raise NotFound(
            "the project has no trained iteration to test with",
            "NotFoundProjectDefaultIteration",
        )
    return max(completed, key=lambda it: (it.trained_at.seconds, it.trained_at.nanos,
                                          it.created.seconds, it.created.nanos))


def _quick_test(by_url: bool):
    cfg = state().config
    limit = cfg.max_prediction_image_bytes
    project_id = request.view_args["project_id"]
    store = validation.parse_bool(request.args.get("store"), default=True)
    url = fetching.body_url() if by_url else ""
    image = b"" if by_url else fetching.request_image(limit, cfg.max_image_side)
    it = _iteration(project_id)
    if store:
        admit_store(state().backends, account())
    if by_url:  # fetched only once the iteration is known
        image = fetching.fetch_image(url, limit, cfg.max_image_side)
    backends = state().backends
    result = backends.classify(
        project_id=it.project_id or project_id, iteration_id=it.id,
        artifact_key=it.artifact_key, image=image, store=store, application="",
    )
    return jsonify(serialize.image_prediction(result, tag_types(backends, account(), project_id)))


@bp.post("/projects/<project_id>/quicktest/image")
def quick_test_image(project_id: str):
    return _quick_test(by_url=False)


@bp.post("/projects/<project_id>/quicktest/url")
def quick_test_image_url(project_id: str):
    return _quick_test(by_url=True)
