"""Retention of stored predictions: those older than the retention period are deleted, rows
and (where nothing else references them) image bytes, as Custom Vision keeps them 30 days.

Every prediction replica runs the loop; metadata skips rows another replica is deleting, so
they share the work instead of waiting on each other.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import storage_pb2 as spb
from loupe_common import storage_keys
from loupe_common.errors import LoupeError

log = logging.getLogger(__name__)

EXPIRED = Counter("loupe_predictions_expired_total", "Stored predictions deleted by retention")
#: Predictions deleted per metadata call.
BATCH = 500


class PredictionRetention:
    """Deletes stored predictions older than `days` every `interval_s` (0 days: kept forever).

    Args:
        metadata, storage: clients of the metadata and storage services.
        days: the retention period.
        stop: set to end `run`.
        interval_s: time between passes (with ±10 % jitter, so replicas drift apart).
        clock: seconds since the epoch (tests move it).
        recent_write_s: bytes written this recently are kept even when no row references them
            any more (an upload of the same bytes is adding its row); the orphan sweep takes
            them later.
    """

    def __init__(self, metadata, storage, days: float, stop: threading.Event,
                 interval_s: float = 3600.0, clock: Callable[[], float] = time.time,
                 recent_write_s: float = storage_keys.RECENT_WRITE_S):
        self.metadata = metadata
        self.recent_write_s = recent_write_s
        self.storage = storage
        self.days = days
        self.stop = stop
        self.interval_s = interval_s
        self.clock = clock

    def run_once(self) -> int:
        """One pass: deletes, batch after batch, every prediction past the period, then the
        bytes of the images nothing references any more. Returns how many were deleted."""
        if self.days <= 0:
            return 0
        before = Timestamp()
        before.FromNanoseconds(int((self.clock() - self.days * 86400) * 1e9))
        total = 0
        while not self.stop.is_set():
            resp = self.metadata.ExpirePredictions(mpb.ExpirePredictionsRequest(before=before, limit=BATCH))
            by_project: dict[str, list[str]] = defaultdict(list)
            for image in resp.orphaned:
                by_project[image.project_id].append(image.sha256)
            for project_id, hashes in by_project.items():
                self.storage.DeleteImageData(spb.DeleteImageDataRequest(
                    project_id=project_id, sha256=hashes,
                    older_than_seconds=self.recent_write_s))
            total += resp.deleted
            EXPIRED.inc(resp.deleted)
            if resp.deleted < BATCH:
                break
        if total:
            log.info("retention: %d stored predictions older than %g days deleted", total, self.days)
        return total

    def run(self) -> None:
        """Passes until `stop` is set; a pass that fails (a backend away) is tried at the next."""
        delay = random.uniform(0, min(60.0, self.interval_s))  # not every replica at once after a rollout
        while not self.stop.wait(delay):
            try:
                self.run_once()
            except LoupeError as err:
                log.warning("retention pass failed (%s); next one in %.0f s", err, self.interval_s)
            except Exception:  # noqa: BLE001 - the loop must outlive a bad pass
                log.exception("retention pass failed")
            delay = self.interval_s * random.uniform(0.9, 1.1)
