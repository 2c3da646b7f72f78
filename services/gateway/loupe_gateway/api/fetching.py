"""What the image-by-URL and quick-test views share: the app's URL fetcher, the `{"url": ...}`
body (ImageUrl), and the image of a raw or multipart request body."""
from __future__ import annotations

from flask import current_app, request

from loupe_common.config import ConfigError
from loupe_common.errors import BadRequest
from loupe_gateway import bodies, multipart, urlfetch, validation
from loupe_gateway.app import state
from loupe_gateway.config import GatewayConfig

#: Room for multipart headers around one image.
MULTIPART_SLACK = bodies.MULTIPART_SLACK


def build_fetcher(config: GatewayConfig) -> urlfetch.UrlFetcher:
    """The fetcher configured by LOUPE_URL_FETCH_*; stops start-up on a malformed allow-list."""
    try:
        return urlfetch.UrlFetcher(
            allow=config.url_fetch_allow,
            connect_timeout=config.url_fetch_connect_timeout,
            total_timeout=config.url_fetch_timeout,
            max_redirects=config.url_fetch_max_redirects,
        )
    except ValueError as exc:
        raise ConfigError(f"LOUPE_URL_FETCH_ALLOW: {exc}") from None


def fetcher() -> urlfetch.UrlFetcher:
    return current_app.extensions["loupe.urlfetch"]


def body_url() -> str:
    """The `url` of an ImageUrl JSON body."""
    body = request.get_json(silent=True)
    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise BadRequest("the body must be an ImageUrl: {\"url\": \"http(s)://...\"}",
                         urlfetch.CODE)
    return url


def fetch_image(url: str, limit: int, max_side: int) -> bytes:
    """The bytes behind `url`, fetched safely and validated as one image of at most `limit`."""
    data = fetcher().fetch(url, limit).data
    validation.check_image(data, limit, max_side, state().config.max_aspect_ratio)
    return data


def too_large(limit: int) -> BadRequest:
    return BadRequest(
        f"the image is larger than the {limit} bytes a prediction accepts",
        "BadRequestImageSizeBytes",
    )


def request_image(limit: int, max_side: int) -> bytes:
    """The image of the request: the `imageData` (or first) part of a multipart body, or the
    raw body; validated as one image of at most `limit` bytes. The body is read once, streamed."""
    chunks = multipart.stream_chunks(request.stream.read)
    if multipart.is_multipart(request.content_type):
        parts = multipart.parse_multipart(chunks, request.content_type or "", limit,
                                          body_limit=limit + MULTIPART_SLACK)
        if parts is None:
            raise too_large(limit)
        if not parts:
            raise BadRequest("the request holds no image", "BadRequestImageStream")
        part = next((p for p in parts if p.name == "imageData"), parts[0])
        if part.too_large:
            raise too_large(limit)
        body = part.data
    else:
        body, over = multipart.read_body(chunks, limit)
        if over:
            raise too_large(limit)
    validation.check_image(body, limit, max_side, state().config.max_aspect_ratio)
    return body
