"""Transport-free storage logic over an S3 bucket (minio SDK).

Layout of the bucket (every key is built by loupe_common.storage_keys):
  images/<project>/<sha256>              original bytes, content-addressed (dedupe)
  images/<project>/<sha256>.<variant>    derived JPEG variants, made on first request
  artifacts/..., features/..., exports/...  opaque objects written by other services
"""
from __future__ import annotations

import hashlib
import io
import logging
import re
import uuid
from datetime import datetime, timedelta, timezone

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from loupe_common import storage_keys
from loupe_common.errors import BadRequest, NotFound
from loupe_model.preprocess import InvalidImage, decode_image

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^(artifacts|features|exports|models)/[A-Za-z0-9._\-/]+$")
#: A prefix delete names one project (storage_keys: every project's keys sit below
#: `{root}{project}/`, features below `features/{feature_id}/{project}/`): never a whole root.
_PROJECT_PREFIX = re.compile(
    r"^(artifacts|exports|models|features/[A-Za-z0-9._\-]+)/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/")
#: Object metadata naming an image's last write (PutImage's write token).
WRITE_TOKEN = "loupe-write"
#: Most hashes in one find_images call.
MAX_FIND = 1000
#: Longest side of the derived variants (Custom Vision: resized ≈ 1024 px, thumbnail ≈ 200 px).
VARIANT_SIZES = {"resized": 1024, "thumbnail": 200}


def _check_project(project_id: str) -> None:
    if not _UUID.match(project_id or ""):
        raise BadRequest(f"invalid project id {project_id!r}", "BadRequestInvalidIds")


def _check_sha(sha: str) -> None:
    if not _SHA.match(sha or ""):
        raise BadRequest(f"invalid image hash {sha!r}", "BadRequestInvalidIds")


def _meta(stat, name: str) -> str:
    """A user metadata value of a stat (the SDK keeps the header's `x-amz-meta-` prefix)."""
    for key, value in (stat.metadata or {}).items():
        if key.lower() in (f"x-amz-meta-{name}", name):
            return value
    return ""


def check_key(key: str) -> None:
    """Raises BadRequest unless `key` is a well-formed key of an object root."""
    if not _KEY.match(key or "") or ".." in key:
        raise BadRequest(f"invalid object key {key!r}")



class Store:
    """Image bytes and objects in one bucket."""

    def __init__(self, client: Minio, bucket: str):
        self.client = client
        self.bucket = bucket

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as err:  # another replica created it first
                if err.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def _exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
            return True
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise

    def _read(self, key: str) -> tuple[bytes, str]:
        try:
            resp = self.client.get_object(self.bucket, key)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise NotFound(f"object {key} not found") from None
            raise
        try:
            return resp.read(), resp.headers.get("Content-Type", "application/octet-stream")
        finally:
            resp.close()
            resp.release_conn()

    def _write(self, key: str, data: bytes, content_type: str,
               metadata: dict[str, str] | None = None) -> None:
        # A PUT is atomic in S3: readers see the whole object or none of it.
        self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type,
                               metadata=metadata)

    def _stat(self, key: str):
        """The object's stat, None when it does not exist."""
        try:
            return self.client.stat_object(self.bucket, key)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise

    # ---------------------------------------------------------------- images
    def put_image(self, project_id: str, data: bytes, content_type: str) -> tuple[str, bool, str]:
        """Stores bytes under their SHA-256; returns (sha256, existed, write token).

        The token names this write (object metadata `x-amz-meta-loupe-write`): `delete_images`
        given it removes the bytes only while no later write replaced them.
        """
        _check_project(project_id)
        if not data:
            raise BadRequest("empty image", "BadRequestImageSizeBytes")
        sha = hashlib.sha256(data).hexdigest()
        key = storage_keys.image_key(project_id, sha)
        existed = self._exists(key)
        # Written again when it existed: its time of last write is then this upload's, so the
        # orphan sweep (which removes bytes no row references, once they are old enough) cannot
        # remove them between this write and the row that this upload is about to add, and a
        # failed upload that wrote them first no longer takes them back (its token is replaced).
        token = uuid.uuid4().hex
        self._write(key, data, content_type or "application/octet-stream", {WRITE_TOKEN: token})
        return sha, existed, token

    def get_image(self, project_id: str, sha: str, variant: str = "original") -> tuple[bytes, str]:
        _check_project(project_id)
        _check_sha(sha)
        key = storage_keys.image_key(project_id, sha)
        if variant == "original":
            return self._read(key)
        vkey = storage_keys.image_variant_key(project_id, sha, variant)
        try:
            return self._read(vkey)
        except NotFound:
            pass
        data, _ = self._read(key)
        out = _thumbnail(data, VARIANT_SIZES[variant])
        self._write(vkey, out, "image/jpeg")
        return out, "image/jpeg"

    def delete_images(self, project_id: str, shas: list[str], all_images: bool = False,
                      older_than_seconds: float = 0.0, write_tokens: list[str] | None = None) -> int:
        """Removes images (originals and variants); with `older_than_seconds`, only those whose
        original was last written at least that long ago, and with `write_tokens` (one per
        hash) only those whose last write is the one that returned the token; both are checked
        just before removing them."""
        _check_project(project_id)
        if all_images:
            return self._delete_prefix(storage_keys.images_prefix(project_id))
        for sha in shas:
            _check_sha(sha)
        if write_tokens:
            if len(write_tokens) != len(shas):
                raise BadRequest("write_tokens must give one token per hash")
            shas = [sha for sha, token in zip(shas, write_tokens)
                    if self._written_by(storage_keys.image_key(project_id, sha), token)]
        if older_than_seconds > 0:
            shas = [sha for sha in shas if self._older(storage_keys.image_key(project_id, sha),
                                                       older_than_seconds)]
        keys = []
        for sha in shas:
            keys.append(storage_keys.image_key(project_id, sha))
            keys += [storage_keys.image_variant_key(project_id, sha, v) for v in VARIANT_SIZES]
        return self._delete_keys(keys)

    def _written_by(self, key: str, token: str) -> bool:
        stat = self._stat(key)
        return stat is not None and bool(token) and _meta(stat, WRITE_TOKEN) == token

    def find_images(self, project_id: str, shas: list[str]) -> list[str]:
        """Those of `shas` whose original bytes the project holds."""
        _check_project(project_id)
        if len(shas) > MAX_FIND:
            raise BadRequest(f"at most {MAX_FIND} hashes per call")
        for sha in shas:
            _check_sha(sha)
        return [sha for sha in shas if self._stat(storage_keys.image_key(project_id, sha)) is not None]

    def _older(self, key: str, seconds: float) -> bool:
        try:
            modified = self.client.stat_object(self.bucket, key).last_modified
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchObject"):
                return False
            raise
        return modified is not None and modified <= _now() - timedelta(seconds=seconds)

    # ---------------------------------------------------------------- the orphan sweep
    def list_project_ids(self) -> list[str]:
        """Every project id below a root (images, artifacts, exports, each features definition)."""
        roots = [storage_keys.IMAGES, storage_keys.ARTIFACTS, storage_keys.EXPORTS]
        roots += [o.object_name for o in self.client.list_objects(self.bucket, prefix=storage_keys.FEATURES)
                  if o.is_dir]
        found: set[str] = set()
        for root in roots:
            for entry in self.client.list_objects(self.bucket, prefix=root):
                name = entry.object_name[len(root):].rstrip("/")
                if entry.is_dir and _UUID.match(name):
                    found.add(name)
        return sorted(found)

    def list_iteration_ids(self, project_id: str) -> list[str]:
        """Every iteration id with objects of the project: folders below
        `artifacts/{project}/` and `exports/{project}/`."""
        _check_project(project_id)
        found: set[str] = set()
        for root in (storage_keys.artifact_key(project_id, ""), storage_keys.export_prefix(project_id)):
            for entry in self.client.list_objects(self.bucket, prefix=root):
                name = entry.object_name[len(root):].rstrip("/")
                if entry.is_dir and _UUID.match(name):
                    found.add(name)
        return sorted(found)

    def list_image_data(self, project_id: str, older_than_seconds: float) -> list[str]:
        """Hashes of the project's originals last written at least `older_than_seconds` ago."""
        _check_project(project_id)
        prefix = storage_keys.images_prefix(project_id)
        cutoff = _now() - timedelta(seconds=max(0.0, older_than_seconds))
        return [o.object_name[len(prefix):]
                for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if _SHA.match(o.object_name[len(prefix):])
                and o.last_modified is not None and o.last_modified <= cutoff]

    # ---------------------------------------------------------------- objects
    def put_object(self, key: str, data: bytes, content_type: str) -> int:
        check_key(key)
        self._write(key, data, content_type or "application/octet-stream")
        return len(data)

    def get_object(self, key: str) -> tuple[bytes, str]:
        check_key(key)
        return self._read(key)

    def delete_objects(self, keys: list[str], prefix: str = "") -> int:
        for key in keys:
            check_key(key)
        deleted = self._delete_keys(keys)
        if prefix:
            check_key(prefix.rstrip("/") + "/x")
            if not _PROJECT_PREFIX.match(prefix):
                raise BadRequest(f"prefix {prefix!r} does not name one project's objects")
            deleted += self._delete_prefix(prefix)
        return deleted

    def delete_project(self, project_id: str) -> int:
        """Removes every object of a project (storage_keys: all below `{root}{project}/`, and
        features below `features/{feature_id}/{project}/` for each feature definition)."""
        _check_project(project_id)
        prefixes = [storage_keys.images_prefix(project_id), storage_keys.artifact_key(project_id, ""),
                    storage_keys.export_prefix(project_id)]
        for definition in self.client.list_objects(self.bucket, prefix=storage_keys.FEATURES):
            if definition.is_dir:  # features/{feature_id}/
                prefixes.append(f"{definition.object_name}{project_id}/")
        return sum(self._delete_prefix(prefix) for prefix in prefixes)

    def _delete_prefix(self, prefix: str) -> int:
        keys = [o.object_name for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)]
        return self._delete_keys(keys)

    def _delete_keys(self, keys: list[str]) -> int:
        if not keys:
            return 0
        errors = list(self.client.remove_objects(self.bucket, (DeleteObject(k) for k in keys)))
        for err in errors:
            log.warning("could not delete %s: %s", err.name, err.message)
        return len(keys) - len(errors)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _thumbnail(data: bytes, longest: int) -> bytes:
    """A JPEG no longer than `longest` a side, decoded within the decoding budget (a huge image
    is reduced while it is decoded), upright and with transparency on white, as training sees it."""
    try:
        img = decode_image(data, draft_size=longest)
    except InvalidImage as exc:
        raise BadRequest(f"the image cannot be decoded for a thumbnail: {exc}", "BadRequestImageFormat") from None
    img.thumbnail((longest, longest))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=88)
    return out.getvalue()
