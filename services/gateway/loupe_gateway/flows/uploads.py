"""The upload flow: validate every image, put the valid bytes in storage, then add all rows in
ONE metadata AddImages call. If AddImages fails, bytes that this batch newly stored are removed
again, so a failed upload leaves neither rows nor objects behind.

Every way of adding training images (files, URLs, raw bodies, stored predictions) goes through
`upload`, so they all answer with the same ImageCreateSummary and status.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loupe.v1 import metadata_pb2 as mpb
from loupe_common.errors import BadRequest, LoupeError
from loupe_gateway import serialize, validation
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig

log = logging.getLogger(__name__)


@dataclass
class Entry:
    """One image of an upload request."""

    name: str
    data: bytes | None
    size: int
    tag_ids: list[str] = field(default_factory=list)
    too_large: bool = False
    #: An ImageCreateStatus decided before validation (e.g. ErrorSource: its URL failed).
    error_status: str | None = None
    #: Image metadata (key/value) sent with the batch.
    metadata: dict[str, str] = field(default_factory=dict)
    #: The hash under which storage already holds `data` (e.g. a stored prediction's image):
    #: the bytes are validated but not stored again.
    stored_sha256: str = ""


@dataclass(frozen=True)
class Result:
    """One image's outcome: its name, its ImageCreateStatus and, when stored, its row."""

    name: str
    status: str
    image: mpb.Image | None = None


def store(
    backends: Backends,
    config: GatewayConfig,
    account_id: str,
    project_id: str,
    entries: Sequence[Entry],
    strict: bool = False,
) -> list[Result]:
    """Validates and stores a batch; returns one Result per entry, in order.

    Args:
        strict: refuse the whole batch, before anything is stored, when any entry fails
            validation (the gRPC API's all-or-nothing upload); otherwise such an entry gets
            its Error status and the others are stored (REST's ImageCreateSummary).
    Raises:
        BadRequest: with `strict`, the first refused entry's error (its message names the
            entry); any error of AddImages (e.g. an unknown tag), after this batch's newly
            stored bytes were removed again.
    """
    results: list[Result | None] = [None] * len(entries)
    valid: list[tuple[int, validation.ImageInfo]] = []
    for index, entry in enumerate(entries):
        if entry.error_status:
            if strict:
                raise BadRequest(f"image {index} ({entry.name!r}): {entry.error_status}",
                                 "BadRequestImageBatch")
            results[index] = Result(entry.name, entry.error_status)
            continue
        try:
            if entry.too_large or entry.data is None:
                raise BadRequest("image too large", "BadRequestImageSizeBytes")
            if len(entry.tag_ids) > config.max_batch_tags:
                raise BadRequest("too many tags", "BadRequestExceedTagPerImageLimit")
            info = validation.check_image(
                entry.data, config.max_training_image_bytes, config.max_image_side,
                config.max_aspect_ratio,
            )
        except BadRequest as err:
            if strict:
                raise BadRequest(f"image {index} ({entry.name!r}): {err.message}", err.code) from None
            results[index] = Result(entry.name, validation.upload_status(err))
            continue
        valid.append((index, info))

    stored: list[tuple[int, validation.ImageInfo, str]] = []
    new_hashes: list[str] = []
    for index, info in valid:
        if entries[index].stored_sha256:
            stored.append((index, info, entries[index].stored_sha256))
            continue
        try:
            put = backends.put_image(project_id, entries[index].data or b"", info.content_type)
        except LoupeError as err:
            log.warning("storing an image of project %s failed: %r", project_id, err)
            if strict:
                _compensate(backends, project_id, new_hashes)
                raise
            results[index] = Result(entries[index].name, "ErrorStorage")
            continue
        if not put.existed:
            new_hashes.append(put.sha256)
        stored.append((index, info, put.sha256))

    if stored:
        try:
            added = backends.add_images(account_id, project_id, [
                mpb.NewImage(
                    sha256=sha, width=info.width, height=info.height,
                    content_type=info.content_type, size_bytes=info.size_bytes,
                    tag_ids=entries[index].tag_ids, metadata=entries[index].metadata,
                )
                for index, info, sha in stored
            ])
        except LoupeError:
            _compensate(backends, project_id, new_hashes)
            raise
        for (index, _info, _sha), result in zip(stored, added):
            results[index] = Result(entries[index].name, result.status, result.image)
    return [r for r in results if r is not None]


def batch_successful(results: Sequence[Result]) -> bool:
    """Custom Vision reports a batch successful only when every image is newly created (OK)."""
    return bool(results) and all(r.status == "OK" for r in results)


def upload(
    backends: Backends,
    config: GatewayConfig,
    account_id: str,
    project_id: str,
    entries: Sequence[Entry],
    uri: Callable[[mpb.Image, str], str],
) -> tuple[dict, int]:
    """Stores a batch (`store`); returns (ImageCreateSummary JSON, HTTP status).

    The status is 200 when every image was stored (OK or OKDuplicate) and 207 (Multi-Status)
    when some were refused, as the SDK documents; `isBatchSuccessful` is true only when every
    image is new (OK), as Custom Vision reports it.
    """
    results = store(backends, config, account_id, project_id, entries)
    final = [
        serialize.image_create_result(
            r.name, r.status, serialize.image(r.image, uri) if r.image is not None else None)
        for r in results
    ]
    summary = serialize.image_create_summary(final)
    failed = any(not r.status.startswith("OK") for r in results)
    return summary, 207 if failed else 200


def _compensate(backends: Backends, project_id: str, hashes: list[str]) -> None:
    if not hashes:
        return
    try:
        backends.delete_image_data(project_id, hashes)
    except LoupeError as err:  # the rows were never added: these objects are unreachable
        log.error("could not remove %d orphaned images of %s: %r", len(hashes), project_id, err)
