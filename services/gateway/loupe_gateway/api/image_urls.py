"""Images from URLs (`POST …/projects/{projectId}/images/urls`, an ImageUrlCreateBatch): the
gateway fetches every URL safely (loupe_gateway.urlfetch), then runs the bytes through the same
upload flow as any upload. A URL that is refused or cannot be fetched becomes a per-image
`ErrorSource` (`ErrorImageSize` when it is too large), and the batch answers 207."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, jsonify, request

from loupe_gateway import urlfetch, validation
from loupe_gateway.flows import uploads
from loupe_gateway.api import fetching
from loupe_gateway.api.common import account, image_uri
from loupe_gateway.app import state

bp = Blueprint("image_urls", __name__)


def _fetch(fetcher: urlfetch.UrlFetcher, url: object, limit: int
           ) -> tuple[bytes | None, str | None]:
    """(bytes, None), or (None, the per-image status) when the URL failed."""
    try:
        return fetcher.fetch(url if isinstance(url, str) else "", limit).data, None
    except urlfetch.FetchError as err:
        return None, "ErrorImageSize" if err.reason == urlfetch.TOO_LARGE else "ErrorSource"


@bp.post("/projects/<project_id>/images/urls")
def create_images_from_urls(project_id: str):
    cfg = state().config
    batch, metadata = validation.parse_batch(request.get_json(silent=True), "ImageUrlCreateBatch",
                                             cfg.max_batch_images, cfg.max_batch_tags)
    urls = [item.get("url") for item, _ in batch]
    tags = [item_tags for _, item_tags in batch]
    # The project is checked before the gateway fetches anything on its behalf.
    state().backends.get_project(account(), project_id)
    limit = cfg.max_training_image_bytes
    fetcher = fetching.fetcher()
    workers = max(1, min(cfg.url_fetch_concurrency, len(urls)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="urlfetch") as pool:
        fetched = list(pool.map(lambda u: _fetch(fetcher, u, limit), urls))
    entries = [
        uploads.Entry(
            url if isinstance(url, str) else "", data, len(data or b""), tag_ids,
            error_status=status, metadata=metadata,
        )
        for url, tag_ids, (data, status) in zip(urls, tags, fetched)
    ]
    summary, status = uploads.upload(
        state().backends, cfg, account(), project_id, entries, image_uri
    )
    return jsonify(summary), status
