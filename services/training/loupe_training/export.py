"""Iteration export (Custom Vision's `…/iterations/{id}/export`): transport-free core.

The trainer builds exports because it already has what they need (onnx, the cached backbone
ONNX, and torch to export the backbone on a cold cache); the gateway and the prediction
service stay free of model-building dependencies.
"""
from __future__ import annotations

import logging
import os
import time

from loupe.v1 import storage_pb2 as spb
from loupe_common import exports, storage_keys
from loupe_common.errors import BadRequest, Internal, LoupeError
from loupe_model.backbone import ensure_onnx, get_backbone
from loupe_model.container import container_zip
from loupe_model.export import export_zip
from loupe_model.head import Head

log = logging.getLogger(__name__)


class Exporter:
    """Builds and stores iteration exports.

    Args:
        storage: a storage ServiceClient (GetObject / PutObject).
        model_cache: folder of the cached backbone ONNX (None: the default cache).
    """

    def __init__(self, storage, model_cache: str | os.PathLike[str] | None = None):
        self.storage = storage
        self.model_cache = model_cache

    def export(self, project_id: str, iteration_id: str, artifact_key: str, platform: str,
               flavor: str) -> tuple[str, int]:
        """Builds the export and stores it with a Done record (a Failed record on failure).

        Args:
            project_id, iteration_id: the trained iteration.
            artifact_key: storage key of its head.
            platform: Custom Vision ExportPlatform: "ONNX" or "DockerFile".
            flavor: the platform's flavor (exports.FLAVORS; "" for its default).

        Returns:
            (storage key of the zip, its size in bytes).

        Raises:
            BadRequest: unsupported platform or flavor, or no artifact key.
            LoupeError: the head cannot be read or the export cannot be stored.
        """
        if platform not in exports.PLATFORMS:
            raise BadRequest(f"export platform {platform!r} is not supported; supported: "
                             f"{', '.join(exports.PLATFORMS)}",
                             "BadRequestProjectUnsupportedExportPlatform")
        flavor = exports.flavor(platform, flavor)
        if not artifact_key.startswith(storage_keys.ARTIFACTS):
            raise BadRequest("the iteration has no trained model", "BadRequestIterationIsNotTrained")
        key = storage_keys.export_zip_key(project_id, iteration_id, platform)
        record_key = storage_keys.export_record_key(project_id, iteration_id, platform)
        started = time.perf_counter()
        try:
            data = self.storage.GetObject(spb.GetObjectRequest(key=artifact_key)).data
            try:
                head = Head.from_bytes(data)
            except ValueError as exc:
                raise Internal(f"the iteration's model cannot be exported: {exc}",
                               "ErrorExporterInvalidClassifier") from None
            backbone = ensure_onnx(get_backbone(head.backbone), self.model_cache)
            if platform == "DockerFile":
                blob = container_zip(head, backbone, flavor, project_id, iteration_id)
            else:
                blob = export_zip(head, backbone)
            self.storage.PutObject(spb.PutObjectRequest(
                key=key, data=blob, content_type="application/zip"))
        except LoupeError as err:
            self._put_record(record_key, exports.record(platform, flavor, exports.FAILED,
                                                        message=err.message))
            raise
        except Exception as exc:
            log.exception("export of %s failed", iteration_id)
            self._put_record(record_key, exports.record(platform, flavor, exports.FAILED,
                                                        message=str(exc)))
            raise Internal(f"export failed: {exc}", "ErrorProjectExportRequestFailed") from None
        # The record goes last: Done is only ever said of a zip that is fully stored.
        self.storage.PutObject(spb.PutObjectRequest(
            key=record_key, data=exports.record(platform, flavor, exports.DONE, len(blob)),
            content_type="application/json"))
        log.info("exported %s as %s (%d bytes) in %.2f s", iteration_id, platform, len(blob),
                 time.perf_counter() - started)
        return key, len(blob)

    def _put_record(self, key: str, data: bytes) -> None:
        try:
            self.storage.PutObject(spb.PutObjectRequest(
                key=key, data=data, content_type="application/json"))
        except LoupeError as err:
            log.warning("export record %s not written: %r", key, err)
