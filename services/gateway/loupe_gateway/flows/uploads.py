"""The upload flow: validate every image, put the valid bytes in storage, then add all rows in
ONE metadata AddImages call. If AddImages fails, bytes that this batch newly stored are removed
again, so a failed upload leaves neither rows nor objects behind.

Bytes are content-addressed, so two uploads of the same image share one object, and an upload
that reuses bytes can race anything that removes them (a failed upload taking its bytes back,
the deletion of the last image that had them). Two rules keep every added row's bytes:
- a failed upload removes only bytes whose last write is its own (PutImage's write token: an
  upload of the same bytes since rewrote them and so keeps them), then asks metadata whether a
  row references them meanwhile and, if so, writes them back;
- a successful upload checks, once its rows are in, that the bytes it did not newly write are
  still there, and writes back any that are not (it holds them: same hash, same bytes).
Whichever of a removal and a row comes last, one of the two sees the other.

Every way of adding training images (files, URLs, raw bodies, stored predictions) goes through
`upload`, so they all answer with the same ImageCreateSummary and status.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter

from loupe.v1 import metadata_pb2 as mpb
from loupe_common.errors import BadRequest, LoupeError
from loupe_gateway import serialize, validation
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig

log = logging.getLogger(__name__)

RESTORED = Counter("loupe_upload_bytes_restored_total",
                   "Image bytes an upload wrote back after a concurrent removal took them",
                   ["by"])  # by: the failed upload that removed them, the upload that reused them


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
    written: dict[str, _Written] = {}  # bytes this batch newly stored, by hash
    reused: dict[str, _Written] = {}  # bytes that were there already (another row's, maybe)
    for index, info in valid:
        entry = entries[index]
        if entry.stored_sha256:
            stored.append((index, info, entry.stored_sha256))
            if entry.data:
                reused.setdefault(entry.stored_sha256, _Written(entry.data, info.content_type))
            continue
        try:
            put = backends.put_image(project_id, entry.data or b"", info.content_type)
        except LoupeError as err:
            log.warning("storing an image of project %s failed: %r", project_id, err)
            if strict:
                _compensate(backends, project_id, written)
                raise
            results[index] = Result(entry.name, "ErrorStorage")
            continue
        copy = _Written(entry.data or b"", info.content_type, put.write_token)
        if not put.existed or put.sha256 in written:
            # The same bytes again in this batch: its latest write is the one to take back.
            written[put.sha256] = copy
        else:
            reused.setdefault(put.sha256, copy)
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
            _compensate(backends, project_id, written)
            raise
        for (index, _info, _sha), result in zip(stored, added):
            results[index] = Result(entries[index].name, result.status, result.image)
        _keep(backends, project_id, {sha: w for sha, w in reused.items() if sha not in written})
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


@dataclass(frozen=True)
class _Written:
    """Bytes of one hash as this batch holds them, and the token of this batch's write."""

    data: bytes
    content_type: str
    token: str = ""


def _compensate(backends: Backends, project_id: str, written: dict[str, _Written]) -> None:
    """Takes back the bytes a failed batch newly wrote: only those no later write replaced,
    then writes back any that a row references meanwhile (another upload of the same bytes
    added its row between the removal's check and the removal). A failure is logged: the rows
    were never added, and the orphan sweep removes what is left."""
    if not written:
        return
    hashes = list(written)
    try:
        removed = backends.delete_image_data(project_id, hashes,
                                             write_tokens=[written[sha].token for sha in hashes])
        for sha in backends.referenced_images(project_id, hashes) if removed else ():
            backends.put_image(project_id, written[sha].data, written[sha].content_type)
            RESTORED.labels("failed_upload").inc()
            log.warning("image %s of %s was added by another upload while this failed one took "
                        "its bytes back: written again", sha, project_id)
    except LoupeError as err:
        log.error("could not take back the %d images a failed upload of %s wrote: %r",
                  len(hashes), project_id, err)


def _keep(backends: Backends, project_id: str, reused: dict[str, _Written]) -> None:
    """Once this batch's rows are in: writes back reused bytes that a concurrent removal took.
    A failure is logged, not raised: the rows are in, and removals of reused bytes are rare."""
    if not reused:
        return
    try:
        present = set(backends.find_image_data(project_id, list(reused)))
        for sha, copy in reused.items():
            if sha not in present:
                backends.put_image(project_id, copy.data, copy.content_type)
                RESTORED.labels("reusing_upload").inc()
                log.warning("image %s of %s was removed while an upload reused it: written again",
                            sha, project_id)
    except LoupeError as err:
        log.error("could not check the %d reused images of an upload to %s: %r",
                  len(reused), project_id, err)
