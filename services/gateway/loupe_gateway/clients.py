"""The gateway's backends: one thin method per backend call (metadata, storage, prediction,
Kafka). Channels and the Kafka producer are opened lazily, on first use, so the app can be built
(and its pre-backend paths tested) without any backend running.
"""
from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import metadata_pb2_grpc
from loupe.v1 import prediction_pb2 as ppb
from loupe.v1 import prediction_pb2_grpc
from loupe.v1 import storage_pb2 as spb
from loupe.v1 import storage_pb2_grpc
from loupe.v1 import training_pb2 as tpb
from loupe.v1 import training_pb2_grpc
from loupe_common import internal_auth, internal_tls, kafka
from loupe_common.clients import ServiceClient
from loupe_common.errors import Unavailable
from loupe_common.timeutil import to_proto, utcnow

from loupe_gateway import prediction_quota, publications
from loupe_gateway.config import GatewayConfig

log = logging.getLogger(__name__)

VARIANTS = {
    "original": spb.IMAGE_VARIANT_ORIGINAL,
    "resized": spb.IMAGE_VARIANT_RESIZED,
    "thumbnail": spb.IMAGE_VARIANT_THUMBNAIL,
}


def changes_project(method: Callable) -> Callable:
    """Marks a `Backends` method (account_id, project_id, ...) that changes what a project's
    publish names resolve to: the project's cached lookups are dropped and the change is
    announced to the other gateways, also when the call failed (it may have been applied)."""
    @functools.wraps(method)
    def changing(self: "Backends", account_id: str, project_id: str, *args, **kwargs):
        try:
            return method(self, account_id, project_id, *args, **kwargs)
        finally:
            self.project_changed(project_id)

    return changing


#: Seconds a key look-up may take (metadata answers it from one indexed row in milliseconds).
KEY_LOOKUP_TIMEOUT = 3.0


class Backends:
    """Lazily connected clients of every backend the gateway calls."""

    def __init__(self, config: GatewayConfig):
        self._config = config
        self._lock = threading.Lock()
        self._metadata: ServiceClient | None = None
        self._storage: ServiceClient | None = None
        self._prediction: ServiceClient | None = None
        self._training: ServiceClient | None = None
        self._producer = None
        #: Every backend call presents the gateway's internal credential (never an API key).
        self._credential = internal_auth.credential(config.internal_secret, internal_auth.GATEWAY)
        #: With mutual TLS configured, every backend channel presents the install's certificate.
        self._tls = internal_tls.load(config)
        #: Published iterations by publish name: used only while `start_publications` runs.
        self.published = publications.PublishedCache(config.published_cache_seconds)
        self._announcer: publications.Announcer | None = None
        #: Checked before every classification that stores (flows.prediction.admit_store).
        self.stored_quota = prediction_quota.StoredPredictionQuota(
            self.stored_prediction_quota, config.stored_quota_cache_seconds)

    def start_publications(self) -> tuple[threading.Event, list[threading.Thread]]:
        """Starts the listener that keeps `published` true and the announcer of this gateway's
        changes (daemon threads). Returns (the event that stops them, the threads)."""
        stop = threading.Event()
        if self._config.published_cache_seconds <= 0:
            return stop, []
        self._announcer = publications.Announcer(self._kafka_producer, stop)
        listener = publications.Listener(
            self.published, lambda: publications.listener_consumer(self._config.kafka_bootstrap), stop)
        threads = [threading.Thread(target=listener.run, name="publications-listener", daemon=True),
                   threading.Thread(target=self._announcer.run, name="publications-announcer", daemon=True)]
        for thread in threads:
            thread.start()
        return stop, threads

    def project_changed(self, project_id: str) -> None:
        self.published.drop_project(project_id)
        if self._announcer is not None:
            self._announcer.announce(project_id)

    # --- plumbing ------------------------------------------------------------------------------

    @property
    def metadata(self) -> ServiceClient:
        with self._lock:
            if self._metadata is None:
                self._metadata = ServiceClient(
                    self._config.metadata_target, metadata_pb2_grpc.MetadataServiceStub,
                    credential=self._credential, tls=self._tls,
                )
            return self._metadata

    @property
    def storage(self) -> ServiceClient:
        with self._lock:
            if self._storage is None:
                self._storage = ServiceClient(
                    self._config.storage_target, storage_pb2_grpc.StorageServiceStub,
                    credential=self._credential, tls=self._tls,
                )
            return self._storage

    @property
    def prediction(self) -> ServiceClient:
        with self._lock:
            if self._prediction is None:
                self._prediction = ServiceClient(
                    self._config.prediction_target, prediction_pb2_grpc.PredictionServiceStub,
                    credential=self._credential, tls=self._tls,
                )
            return self._prediction

    @property
    def training(self) -> ServiceClient:
        with self._lock:
            if self._training is None:
                # Exports are built synchronously by the trainer: seconds, more on a cold cache.
                self._training = ServiceClient(
                    self._config.training_target, training_pb2_grpc.TrainingServiceStub,
                    timeout=300, credential=self._credential, tls=self._tls,
                )
            return self._training

    def _kafka_producer(self):
        with self._lock:
            if self._producer is None:
                self._producer = kafka.producer(self._config.kafka_bootstrap)
            return self._producer

    def close(self) -> None:
        with self._lock:
            for client in (self._metadata, self._storage, self._prediction, self._training):
                if client is not None:
                    client.close()
            if self._producer is not None:
                self._producer.close(timeout=5)
            self._metadata = self._storage = self._prediction = self._producer = None
            self._training = None

    # --- metadata ------------------------------------------------------------------------------

    def resolve_key(self, key: str) -> mpb.ResolveKeyResponse:
        # Short: the HTTP server resolves a new key on its I/O thread before it reads a body
        # (bodies.admit), where a hanging metadata would stall every connection meanwhile.
        return self.metadata.ResolveKey(mpb.ResolveKeyRequest(key=key), timeout=KEY_LOOKUP_TIMEOUT)

    def create_project(self, account_id: str, name: str, description: str, domain_id: str,
                       classification_type: str, target_export_platforms: Sequence[str]
                       ) -> mpb.Project:
        return self.metadata.CreateProject(mpb.CreateProjectRequest(
            account_id=account_id, name=name, description=description, domain_id=domain_id,
            classification_type=classification_type,
            target_export_platforms=list(target_export_platforms),
        )).project

    @changes_project
    def import_project(self, account_id: str, project_id: str, name: str, description: str,
                       domain_id: str, classification_type: str,
                       target_export_platforms: Sequence[str]) -> tuple[mpb.Project, bool]:
        """Creates the project with a given id, idempotently: (project, existed)."""
        resp = self.metadata.CreateProject(mpb.CreateProjectRequest(
            account_id=account_id, id=project_id, name=name, description=description,
            domain_id=domain_id, classification_type=classification_type,
            target_export_platforms=list(target_export_platforms),
        ))
        return resp.project, resp.existed

    def get_project(self, account_id: str, project_id: str) -> mpb.Project:
        return self.metadata.GetProject(
            mpb.GetProjectRequest(account_id=account_id, project_id=project_id)).project

    def list_projects(self, account_id: str) -> list[mpb.Project]:
        return list(self.metadata.ListProjects(
            mpb.ListProjectsRequest(account_id=account_id)).projects)

    @changes_project
    def update_project(self, account_id: str, project_id: str, update_mask: Sequence[str],
                       **fields: str) -> mpb.Project:
        return self.metadata.UpdateProject(mpb.UpdateProjectRequest(
            account_id=account_id, project_id=project_id, update_mask=list(update_mask), **fields
        )).project

    @changes_project
    def delete_project(self, account_id: str, project_id: str) -> mpb.DeleteProjectResponse:
        return self.metadata.DeleteProject(
            mpb.DeleteProjectRequest(account_id=account_id, project_id=project_id))

    def create_tag(self, account_id: str, project_id: str, name: str, description: str,
                   type: str) -> mpb.Tag:
        return self.metadata.CreateTag(mpb.CreateTagRequest(
            account_id=account_id, project_id=project_id, name=name, description=description,
            type=type)).tag

    @changes_project
    def import_tag(self, account_id: str, project_id: str, tag_id: str, name: str,
                   description: str, type: str) -> tuple[mpb.Tag, bool]:
        """Creates the tag with a given id, idempotently: (tag, existed)."""
        resp = self.metadata.CreateTag(mpb.CreateTagRequest(
            account_id=account_id, project_id=project_id, id=tag_id, name=name,
            description=description, type=type))
        return resp.tag, resp.existed

    def get_tag(self, account_id: str, project_id: str, tag_id: str) -> mpb.Tag:
        return self.metadata.GetTag(mpb.GetTagRequest(
            account_id=account_id, project_id=project_id, tag_id=tag_id)).tag

    def list_tags(self, account_id: str, project_id: str) -> list[mpb.Tag]:
        return list(self.metadata.ListTags(
            mpb.ListTagsRequest(account_id=account_id, project_id=project_id)).tags)

    @changes_project
    def delete_tag(self, account_id: str, project_id: str, tag_id: str) -> None:
        self.metadata.DeleteTag(mpb.DeleteTagRequest(
            account_id=account_id, project_id=project_id, tag_id=tag_id))

    def add_images(self, account_id: str, project_id: str, images: Sequence[mpb.NewImage]
                   ) -> list[mpb.AddedImage]:
        return list(self.metadata.AddImages(mpb.AddImagesRequest(
            account_id=account_id, project_id=project_id, images=list(images))).results)

    def list_images(self, account_id: str, project_id: str, tagging_status: str = "",
                    tag_ids: Sequence[str] = (), order_by: str = "", take: int = 0,
                    skip: int = 0, image_ids: Sequence[str] = (), iteration_id: str = "",
                    metadata_filter: mpb.MetadataFilter | None = None
                    ) -> mpb.ListImagesResponse:
        return self.metadata.ListImages(mpb.ListImagesRequest(
            account_id=account_id, project_id=project_id, tagging_status=tagging_status,
            tag_ids=list(tag_ids), order_by=order_by, take=take, skip=skip,
            image_ids=list(image_ids), iteration_id=iteration_id,
            metadata_filter=metadata_filter))

    def delete_images(self, account_id: str, project_id: str, image_ids: Sequence[str],
                      all: bool) -> list[str]:
        return list(self.metadata.DeleteImages(mpb.DeleteImagesRequest(
            account_id=account_id, project_id=project_id, image_ids=list(image_ids), all=all
        )).orphaned_sha256)

    def create_iteration(self, account_id: str, project_id: str, training_type: str,
                         reserved_budget_in_hours: float, force_train: bool,
                         selected_tag_ids: Sequence[str], min_images_per_tag: int
                         ) -> mpb.Iteration:
        return self.metadata.CreateIteration(mpb.CreateIterationRequest(
            account_id=account_id, project_id=project_id, training_type=training_type,
            reserved_budget_in_hours=reserved_budget_in_hours, force_train=force_train,
            selected_tag_ids=list(selected_tag_ids), min_images_per_tag=min_images_per_tag,
            job_topic=kafka.TRAINING_JOBS,  # its job goes to the outbox in the same commit
        )).iteration

    def get_iteration(self, account_id: str, project_id: str, iteration_id: str
                      ) -> mpb.Iteration:
        return self.metadata.GetIteration(mpb.GetIterationRequest(
            account_id=account_id, project_id=project_id, iteration_id=iteration_id)).iteration

    def list_iterations(self, account_id: str, project_id: str) -> list[mpb.Iteration]:
        return list(self.metadata.ListIterations(mpb.ListIterationsRequest(
            account_id=account_id, project_id=project_id)).iterations)

    @changes_project
    def delete_iteration(self, account_id: str, project_id: str, iteration_id: str) -> str:
        return self.metadata.DeleteIteration(mpb.DeleteIterationRequest(
            account_id=account_id, project_id=project_id, iteration_id=iteration_id
        )).artifact_key

    def fail_iteration(self, iteration_id: str, error_message: str) -> None:
        self.metadata.FinishIteration(mpb.FinishIterationRequest(
            iteration_id=iteration_id, status="Failed", error_message=error_message))

    def mark_training_job_sent(self, iteration_id: str) -> None:
        self.metadata.MarkTrainingJobSent(mpb.MarkTrainingJobSentRequest(iteration_id=iteration_id))

    def claim_training_jobs(self, unsent_seconds: float, limit: int
                            ) -> list[mpb.PendingTrainingJob]:
        return list(self.metadata.ClaimTrainingJobs(mpb.ClaimTrainingJobsRequest(
            unsent_seconds=unsent_seconds, limit=limit)).jobs)

    def fail_stale_iterations(self, untouched_seconds: float, limit: int) -> list[str]:
        return list(self.metadata.FailStaleIterations(mpb.FailStaleIterationsRequest(
            untouched_seconds=untouched_seconds, limit=limit)).iteration_ids)

    @changes_project
    def publish_iteration(self, account_id: str, project_id: str, iteration_id: str,
                          publish_name: str, prediction_resource_id: str, overwrite: bool
                          ) -> mpb.Iteration:
        return self.metadata.PublishIteration(mpb.PublishIterationRequest(
            account_id=account_id, project_id=project_id, iteration_id=iteration_id,
            publish_name=publish_name, prediction_resource_id=prediction_resource_id,
            overwrite=overwrite)).iteration

    @changes_project
    def unpublish_iteration(self, account_id: str, project_id: str, iteration_id: str
                            ) -> mpb.Iteration:
        return self.metadata.UnpublishIteration(mpb.UnpublishIterationRequest(
            account_id=account_id, project_id=project_id, iteration_id=iteration_id)).iteration

    def get_published_iteration(self, account_id: str, project_id: str, publish_name: str
                                ) -> mpb.GetPublishedIterationResponse:
        return self.published.get(
            (account_id, project_id, publish_name),
            lambda: self.metadata.GetPublishedIteration(mpb.GetPublishedIterationRequest(
                account_id=account_id, project_id=project_id, publish_name=publish_name)))

    def get_tag_at(self, account_id: str, project_id: str, tag_id: str, iteration_id: str
                   ) -> mpb.Tag:
        return self.metadata.GetTag(mpb.GetTagRequest(
            account_id=account_id, project_id=project_id, tag_id=tag_id,
            iteration_id=iteration_id)).tag

    def list_tags_at(self, account_id: str, project_id: str, iteration_id: str
                     ) -> list[mpb.Tag]:
        return list(self.metadata.ListTags(mpb.ListTagsRequest(
            account_id=account_id, project_id=project_id, iteration_id=iteration_id)).tags)

    @changes_project
    def update_tag(self, account_id: str, project_id: str, tag_id: str,
                   update_mask: Sequence[str], **fields: str) -> mpb.Tag:
        return self.metadata.UpdateTag(mpb.UpdateTagRequest(
            account_id=account_id, project_id=project_id, tag_id=tag_id,
            update_mask=list(update_mask), **fields)).tag

    @changes_project
    def update_iteration(self, account_id: str, project_id: str, iteration_id: str, name: str
                         ) -> mpb.Iteration:
        return self.metadata.UpdateIteration(mpb.UpdateIterationRequest(
            account_id=account_id, project_id=project_id, iteration_id=iteration_id,
            name=name)).iteration

    def add_image_tags(self, account_id: str, project_id: str,
                       links: Sequence[tuple[str, str]], max_tags_per_image: int
                       ) -> mpb.AddImageTagsResponse:
        return self.metadata.AddImageTags(mpb.AddImageTagsRequest(
            account_id=account_id, project_id=project_id,
            links=[mpb.ImageTagLink(image_id=i, tag_id=t) for i, t in links],
            max_tags_per_image=max_tags_per_image))

    def delete_image_tags(self, account_id: str, project_id: str, image_ids: Sequence[str],
                          tag_ids: Sequence[str]) -> None:
        self.metadata.DeleteImageTags(mpb.DeleteImageTagsRequest(
            account_id=account_id, project_id=project_id, image_ids=list(image_ids),
            tag_ids=list(tag_ids)))

    def update_image_metadata(self, account_id: str, project_id: str, image_ids: Sequence[str],
                              metadata: dict[str, str], max_keys_per_image: int
                              ) -> list[mpb.ImageMetadataResult]:
        return list(self.metadata.UpdateImageMetadata(mpb.UpdateImageMetadataRequest(
            account_id=account_id, project_id=project_id, image_ids=list(image_ids),
            metadata=metadata, max_keys_per_image=max_keys_per_image)).results)

    def query_predictions(self, request: mpb.QueryPredictionsRequest
                          ) -> mpb.QueryPredictionsResponse:
        return self.metadata.QueryPredictions(request)

    def delete_predictions(self, account_id: str, project_id: str, ids: Sequence[str]
                           ) -> list[str]:
        return list(self.metadata.DeletePredictions(mpb.DeletePredictionsRequest(
            account_id=account_id, project_id=project_id, ids=list(ids))).orphaned_sha256)

    # --- storage -------------------------------------------------------------------------------

    def put_image(self, project_id: str, data: bytes, content_type: str) -> spb.PutImageResponse:
        return self.storage.PutImage(spb.PutImageRequest(
            project_id=project_id, data=data, content_type=content_type))

    def get_image(self, project_id: str, sha256: str, variant: str) -> spb.GetImageResponse:
        return self.storage.GetImage(spb.GetImageRequest(
            project_id=project_id, sha256=sha256, variant=VARIANTS[variant]))

    def delete_image_data(self, project_id: str, sha256: Sequence[str] = (), all: bool = False,
                          older_than_seconds: float = 0.0, write_tokens: Sequence[str] = ()) -> int:
        return self.storage.DeleteImageData(spb.DeleteImageDataRequest(
            project_id=project_id, sha256=list(sha256), all=all,
            older_than_seconds=older_than_seconds, write_tokens=list(write_tokens))).deleted

    def find_image_data(self, project_id: str, sha256: Sequence[str]) -> list[str]:
        return list(self.storage.FindImageData(spb.FindImageDataRequest(
            project_id=project_id, sha256=list(sha256))).sha256)

    # --- the orphan sweep (orphans.py) ------------------------------------------------------

    def list_project_ids(self) -> list[str]:
        return list(self.storage.ListProjectIds(spb.ListProjectIdsRequest()).project_ids)

    def list_image_data(self, project_id: str, older_than_seconds: float) -> list[str]:
        return list(self.storage.ListImageData(spb.ListImageDataRequest(
            project_id=project_id, older_than_seconds=older_than_seconds)).sha256)

    def list_iteration_ids(self, project_id: str) -> list[str]:
        return list(self.storage.ListIterationIds(spb.ListIterationIdsRequest(
            project_id=project_id)).iteration_ids)

    def existing_iterations(self, project_id: str, iteration_ids: Sequence[str]) -> list[str]:
        return list(self.metadata.ExistingIterations(mpb.ExistingIterationsRequest(
            project_id=project_id, iteration_ids=list(iteration_ids))).iteration_ids)

    def image_hashes(self, project_id: str) -> list[str]:
        return list(self.metadata.ImageHashes(mpb.ImageHashesRequest(project_id=project_id)).sha256)

    def delete_images_by_hash(self, project_id: str, sha256: Sequence[str]) -> int:
        return self.metadata.DeleteImagesByHash(mpb.DeleteImagesByHashRequest(
            project_id=project_id, sha256=list(sha256))).deleted

    def stored_prediction_quota(self, account_id: str) -> tuple[int, int]:
        """(the account's stored-prediction quota, its stored predictions up to it)."""
        r = self.metadata.StoredPredictionQuota(mpb.StoredPredictionQuotaRequest(account_id=account_id))
        return r.limit, r.stored

    def existing_projects(self, project_ids: Sequence[str]) -> list[str]:
        return list(self.metadata.ExistingProjects(mpb.ExistingProjectsRequest(
            project_ids=list(project_ids))).project_ids)

    def referenced_images(self, project_id: str, sha256: Sequence[str]) -> list[str]:
        return list(self.metadata.ReferencedImages(mpb.ReferencedImagesRequest(
            project_id=project_id, sha256=list(sha256))).sha256)

    def delete_objects(self, keys: Sequence[str]) -> None:
        self.storage.DeleteObjects(spb.DeleteObjectsRequest(keys=list(keys)))

    def delete_prefix(self, prefix: str) -> None:
        self.storage.DeleteObjects(spb.DeleteObjectsRequest(prefix=prefix))

    def delete_project_data(self, project_id: str) -> int:
        return self.storage.DeleteProjectData(spb.DeleteProjectDataRequest(project_id=project_id)).deleted

    def get_object(self, key: str) -> bytes:
        return self.storage.GetObject(spb.GetObjectRequest(key=key)).data

    def put_object(self, key: str, data: bytes, content_type: str) -> None:
        self.storage.PutObject(spb.PutObjectRequest(key=key, data=data, content_type=content_type))

    # --- training ------------------------------------------------------------------------------

    def export_iteration(self, project_id: str, iteration_id: str, artifact_key: str,
                         platform: str, flavor: str) -> tpb.ExportIterationResponse:
        return self.training.ExportIteration(tpb.ExportIterationRequest(
            project_id=project_id, iteration_id=iteration_id, artifact_key=artifact_key,
            platform=platform, flavor=flavor))

    # --- prediction ----------------------------------------------------------------------------

    def load_iteration(self, project_id: str, iteration_id: str, artifact_key: str) -> None:
        self.prediction.LoadIteration(ppb.LoadIterationRequest(
            project_id=project_id, iteration_id=iteration_id, artifact_key=artifact_key))

    def unload_iteration(self, iteration_id: str) -> None:
        self.prediction.UnloadIteration(ppb.UnloadIterationRequest(iteration_id=iteration_id))

    def classify(self, project_id: str, iteration_id: str, artifact_key: str, image: bytes,
                 store: bool, application: str) -> ppb.ClassifyResponse:
        return self.prediction.Classify(ppb.ClassifyRequest(
            project_id=project_id, iteration_id=iteration_id, artifact_key=artifact_key,
            image=image, store=store, application=application))

    # --- kafka ---------------------------------------------------------------------------------

    def request_training(self, iteration: mpb.Iteration, account_id: str) -> None:
        """Produces the TrainingJob and waits for the broker's acknowledgement.

        Raises:
            Unavailable: Kafka did not take the job.
        """
        self.send_training_job(tpb.TrainingJob(
            iteration_id=iteration.id,
            project_id=iteration.project_id,
            account_id=account_id,
            training_type=iteration.training_type,
            reserved_budget_in_hours=iteration.reserved_budget_in_hours,
            requested_at=to_proto(utcnow()),
        ))

    def send_training_job(self, job: tpb.TrainingJob, topic: str = kafka.TRAINING_JOBS) -> None:
        """Produces `job` to `topic` (keyed by project id) and waits for the acknowledgement.

        Raises:
            Unavailable: Kafka did not take the job.
        """
        try:
            future = self._kafka_producer().send(
                topic, key=job.project_id.encode(), value=job.SerializeToString())
            future.get(timeout=self._config.kafka_send_timeout)
        except Exception as exc:  # kafka-python raises many unrelated types
            log.warning("training job for %s not produced: %s", job.iteration_id, exc)
            raise Unavailable(
                f"the training queue did not accept the job: {exc}",
                "ErrorProjectTrainingRequestFailed",
            ) from None
