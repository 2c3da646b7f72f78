"""The orphan sweep: bytes in storage that no row in metadata references any more.

Rows and bytes live in two stores, so a process killed between the two writes, or a write that
arrives after its project was deleted, leaves bytes nothing points to:
- an upload whose rows were never added (the gateway or metadata died after the bytes went in);
- a stored prediction recorded after its project was deleted (the recorder writes the image,
  then metadata refuses the row);
- a project deletion that died between its rows and its prefixes.

Each pass (run by the gateway's reconciler every LOUPE_ORPHAN_SWEEP_INTERVAL_S):
1. lists the project ids that have objects in storage and asks metadata which exist;
2. removes every object of a project metadata does not know (`DeleteProjectData`) — rows are
   always written before bytes, so such bytes have no future either; as a safety valve nothing
   is removed this way when metadata knows none of them (a gateway pointed at an empty
   database must not empty the bucket);
3. for each existing project, lists the originals last written at least `grace_s` ago, asks
   metadata which a row references (an image, a stored prediction, a training in progress),
   and removes the others, each checked once more just before it goes (storage's
   `older_than_seconds`: an upload of the same bytes meanwhile rewrote it, and so keeps it).
   The grace covers an upload in flight: its bytes are written before its rows.
"""
from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from loupe_common.errors import LoupeError

log = logging.getLogger(__name__)

REMOVED = Counter("loupe_orphans_removed_total", "Objects the orphan sweep removed",
                  ["kind"])  # project (every object of a deleted project), image
#: Ids or hashes per metadata call (metadata's limit).
BATCH = 1000


@dataclass(frozen=True)
class Sweep:
    """What one pass removed: projects (all their objects), images of existing projects."""

    projects: int = 0
    images: int = 0
    skipped: bool = False  # the safety valve held


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class OrphanSweep:
    """Args:
        backends: the gateway's `clients.Backends` (or a stand-in with the same methods).
        grace_s: how old unreferenced image bytes must be before they go.
        stop: set to end a pass early.
    """

    def __init__(self, backends, grace_s: float, stop: threading.Event | None = None):
        self.backends = backends
        self.grace_s = grace_s
        self.stop = stop or threading.Event()

    def run_once(self) -> Sweep:
        ids = self.backends.list_project_ids()
        existing: set[str] = set()
        for chunk in _chunks(ids, BATCH):
            existing.update(self.backends.existing_projects(chunk))
        gone = [pid for pid in ids if pid not in existing]
        skipped = bool(gone) and not existing
        if skipped:
            log.error("orphan sweep: metadata knows none of the %d projects that have objects in "
                      "storage; removing nothing (is LOUPE_POSTGRES_DSN the database of this "
                      "bucket?)", len(ids))
            gone = []
        projects = images = 0
        for pid in gone:
            if self.stop.is_set():
                break
            removed = self.backends.delete_project_data(pid)
            projects += 1
            REMOVED.labels("project").inc()
            log.warning("orphan sweep: removed the %d objects of project %s, which metadata does "
                        "not know", removed, pid)
        for pid in sorted(existing):
            if self.stop.is_set():
                break
            images += self._sweep_images(pid)
        return Sweep(projects, images, skipped)

    def _sweep_images(self, project_id: str) -> int:
        removed = 0
        hashes = self.backends.list_image_data(project_id, self.grace_s)
        for chunk in _chunks(hashes, BATCH):
            used = set(self.backends.referenced_images(project_id, chunk))
            orphans = [sha for sha in chunk if sha not in used]
            if orphans:
                self.backends.delete_image_data(project_id, orphans, older_than_seconds=self.grace_s)
                removed += len(orphans)
                REMOVED.labels("image").inc(len(orphans))
                log.warning("orphan sweep: removed %d images of project %s that no row references",
                            len(orphans), project_id)
        return removed


def run(sweep: OrphanSweep, interval_s: float) -> None:
    """Sweeps every `interval_s` (±10 %, the first one at a random point of the first
    interval, so replicas do not sweep together) until `sweep.stop` is set."""
    delay = random.uniform(0, interval_s)
    while not sweep.stop.wait(delay):
        try:
            done = sweep.run_once()
            log.info("orphan sweep: the objects of %d projects and %d images removed%s",
                     done.projects, done.images, " (safety valve held)" if done.skipped else "")
        except LoupeError as err:
            log.warning("orphan sweep failed (%s); next one in %.0f s", err, interval_s)
        except Exception:  # noqa: BLE001 - the loop must outlive a bad sweep
            log.exception("orphan sweep failed")
        delay = interval_s * random.uniform(0.9, 1.1)


def start(backends, config, stop: threading.Event) -> threading.Thread | None:
    """Starts the sweep of a gateway process on a daemon thread (none when
    LOUPE_ORPHAN_SWEEP_INTERVAL_S is 0); `stop` ends it."""
    if config.orphan_sweep_interval_s <= 0:
        return None
    thread = threading.Thread(target=run, args=(OrphanSweep(backends, config.orphan_grace_s, stop),
                                                config.orphan_sweep_interval_s),
                              name="orphan-sweep", daemon=True)
    thread.start()
    return thread
