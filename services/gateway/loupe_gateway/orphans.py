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
5. the other way round: for each existing project, the training images whose bytes storage
   does not hold. Such a row can be neither shown nor trained on, so it goes, but only once
   it has been missing in two looks at least `recheck_s` apart and storage confirms it once
   more just before (an upload that reused bytes a concurrent removal took writes them back right
   after its rows, so a row can be briefly without bytes). It is logged as an error: bytes went
   missing that should not have. A safety valve holds when more than a tenth of a project's
   rows (and more than ten) lack bytes: that is a bucket restored from an old backup or the
   wrong bucket, for an operator to look at, not rows to delete. Stored predictions whose
   bytes are missing keep their rows (their results are still true; only the image is gone).
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from loupe_common import storage_keys
from loupe_common.errors import LoupeError

log = logging.getLogger(__name__)

REMOVED = Counter("loupe_orphans_removed_total", "Objects the orphan sweep removed",
                  ["kind"])  # project (every object of a deleted project), image, iteration, row
#: Ids or hashes per metadata call (metadata's limit).
BATCH = 1000
#: Rows without bytes are deleted only while they are at most this share of the project's rows
#: (or at most ROWS_VALVE_MIN of them).
ROWS_VALVE_SHARE = 0.1
ROWS_VALVE_MIN = 10


@dataclass(frozen=True)
class Sweep:
    """What one pass removed: projects (all their objects), images of existing projects,
    deleted iterations (their artifacts and exports) of existing projects, and training-image
    rows whose bytes are gone."""

    projects: int = 0
    images: int = 0
    skipped: bool = False  # the safety valve held
    iterations: int = 0
    rows: int = 0


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class OrphanSweep:
    """Args:
        backends: the gateway's `clients.Backends` (or a stand-in with the same methods).
        grace_s: how old unreferenced image bytes must be before they go.
        stop: set to end a pass early.
    """

    def __init__(self, backends, grace_s: float, stop: threading.Event | None = None,
                 clock=time.monotonic, recheck_s: float = storage_keys.RECENT_WRITE_S):
        self.backends = backends
        self.grace_s = grace_s
        self.stop = stop or threading.Event()
        self.clock = clock
        self.recheck_s = recheck_s
        #: (project id, hash) of rows seen without bytes -> when first seen; a row goes only
        #: when a later look, recheck_s on, still finds it so.
        self.suspects: dict[tuple[str, str], float] = {}

    def confirm_suspects(self) -> int:
        """Looks again at the projects of rows the last pass found without bytes, once
        `recheck_s` has passed since they were first seen (waiting on `stop`); returns how many
        rows went. What a single run (the chart's CronJob) does after its pass: it has no next
        pass to remember them for."""
        if not self.suspects:
            return 0
        wait = min(self.suspects.values()) + self.recheck_s - self.clock()
        if wait > 0 and self.stop.wait(wait):
            return 0
        return sum(self._sweep_rows(pid) for pid in sorted({pid for pid, _ in self.suspects}))

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
        projects = images = iterations = rows = 0
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
            rows += self._sweep_rows(pid)
        self.suspects = {k: v for k, v in self.suspects.items() if k[0] in existing}
        return Sweep(projects, images, skipped, iterations, rows)

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


    def _sweep_rows(self, project_id: str) -> int:
        rows = self.backends.image_hashes(project_id)
        if not rows or self.stop.is_set():
            return 0
        stored = set(self.backends.list_image_data(project_id, 0.0))
        missing = [sha for sha in rows if sha not in stored]
        now = self.clock()
        seen = {k: v for k, v in self.suspects.items() if k[0] == project_id}
        for key in seen:
            if key[1] not in stored:
                continue
            del self.suspects[key]  # its bytes are back (or were only late)
        if not missing:
            return 0
        if len(missing) > max(ROWS_VALVE_MIN, ROWS_VALVE_SHARE * len(rows)):
            log.error("orphan sweep: %d of the %d images of project %s have no bytes in storage; "
                      "deleting none of their rows (is this the bucket of this database?)",
                      len(missing), len(rows), project_id)
            return 0
        due = [sha for sha in missing
               if now - self.suspects.setdefault((project_id, sha), now) >= self.recheck_s
               and (project_id, sha) in seen]
        removed = 0
        for chunk in _chunks(due, BATCH):
            back = set(self.backends.find_image_data(project_id, chunk))
            gone = [sha for sha in chunk if sha not in back]
            for sha in chunk:
                self.suspects.pop((project_id, sha), None)
            if not gone:
                continue
            deleted = self.backends.delete_images_by_hash(project_id, gone)
            removed += deleted
            REMOVED.labels("row").inc(deleted)
            log.error("orphan sweep: deleted %d images of project %s whose bytes are gone from "
                      "storage (%s)", deleted, project_id, ", ".join(gone[:5]))
        return removed


def run(sweep: OrphanSweep, interval_s: float) -> None:
    """Sweeps every `interval_s` (±10 %, the first one at a random point of the first
    interval, so replicas do not sweep together) until `sweep.stop` is set."""
    delay = random.uniform(0, interval_s)
    while not sweep.stop.wait(delay):
        try:
            done = sweep.run_once()
            log.info("orphan sweep: the objects of %d projects, %d images, %d iterations and %d "
                     "rows without bytes removed%s", done.projects, done.images, done.iterations,
                     done.rows,
                     " (safety valve held)" if done.skipped else "")
        except LoupeError as err:
            log.warning("orphan sweep failed (%s); next one in %.0f s", err, interval_s)
        except Exception:  # noqa: BLE001 - the loop must outlive a bad sweep
            log.exception("orphan sweep failed")
        delay = interval_s * random.uniform(0.9, 1.1)


#: Required gateway settings a single run never reads (no prediction, training, Kafka or signed
#: URL): `main` does not ask for them.
SWEEP_UNUSED = ("LOUPE_PREDICTION_TARGET", "LOUPE_TRAINING_TARGET", "LOUPE_KAFKA_BOOTSTRAP",
                "LOUPE_URL_SIGNING_SECRET")


def main() -> int:
    """`python -m loupe_gateway.orphans`: one pass, then the second look at rows found without
    bytes, and exit (the chart runs it as a CronJob instead of a loop in every gateway
    replica). Exits 1 when a store could not be reached, so the Job retries."""
    import json
    import os
    import signal
    import sys

    from loupe_common.config import load
    from loupe_common.grpcserver import setup_logging
    from loupe_gateway.clients import Backends
    from loupe_gateway.config import GatewayConfig

    # The sweep calls metadata and storage only: the gateway's other settings that have no
    # default are left out of its CronJob (least privilege: no URL signing secret either).
    config = load(GatewayConfig, {**dict.fromkeys(SWEEP_UNUSED, ""), **os.environ})
    setup_logging(config.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    backends = Backends(config)
    try:
        sweep = OrphanSweep(backends, config.orphan_grace_s, stop)
        done = sweep.run_once()
        rows = done.rows + sweep.confirm_suspects()
    except LoupeError as err:
        log.error("orphan sweep failed: %s", err)
        return 1
    finally:
        backends.close()
    print(json.dumps({"projects": done.projects, "images": done.images,
                      "iterations": done.iterations, "rows": rows, "skipped": done.skipped}),
          file=sys.stdout, flush=True)
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
