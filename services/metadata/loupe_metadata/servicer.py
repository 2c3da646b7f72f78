"""gRPC servicer of loupe.v1.MetadataService: request fields in, core call, response out.

Domain errors raised by the core travel as they are: the shared interceptor (loupe_common.
grpcserver) maps them to gRPC status codes with the Custom Vision code in trailing metadata.
"""
from __future__ import annotations

from loupe.v1 import metadata_pb2 as pb
from loupe.v1 import metadata_pb2_grpc as pb_grpc
from loupe_common.errors import BadRequest
from loupe_common.timeutil import from_proto
from loupe_metadata.core import MetadataCore

#: Ids or hashes one orphan-sweep call may name.
SWEEP_BATCH = 1000

_KEY_KINDS = {"training": pb.KEY_KIND_TRAINING, "prediction": pb.KEY_KIND_PREDICTION}


class MetadataServicer(pb_grpc.MetadataServiceServicer):
    def __init__(self, core: MetadataCore):
        self._core = core

    # accounts and keys
    def CreateAccount(self, request, context):
        return pb.CreateAccountResponse(account=self._core.accounts.create_account(request.name))

    def ResolveKey(self, request, context):
        info = self._core.accounts.resolve_key(request.key)
        return pb.ResolveKeyResponse(
            account_id=info.account_id,
            kind=_KEY_KINDS[info.kind],
            prediction_resource_id=info.prediction_resource_id,
        )

    # projects
    def CreateProject(self, request, context):
        fields = dict(
            description=request.description,
            domain_id=request.domain_id,
            classification_type=request.classification_type,
            target_export_platforms=list(request.target_export_platforms),
        )
        if request.id:
            project, existed = self._core.projects.import_project(
                request.account_id, request.id, request.name, **fields
            )
            return pb.CreateProjectResponse(project=project, existed=existed)
        project = self._core.projects.create_project(request.account_id, request.name, **fields)
        return pb.CreateProjectResponse(project=project)

    def GetProject(self, request, context):
        return pb.GetProjectResponse(
            project=self._core.projects.get_project(request.account_id, request.project_id)
        )

    def ListProjects(self, request, context):
        return pb.ListProjectsResponse(
            projects=self._core.projects.list_projects(request.account_id)
        )

    def UpdateProject(self, request, context):
        project = self._core.projects.update_project(
            request.account_id,
            request.project_id,
            list(request.update_mask),
            name=request.name,
            description=request.description,
            domain_id=request.domain_id,
            classification_type=request.classification_type,
        )
        return pb.UpdateProjectResponse(project=project)

    def DeleteProject(self, request, context):
        deleted = self._core.projects.delete_project(request.account_id, request.project_id)
        return pb.DeleteProjectResponse(
            image_sha256=deleted.image_sha256, artifact_keys=deleted.artifact_keys
        )

    # tags
    def CreateTag(self, request, context):
        if request.id:
            tag, existed = self._core.tags.import_tag(
                request.account_id, request.project_id, request.id, request.name,
                description=request.description, type=request.type,
            )
            return pb.CreateTagResponse(tag=tag, existed=existed)
        tag = self._core.tags.create_tag(
            request.account_id,
            request.project_id,
            request.name,
            description=request.description,
            type=request.type,
        )
        return pb.CreateTagResponse(tag=tag)

    def GetTag(self, request, context):
        return pb.GetTagResponse(
            tag=self._core.tags.get_tag(
                request.account_id, request.project_id, request.tag_id, request.iteration_id
            )
        )

    def ListTags(self, request, context):
        return pb.ListTagsResponse(
            tags=self._core.tags.list_tags(
                request.account_id, request.project_id, request.iteration_id
            )
        )

    def DeleteTag(self, request, context):
        self._core.tags.delete_tag(request.account_id, request.project_id, request.tag_id)
        return pb.DeleteTagResponse()

    def UpdateTag(self, request, context):
        tag = self._core.tags.update_tag(
            request.account_id,
            request.project_id,
            request.tag_id,
            list(request.update_mask),
            name=request.name,
            description=request.description,
            type=request.type,
        )
        return pb.UpdateTagResponse(tag=tag)

    # images
    def AddImages(self, request, context):
        results = self._core.images.add_images(
            request.account_id, request.project_id, list(request.images)
        )
        return pb.AddImagesResponse(
            results=[pb.AddedImage(status=status, image=image) for status, image in results]
        )

    def ListImages(self, request, context):
        page = self._core.images.list_images(
            request.account_id,
            request.project_id,
            tagging_status=request.tagging_status,
            tag_ids=list(request.tag_ids),
            order_by=request.order_by,
            take=request.take,
            skip=request.skip,
            image_ids=list(request.image_ids),
            iteration_id=request.iteration_id,
            metadata_filter=(
                request.metadata_filter if request.HasField("metadata_filter") else None
            ),
        )
        return pb.ListImagesResponse(images=page.images, total=page.total)

    def DeleteImages(self, request, context):
        orphaned = self._core.images.delete_images(
            request.account_id, request.project_id, list(request.image_ids), all=request.all
        )
        return pb.DeleteImagesResponse(orphaned_sha256=orphaned)

    def AddImageTags(self, request, context):
        created, duplicated, exceeded = self._core.images.add_image_tags(
            request.account_id,
            request.project_id,
            [(link.image_id, link.tag_id) for link in request.links],
            max_tags_per_image=request.max_tags_per_image,
        )

        def links(pairs):
            return [pb.ImageTagLink(image_id=i, tag_id=t) for i, t in pairs]

        return pb.AddImageTagsResponse(
            created=links(created), duplicated=links(duplicated), exceeded=links(exceeded)
        )

    def DeleteImageTags(self, request, context):
        self._core.images.delete_image_tags(
            request.account_id, request.project_id, list(request.image_ids), list(request.tag_ids)
        )
        return pb.DeleteImageTagsResponse()

    def UpdateImageMetadata(self, request, context):
        results = self._core.images.update_image_metadata(
            request.account_id,
            request.project_id,
            list(request.image_ids),
            dict(request.metadata),
            max_keys_per_image=request.max_keys_per_image,
        )
        return pb.UpdateImageMetadataResponse(
            results=[
                pb.ImageMetadataResult(image_id=i, status=status, metadata=metadata)
                for i, status, metadata in results
            ]
        )

    # iterations
    def CreateIteration(self, request, context):
        iteration = self._core.iterations.create_iteration(
            request.account_id,
            request.project_id,
            training_type=request.training_type,
            reserved_budget_in_hours=request.reserved_budget_in_hours,
            force_train=request.force_train,
            selected_tag_ids=list(request.selected_tag_ids),
            min_images_per_tag=request.min_images_per_tag,
            job_topic=request.job_topic,
        )
        return pb.CreateIterationResponse(iteration=iteration)

    def GetIteration(self, request, context):
        return pb.GetIterationResponse(
            iteration=self._core.iterations.get_iteration(
                request.account_id, request.project_id, request.iteration_id
            )
        )

    def ListIterations(self, request, context):
        return pb.ListIterationsResponse(
            iterations=self._core.iterations.list_iterations(request.account_id, request.project_id)
        )

    def DeleteIteration(self, request, context):
        key = self._core.iterations.delete_iteration(
            request.account_id, request.project_id, request.iteration_id
        )
        return pb.DeleteIterationResponse(artifact_key=key)

    def UpdateIteration(self, request, context):
        return pb.UpdateIterationResponse(
            iteration=self._core.iterations.update_iteration(
                request.account_id, request.project_id, request.iteration_id, request.name
            )
        )

    def GetTrainingSet(self, request, context):
        training_set = self._core.training.get_training_set(request.iteration_id)
        return pb.GetTrainingSetResponse(
            iteration=training_set.iteration, tags=training_set.tags, images=training_set.images
        )

    def ReportProgress(self, request, context):
        self._core.training.report_progress(request.iteration_id, request.stage, request.percent,
                                   request.eta_seconds)
        return pb.ReportProgressResponse()

    def StartTrainingAttempt(self, request, context):
        return pb.StartTrainingAttemptResponse(
            attempts=self._core.training.start_training_attempt(request.iteration_id))

    def FinishIteration(self, request, context):
        iteration, already = self._core.training.finish_iteration(
            request.iteration_id,
            request.status,
            artifact_key=request.artifact_key,
            error_message=request.error_message,
            evaluation=request.evaluation,
            performance=request.performance if request.HasField("performance") else None,
            training_seconds=request.training_seconds,
            evaluation_image_ids=list(request.evaluation_image_ids),
        )
        return pb.FinishIterationResponse(iteration=iteration, already_finished=already)

    def MarkTrainingJobSent(self, request, context):
        self._core.handoff.mark_training_job_sent(request.iteration_id)
        return pb.MarkTrainingJobSentResponse()

    def ClaimTrainingJobs(self, request, context):
        return pb.ClaimTrainingJobsResponse(jobs=self._core.handoff.claim_training_jobs(
            request.unsent_seconds, request.limit))

    def FailStaleIterations(self, request, context):
        return pb.FailStaleIterationsResponse(iteration_ids=self._core.handoff.fail_stale_iterations(
            request.untouched_seconds, request.limit))

    def PublishIteration(self, request, context):
        iteration = self._core.iterations.publish_iteration(
            request.account_id,
            request.project_id,
            request.iteration_id,
            request.publish_name,
            prediction_resource_id=request.prediction_resource_id,
            overwrite=request.overwrite,
        )
        return pb.PublishIterationResponse(iteration=iteration)

    def UnpublishIteration(self, request, context):
        iteration = self._core.iterations.unpublish_iteration(
            request.account_id, request.project_id, request.iteration_id
        )
        return pb.UnpublishIterationResponse(iteration=iteration)

    def GetPublishedIteration(self, request, context):
        iteration, tags = self._core.iterations.get_published_iteration(
            request.account_id, request.project_id, request.publish_name
        )
        return pb.GetPublishedIterationResponse(iteration=iteration, tags=tags)

    # predictions
    def RecordPrediction(self, request, context):
        self._core.predictions.record_prediction(request.prediction)
        return pb.RecordPredictionResponse()

    def ListPredictions(self, request, context):
        return pb.ListPredictionsResponse(
            predictions=self._core.predictions.list_predictions(
                request.account_id, request.project_id, request.max_count
            )
        )

    def QueryPredictions(self, request, context):
        predictions, continuation = self._core.predictions.query_predictions(
            request.account_id,
            request.project_id,
            tags=[(t.tag_id, t.min_threshold, t.max_threshold) for t in request.tags],
            iteration_id=request.iteration_id,
            start_time=from_proto(request.start_time) if request.HasField("start_time") else None,
            end_time=from_proto(request.end_time) if request.HasField("end_time") else None,
            order_by=request.order_by,
            max_count=request.max_count,
            continuation=request.continuation,
            application=request.application,
            ids=list(request.ids),
        )
        return pb.QueryPredictionsResponse(predictions=predictions, continuation=continuation)

    def DeletePredictions(self, request, context):
        orphaned = self._core.predictions.delete_predictions(
            request.account_id, request.project_id, list(request.ids)
        )
        return pb.DeletePredictionsResponse(orphaned_sha256=orphaned)

    def ExistingProjects(self, request, context):
        if len(request.project_ids) > SWEEP_BATCH:
            raise BadRequest(f"at most {SWEEP_BATCH} ids per call", "BadRequest")
        return pb.ExistingProjectsResponse(
            project_ids=self._core.projects.existing_projects(list(request.project_ids)))

    def ReferencedImages(self, request, context):
        if len(request.sha256) > SWEEP_BATCH:
            raise BadRequest(f"at most {SWEEP_BATCH} hashes per call", "BadRequest")
        return pb.ReferencedImagesResponse(sha256=self._core.predictions.referenced_images(
            request.project_id, list(request.sha256)))

    def ExistingIterations(self, request, context):
        if len(request.iteration_ids) > SWEEP_BATCH:
            raise BadRequest(f"at most {SWEEP_BATCH} ids per call", "BadRequest")
        return pb.ExistingIterationsResponse(iteration_ids=self._core.iterations.existing_iterations(
            request.project_id, list(request.iteration_ids)))

    def ImageHashes(self, request, context):
        return pb.ImageHashesResponse(sha256=self._core.images.image_hashes(request.project_id))

    def DeleteImagesByHash(self, request, context):
        if len(request.sha256) > SWEEP_BATCH:
            raise BadRequest(f"at most {SWEEP_BATCH} hashes per call", "BadRequest")
        return pb.DeleteImagesByHashResponse(deleted=self._core.images.delete_images_by_hash(
            request.project_id, list(request.sha256)))

    def StoredPredictionQuota(self, request, context):
        limit, stored = self._core.predictions.stored_prediction_quota(request.account_id)
        return pb.StoredPredictionQuotaResponse(limit=limit, stored=stored)

    def ExpirePredictions(self, request, context):
        deleted, orphaned = self._core.predictions.expire_predictions(
            from_proto(request.before), request.limit
        )
        return pb.ExpirePredictionsResponse(deleted=deleted, orphaned=[
            pb.OrphanedImage(project_id=project, sha256=sha) for project, sha in orphaned])
