"""Classification with a published iteration, without Flask: the prediction API's REST views
(`api/prediction.py`) and the public gRPC API's Prediction service call `classify`."""
from __future__ import annotations

from collections.abc import Callable

from loupe.v1 import prediction_pb2 as ppb
from loupe_gateway import validation
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig


def check_image(config: GatewayConfig, data: bytes) -> validation.ImageInfo:
    """Refuses what is not one image a prediction accepts (BadRequest with Custom Vision's
    code: BadRequestImageSizeBytes, BadRequestImageFormat, ...)."""
    return validation.check_image(data, config.max_prediction_image_bytes, config.max_image_side,
                                  config.max_aspect_ratio)


def admit_store(backends: Backends, account_id: str) -> None:
    """Refuses a classification that would store past the account's stored-prediction quota
    (BadRequest BadRequestExceededQuota; loupe_gateway/prediction_quota.py)."""
    backends.stored_quota.admit(account_id)


def classify(backends: Backends, account_id: str, project_id: str, published_name: str,
             image: bytes | Callable[[], bytes], store: bool, application: str = ""
             ) -> tuple[ppb.ClassifyResponse, dict[str, str]]:
    """Classifies `image` with the iteration published as `published_name`.

    Args:
        image: the (validated) image bytes, or a callable that produces them, called only
            once the published iteration is known to exist (a URL is fetched then).
        store: keep the image and result as a stored prediction.
    Returns:
        (the prediction, tag id -> tag type of the published iteration's tags).
    Raises:
        NotFound: no such project or publish name in the account.
        BadRequest: BadRequestExceededQuota, `store` past the account's stored-prediction quota.
    """
    published = backends.get_published_iteration(account_id, project_id, published_name)
    if store:
        admit_store(backends, account_id)
    data = image() if callable(image) else image
    it = published.iteration
    result = backends.classify(
        project_id=it.project_id or project_id, iteration_id=it.id,
        artifact_key=it.artifact_key, image=data, store=store, application=application,
    )
    return result, {t.id: t.type for t in published.tags}
