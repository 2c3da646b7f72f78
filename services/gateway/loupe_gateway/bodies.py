"""Request bodies: the largest body each route takes, and the admission of a request before a
byte of its body is read.

Every body is capped: an image batch at Custom Vision's limits (64 images of 6 MB, raw or
multipart), an ImageFileCreateBatch at the base64 of that, one image to classify or quick-test
at 4 MB, any other body at `JSON_LIMIT`. `admit` decides from the request line and headers
alone, in the order the checks cost: no key for a keyed route (401), a declared
Content-Length over the route's cap (400, with the Custom Vision code of that route), then
the key's look-up (401, or 429 for a client guessing keys). The HTTP server (`serve.py`) asks
it before it reads the body, so an unauthenticated or oversized request costs no read of its
body, and enforces the cap while reading a chunked body; the app asks it again for servers
that do not (`init_app`), and under those Werkzeug enforces the cap on whatever the views read.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from loupe_common.errors import BadRequest, LoupeError
from loupe_gateway.auth import HEADERS, PREDICTION, TRAINING, unauthorized
from loupe_gateway.config import GatewayConfig

MB = 1024 * 1024
#: Any body but an image's or an image batch's: JSON objects of ids, names, URLs, metadata.
JSON_LIMIT = 1 * MB
#: Room for multipart headers around one image.
MULTIPART_SLACK = 64 * 1024
#: Room for multipart headers or JSON (names, tag ids) around a batch of images.
BATCH_SLACK = 1 * MB
#: The WSGI environ key under which the server hands the app the refusal `admit` decided.
REFUSAL = "loupe.refusal"
#: The WSGI environ key that says the server has already admitted this request.
ADMITTED = "loupe.admitted"

_BATCH = {"training.images.create_images_from_data"}
_FILES = {"training.images.create_images_from_files"}
_IMAGE = {
    "prediction.classify_image", "prediction.classify_image_with_no_store",
    "training.quicktest.quick_test_image",
}


def base64_size(n_bytes: int) -> int:
    """The length of the base64 text of `n_bytes` bytes."""
    return 4 * ((n_bytes + 2) // 3)


class ImageTooLarge(BadRequest):
    """A raw (one-image) upload over the training image cap. Custom Vision answers it as a
    batch whose image failed (207, ErrorImageSize), so the view answers it, unread."""


@dataclass(frozen=True)
class Limit:
    """The largest body of a route, and the error that refuses a larger one."""

    bytes: int
    code: str
    what: str
    #: The body is one image of a batch route: refused per image (ImageTooLarge).
    per_image: bool = False

    def refusal(self, size: int | None = None) -> BadRequest:
        told = f"{size} bytes" if size is not None else "larger"
        error = ImageTooLarge if self.per_image else BadRequest
        return error(f"the request body is {told}; {self.what} takes at most {self.bytes} bytes",
                     self.code)


def limit_for(config: GatewayConfig, endpoint: str | None, content_type: str | None = None) -> Limit:
    """The body limit of the view `endpoint` (None or unknown: `JSON_LIMIT`) for a body of
    `content_type`: a raw (not multipart) body to an image route is one image, no slack."""
    multipart = (content_type or "").lower().startswith("multipart/form-data")
    image = config.max_prediction_image_bytes
    if endpoint in _BATCH:
        if not multipart:
            return Limit(config.max_training_image_bytes, "BadRequestImageSizeBytes", "one image",
                         per_image=True)
        return Limit(config.max_batch_images * config.max_training_image_bytes + BATCH_SLACK,
                     "BadRequestExceededBatchSize", f"a batch of {config.max_batch_images} images")
    if endpoint in _FILES:
        batch = config.max_batch_images * config.max_training_image_bytes
        return Limit(base64_size(batch) + BATCH_SLACK, "BadRequestExceededBatchSize",
                     f"an ImageFileCreateBatch of {config.max_batch_images} images")
    if endpoint in _IMAGE:
        return Limit(image + (MULTIPART_SLACK if multipart else 0), "BadRequestImageSizeBytes",
                     "one image")
    return Limit(JSON_LIMIT, "BadRequest", "this request")


def key_kind(endpoint: str | None) -> str | None:
    """Which key the view `endpoint` requires (None: no key, e.g. the UI, health, metrics)."""
    if not endpoint:
        return None
    root = endpoint.split(".", 1)[0]
    return {"training": TRAINING, "prediction": PREDICTION}.get(root)


def _endpoint(app: Flask, environ: dict) -> str | None:
    paths = app.extensions.get("loupe.paths")
    path = paths.canonical_path(environ) if paths is not None else environ.get("PATH_INFO", "")
    try:
        endpoint, _ = app.url_map.bind_to_environ(environ).match(path_info=path)
    except HTTPException:
        return None  # 404, 405 or a redirect: answered with no body read; the default cap
    return endpoint


def _content_length(environ: dict) -> int | None:
    try:
        value = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return value if value >= 0 else None


def admit(app: Flask, environ: dict) -> tuple[Limit, LoupeError | None]:
    """Whether the request of `environ` may send its body; reads none of it.

    Args:
        app: the gateway app (its routes, configuration and key resolver).
        environ: a WSGI environ of the request's line and headers (its body is not used).
    Returns:
        (the route's body limit, None to read the body, or the error to answer instead).
    """
    from loupe_gateway.api.training import SIGNED_ENDPOINTS  # the blueprints import this module

    state = app.extensions["loupe"]
    endpoint = _endpoint(app, environ)
    limit = limit_for(state.config, endpoint, environ.get("CONTENT_TYPE"))
    kind = key_kind(endpoint)
    if kind is not None and endpoint in SIGNED_ENDPOINTS:
        kind = None  # a signed URI stands for the key; these are GETs, their views check it
    key = (environ.get("HTTP_" + HEADERS[kind].upper().replace("-", "_")) or "").strip() if kind else ""
    if kind is not None and not key:
        return limit, unauthorized()
    size = _content_length(environ)
    if size is not None and size > limit.bytes:
        return limit, limit.refusal(size)
    if kind is not None:
        try:
            state.keys.authenticate(kind, key, environ.get("REMOTE_ADDR") or "")
        except LoupeError as err:
            return limit, err
    return limit, None


def init_app(app: Flask) -> None:
    """Answers a refusal the server decided; admits the requests the server has not (a WSGI
    server other than `serve.GatewayServer`, the test client); caps what Werkzeug reads."""

    @app.before_request
    def _admit():
        refusal = request.environ.get(REFUSAL)
        if refusal is None and not request.environ.get(ADMITTED):
            limit, refusal = admit(app, request.environ)
        if isinstance(refusal, ImageTooLarge):
            request.environ[REFUSAL] = refusal
            return  # the view answers it as the batch's failed image; no byte of it is read
        if refusal is not None:
            raise refusal
        if request.environ.get(ADMITTED):
            return  # the server checked it, and has counted the whole body against its cap
        # Werkzeug then refuses (413) a body, a chunked one too, that grows past the cap. One
        # byte more: a stream that only ends (`wsgi.input_terminated`) is refused on a read
        # after its limit, and a body of exactly the cap would be.
        request.max_content_length = limit.bytes + 1
