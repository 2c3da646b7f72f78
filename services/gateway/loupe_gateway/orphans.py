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
4. for each existing project, lists the iteration ids that have artifacts or exports and asks
   metadata which are iterations of the project; the others' artifacts and exports go (an
   iteration's row is written before anything of it is stored, so there is no grace to wait:
   what is left is a deletion that died between the row and the objects).
"""
from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from loupe_common import storage_keys
from loupe_common.errors import LoupeError

log = logging.getLogger(__name__)

REMOVED = Counter("loupe_orphans_removed_total", "Objects the orphan sweep removed",
                  ["kind"])  # project (every object of a deleted project), image, iteration
#: Ids or hashes per metadata call (metadata's limit).
BATCH = 1000


@dataclass(frozen=True)
class Sweep:
    """What one pass removed: projects (all their objects), images of existing projects, and
    deleted iterations (their artifacts and exports) of existing projects."""

    projects: int = 0
    images: int = 0
    skipped: bool = False  # the safety valve held
    iterations: int = 0


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
        projects = images = iterations = 0
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
            iterations += self._sweep_iterations(pid)
        return Sweep(projects, images, skipped, iterations)

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


    def _sweep_iterations(self, project_id: str) -> int:
        removed = 0
        ids = self.backends.list_iteration_ids(project_id)
        for chunk in _chunks(ids, BATCH):
            known = set(self.backends.existing_iterations(project_id, chunk))
            for iteration_id in chunk:
                if iteration_id in known or self.stop.is_set():
                    continue
                self.backends.delete_prefix(storage_keys.iteration_artifacts_prefix(project_id, iteration_id))
                self.backends.delete_prefix(storage_keys.export_prefix(project_id, iteration_id))
                removed += 1
                REMOVED.labels("iteration").inc()
                log.warning("orphan sweep: removed the artifacts and exports of iteration %s of "
                            "project %s, which metadata does not know", iteration_id, project_id)
        return removed


def run(sweep: OrphanSweep, interval_s: float) -> None:
    """Sweeps every `interval_s` (±10 %, the first one at a random point of the first
    interval, so replicas do not sweep together) until `sweep.stop` is set."""
    delay = random.uniform(0, interval_s)
    while not sweep.stop.wait(delay):
        try:
            done = sweep.run_once()
            log.info("orphan sweep: the objects of %d projects, %d images and %d iterations "
                     "removed%s", done.projects, done.images, done.iterations,
                     " (safety valve held)" if done.skipped else "")
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
