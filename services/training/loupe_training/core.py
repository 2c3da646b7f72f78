"""Training a job, independent of Kafka and gRPC transport details.

`Trainer.run_job` is idempotent by iteration id: a job whose iteration is no longer `Training`
(finished by another trainer, or cancelled) is a no-op, so a redelivered job is harmless.

Cancellation: deleting a Training iteration (`DELETE …/iterations/{id}`) removes its row; the
next progress report (per batch of 32 images while extracting features, and between stages)
gets NotFound, and the job stops without writing an artifact (an artifact already written when
FinishIteration finds the row gone is deleted). The job's offset is then committed.

Training types: `Regular` fits a linear head on the frozen multi-scale features (seconds);
`Advanced` fits a head with a hidden layer (`loupe_model.mlp`, about 12 s per fit on 2 CPU
cores, six fits with the cross-validation) when every tag has at least 20 images; with fewer
the linear head is as accurate or better, so Advanced fits that and says so. Both are served
the same way (the head on the shared backbone's embedding). `reservedBudgetInHours` bounds an
Advanced training: when the folds done so far show the hidden-layer head cannot finish within
it, the job trains the Regular head instead and says so in its last progress message.
Fine-tuning the backbone was measured and did not beat the frozen features at this budget
(docs/design-notes.md), and TorchServe serves one shared backbone, so the budget goes to the
head.
"""
from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import storage_pb2 as spb
from loupe.v1 import training_pb2 as tpb
from loupe_common import storage_keys
from loupe_common.errors import LoupeError, NotFound, Unavailable
from loupe_common.performance import performance_proto
from loupe_model.backbone import EmbedderLike, embed_images, get_backbone
from loupe_model.evaluate import performance
from loupe_model.head import LINEAR
from loupe_model.train import advanced_head_kind, fit_quick
from loupe_model.preprocess import InvalidImage

log = logging.getLogger(__name__)

BACKBONE = "lite0"


@dataclass
class JobOutcome:
    status: str  # "Completed", "Failed", "Skipped" or "Cancelled"
    detail: str = ""


class Cancelled(Exception):
    """The iteration was deleted while it trained: stop, and leave nothing behind."""


class OverBudget(Exception):
    """The Advanced head cannot finish within the iteration's reserved budget."""


def head_kind(training_type: str, labels: np.ndarray) -> tuple[str, str]:
    """The head a training fits, and a note when Advanced fits the linear head (see
    `loupe_model.train.advanced_head_kind`)."""
    if training_type != "Advanced":
        return LINEAR, ""
    return advanced_head_kind(labels)


def budget_seconds(iteration: mpb.Iteration) -> float | None:
    """The time an Advanced training may take (None: unbounded, or a Regular training)."""
    if iteration.training_type != "Advanced" or iteration.reserved_budget_in_hours <= 0:
        return None
    return float(iteration.reserved_budget_in_hours) * 3600.0


def seed_for(iteration_id: str) -> int:
    """A 32-bit seed derived from a string (see `training_seed`)."""
    return int.from_bytes(hashlib.sha256(iteration_id.encode()).digest()[:4], "little")


def training_seed(tset: mpb.GetTrainingSetResponse) -> int:
    """The seed of a training: fixed by what it trains on, so the same images with the same
    tags give the same model (retraining with forceTrain reproduces the probabilities)."""
    parts = [tset.iteration.classification_type]
    parts += sorted(t.id for t in tset.tags)
    parts += sorted(f"{img.sha256}:{','.join(sorted(img.tag_ids))}" for img in tset.images)
    return seed_for("\n".join(parts))


# Storage calls in flight at once while gathering a training set's features and images.
STORAGE_CONCURRENCY = 8
#: Uncached images read and embedded at a time (one backbone batch): what bounds a trainer's
#: memory, not the size of the training set (bench/training_memory.py measures it).
FEATURE_CHUNK = 32


def name_bad_image(message: str, image_ids: list[str]) -> str:
    """`embed_images`' "image <i>: …" (an index in one chunk) with the image's id instead."""
    match = re.match(r"image (\d+): ", message)
    if match and int(match.group(1)) < len(image_ids):
        return f"image {image_ids[int(match.group(1))]}: {message[match.end():]}"
    return message


def feature_key(project_id: str, sha256: str) -> str:
    return storage_keys.feature_key(get_backbone(BACKBONE).feature_id, project_id, sha256)


#: Starts of one iteration's job that may end without an outcome: a start that finishes records
#: Completed or Failed, so each earlier start ended with its trainer (killed: out of memory, say;
#: or stopped mid-job, which counts the same). The start after them fails the iteration instead
#: of risking another trainer.
MAX_ATTEMPTS = 3


def crashed_message(crashes: int) -> str:
    """The error recorded on an iteration whose job killed its trainer `crashes` times."""
    return (f"training crashed its worker {crashes} times (each start ended without a result);"
            " the iteration is failed instead of being started again")


def eta_seconds(elapsed: float, percent: float) -> float:
    """Seconds left, extrapolating the time taken so far linearly (0 when unknown)."""
    if percent <= 0 or percent >= 100 or elapsed <= 0:
        return 0.0
    return elapsed * (100.0 - percent) / percent


class Trainer:
    """Runs training jobs against the metadata and storage services."""

    def __init__(self, metadata, storage, embedder: EmbedderLike, trainer_id: str,
                 publish_event: Callable[[tpb.TrainingEvent], None] | None = None):
        self.metadata = metadata
        self.storage = storage
        self.embedder = embedder
        self.trainer_id = trainer_id
        self.publish_event = publish_event or (lambda event: None)
        self.current_iteration = ""
        self.jobs_completed = 0
        # The iteration whose start this process has counted, and the count (_count_attempt).
        self._counted, self._counted_attempts = "", 0

    def _progress(self, job: tpb.TrainingJob, stage: str, percent: float, started: float, message: str = "") -> None:
        """Publishes progress and records it on the iteration.

        Recording it doubles as the cancellation check: the metadata service answers NotFound
        once the iteration is deleted, and training stops there (`Cancelled`).
        """
        eta = eta_seconds(time.monotonic() - started, percent)
        event = tpb.TrainingEvent(
            iteration_id=job.iteration_id, project_id=job.project_id, stage=stage, percent=percent,
            eta_seconds=eta, message=message, trainer_id=self.trainer_id,
        )
        event.time.GetCurrentTime()
        self.publish_event(event)
        if stage not in ("completed", "failed"):
            try:
                self.metadata.ReportProgress(mpb.ReportProgressRequest(
                    iteration_id=job.iteration_id, stage=stage, percent=percent, eta_seconds=eta))
            except NotFound:
                raise Cancelled(job.iteration_id) from None
            except Unavailable:
                raise
            except LoupeError as err:  # progress is advisory; training goes on
                log.warning("progress report failed: %s", err)

    def run_job(self, job: tpb.TrainingJob) -> JobOutcome:
        """Trains the job's iteration unless it is already finished.

        Raises:
            Unavailable: a backend could not be reached; the job must be retried (the caller
                does not commit its offset).
        """
        try:
            tset = self.metadata.GetTrainingSet(mpb.GetTrainingSetRequest(iteration_id=job.iteration_id))
        except NotFound:
            log.info("iteration %s no longer exists: skipping", job.iteration_id)
            return JobOutcome("Skipped", "iteration deleted")
        if tset.iteration.status != "Training":
            log.info("iteration %s is %s: nothing to do", job.iteration_id, tset.iteration.status)
            return JobOutcome("Skipped", tset.iteration.status)
        started = time.monotonic()
        try:
            attempts = self._count_attempt(job)
        except NotFound:
            return JobOutcome("Skipped", "iteration deleted")
        if attempts == 0:
            return JobOutcome("Skipped", "finished elsewhere")
        if attempts > MAX_ATTEMPTS:
            return self._fail(job, crashed_message(attempts - 1), started)
        self.current_iteration = job.iteration_id
        try:
            return self._train(job, tset, started)
        except Cancelled:
            return self._cancelled(job, started)
        except Unavailable:
            raise
        except Exception as err:  # noqa: BLE001 - whatever breaks a job fails its iteration, not the trainer
            if not isinstance(err, (LoupeError, InvalidImage, ValueError)):
                log.exception("iteration %s: unexpected error", job.iteration_id)
            return self._fail(job, f"{type(err).__name__}: {err}", started)
        finally:
            self.current_iteration = ""

    def _count_attempt(self, job: tpb.TrainingJob) -> int:
        """Records that this trainer starts the job (see `MAX_ATTEMPTS`) and returns the count.

        A job retried in this process (a backend was unavailable) is counted once: only a new
        process, the one that got the job after its trainer died, counts again.
        """
        if self._counted == job.iteration_id:
            return self._counted_attempts
        attempts = self.metadata.StartTrainingAttempt(
            mpb.StartTrainingAttemptRequest(iteration_id=job.iteration_id)).attempts
        self._counted, self._counted_attempts = job.iteration_id, attempts
        return attempts

    def _cancelled(self, job: tpb.TrainingJob, started: float) -> JobOutcome:
        log.info("iteration %s was deleted while training: cancelled after %.1f s",
                 job.iteration_id, time.monotonic() - started)
        self._event(job, "cancelled", 100.0, "iteration deleted")
        return JobOutcome("Cancelled", "iteration deleted")

    def _event(self, job: tpb.TrainingJob, stage: str, percent: float, message: str = "") -> None:
        event = tpb.TrainingEvent(iteration_id=job.iteration_id, project_id=job.project_id,
                                  stage=stage, percent=percent, message=message,
                                  trainer_id=self.trainer_id)
        event.time.GetCurrentTime()
        self.publish_event(event)

    def _fail(self, job: tpb.TrainingJob, reason: str, started: float) -> JobOutcome:
        log.warning("iteration %s failed: %s", job.iteration_id, reason)
        try:
            self.metadata.FinishIteration(mpb.FinishIterationRequest(
                iteration_id=job.iteration_id, status="Failed", error_message=reason[:2000],
                training_seconds=time.monotonic() - started))
        except NotFound:
            return self._cancelled(job, started)
        self._progress(job, "failed", 100.0, started, reason[:500])
        return JobOutcome("Failed", reason)

    def _delete_artifact(self, key: str) -> None:
        try:
            self.storage.DeleteObjects(spb.DeleteObjectsRequest(keys=[key]))
        except LoupeError as err:
            log.warning("could not delete the unused artifact %s: %s", key, err)

    def _features(self, job, images, started) -> np.ndarray:
        """Embeddings for the training images; cached per image and backbone in storage.

        The per-image storage calls (cache look-ups, image reads, cache writes) are issued
        `STORAGE_CONCURRENCY` at a time: each is a small round trip, and one after another
        they were most of a retraining's time. Uncached images are read, embedded and their
        features stored `FEATURE_CHUNK` at a time, so a job holds that many encoded images at
        most, whatever the size of its training set.
        """
        dim = self.embedder.feature_dim
        feats = np.zeros((len(images), dim), dtype=np.float32)

        def cached(img) -> np.ndarray | None:
            try:
                raw = self.storage.GetObject(spb.GetObjectRequest(key=feature_key(job.project_id, img.sha256))).data
            except NotFound:
                return None
            vec = np.load(io.BytesIO(raw), allow_pickle=False)
            return vec if vec.shape == (dim,) else None

        def image(i: int) -> bytes:
            return self.storage.GetImage(spb.GetImageRequest(project_id=job.project_id, sha256=images[i].sha256)).data

        def store(i: int, vec: np.ndarray) -> None:
            buf = io.BytesIO()
            np.save(buf, vec, allow_pickle=False)
            self.storage.PutObject(spb.PutObjectRequest(
                key=feature_key(job.project_id, images[i].sha256), data=buf.getvalue()))

        missing: list[int] = []
        with ThreadPoolExecutor(STORAGE_CONCURRENCY) as pool:
            for i, vec in enumerate(pool.map(cached, images)):
                if vec is None:
                    missing.append(i)
                else:
                    feats[i] = vec
            for first in range(0, len(missing), FEATURE_CHUNK):
                chunk = missing[first:first + FEATURE_CHUNK]
                data = list(pool.map(image, chunk))
                try:
                    computed = embed_images(self.embedder, data)
                except InvalidImage as exc:
                    raise InvalidImage(name_bad_image(str(exc), [images[i].image_id for i in chunk])) from exc
                del data
                feats[chunk] = computed
                list(pool.map(store, chunk, computed))
                self._progress(job, "features", 80.0 * (first + len(chunk)) / len(missing), started)
        log.info("features: %d cached, %d computed", len(images) - len(missing), len(missing))
        return feats

    def _fit(self, job, feats, labels, multilabel, seed, tag_ids, tag_names, kind, budget, started):
        """Calibrated cross-validation and the final head, as in loupe_model.train_quick.

        Raises:
            OverBudget: after a fold, the remaining fits would end past `budget` seconds.
            Cancelled: the iteration was deleted.
        """
        fits_started = time.monotonic()

        def fit_progress(stage: str, done: int, total: int) -> None:
            if stage == "training" and done == 0:
                self._progress(job, "training", 92.0, started)
            elif stage == "evaluating" and kind != LINEAR:
                # Hidden-layer fits take seconds each: report every fold (and check for
                # cancellation), and stop early when the budget cannot be kept.
                self._progress(job, "evaluating", 82.0 + 10.0 * done / total, started)
                if budget is not None and done < total:
                    per_fit = (time.monotonic() - fits_started) / done
                    finish = time.monotonic() - started + per_fit * (total - done + 1)
                    if finish > budget:
                        raise OverBudget(f"{finish:.0f} s needed, {budget:.0f} s reserved")

        return fit_quick(feats, labels, multilabel, seed, tag_ids, tag_names, BACKBONE,
                         progress=fit_progress, kind=kind)

    def _train(self, job, tset: mpb.GetTrainingSetResponse, started: float) -> JobOutcome:
        iteration = tset.iteration
        self._progress(job, "loading", 1.0, started)
        tag_ids = [t.id for t in tset.tags]
        tag_names = [t.name for t in tset.tags]
        column = {tid: i for i, tid in enumerate(tag_ids)}
        images = [img for img in tset.images if any(t in column for t in img.tag_ids)]
        if len(images) < 2 or len(tag_ids) < 1:
            raise ValueError("not enough tagged images to train")
        labels = np.zeros((len(images), len(tag_ids)), dtype=np.float32)
        for r, img in enumerate(images):
            for t in img.tag_ids:
                if t in column:
                    labels[r, column[t]] = 1.0
        multilabel = iteration.classification_type == "Multilabel"
        seed = training_seed(tset)
        feats = self._features(job, images, started)
        self._progress(job, "evaluating", 82.0, started)
        kind, note = head_kind(iteration.training_type, labels)
        if note:
            log.info("iteration %s: %s", job.iteration_id, note)
        try:
            head, evaluation = self._fit(job, feats, labels, multilabel, seed, tag_ids, tag_names,
                                         kind, budget_seconds(iteration), started)
        except OverBudget as err:
            note = f"reserved budget too small for the Advanced head ({err}): trained the Regular head"
            log.info("iteration %s: %s", job.iteration_id, note)
            head, evaluation = self._fit(job, feats, labels, multilabel, seed, tag_ids, tag_names,
                                         LINEAR, None, started)
        perf = performance(evaluation, 0.5, tag_ids, tag_names)
        self._progress(job, "saving", 96.0, started)
        key = storage_keys.head_key(job.project_id, job.iteration_id)
        self.storage.PutObject(spb.PutObjectRequest(key=key, data=head.to_bytes(),
                                                    content_type="application/octet-stream"))
        try:
            finished = self.metadata.FinishIteration(mpb.FinishIterationRequest(
                iteration_id=job.iteration_id, status="Completed", artifact_key=key,
                evaluation=evaluation.to_json(), performance=performance_proto(perf),
                evaluation_image_ids=[img.image_id for img in images],
                training_seconds=time.monotonic() - started))
        except NotFound:
            # Deleted between the last progress report and now: the artifact is nobody's.
            self._delete_artifact(key)
            return self._cancelled(job, started)
        if finished.already_finished:
            # Another trainer finished it first; its artifact key is recorded, ours is unused
            # (both trainers wrote the same key: it is only removed when the keys differ).
            if finished.iteration.artifact_key != key:
                self._delete_artifact(key)
            log.info("iteration %s was finished elsewhere", job.iteration_id)
            return JobOutcome("Skipped", "finished elsewhere")
        self.jobs_completed += 1
        self._progress(job, "completed", 100.0, started,
                       f"precision {perf['precision']:.3f} recall {perf['recall']:.3f}"
                       + (f"; {note}" if note else ""))
        log.info("iteration %s completed in %.1f s on %d images", job.iteration_id,
                 time.monotonic() - started, len(images))
        return JobOutcome("Completed")
