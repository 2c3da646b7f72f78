"""The public gRPC API's servicers: authenticate, convert, call a flow, convert back.

Each method is wrapped by `_call` (unary answers) or `_stream` (streamed answers), which
authenticate the caller (`auth.authenticate`) and turn a domain error into its status with the
Custom Vision code in trailing metadata, as the internal services' interceptor does
(loupe_common.grpcserver) but for every kind of RPC (that interceptor maps unary calls only).
"""
from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message

from loupe.v1 import api_pb2 as api
from loupe.v1 import api_pb2_grpc
from loupe_common.errors import ERROR_CODE_KEY, BadRequest, Internal, LoupeError
from loupe_gateway import domains, validation
from loupe_gateway.auth import PREDICTION, TRAINING, KeyResolver, Principal
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig
from loupe_gateway.flows import iterations, prediction, projects, uploads
from loupe_gateway.flows import predictions as stored
from loupe_gateway.grpcapi import auth, convert
from loupe_gateway.ratelimit import RateLimiter

log = logging.getLogger(__name__)


@dataclass
class ApiContext:
    """What every public call needs: the gateway's configuration, backends, key resolver and
    rate limiter (the REST app's own, so both transports share caches and budgets)."""

    config: GatewayConfig
    backends: Backends
    keys: KeyResolver
    limiter: RateLimiter | None = None
    #: Seconds between TrainProject's looks at the iteration.
    progress_poll_seconds: float = 0.5
    #: Requests of one ClassifyStream in flight at once.
    stream_window: int = 8


def _abort(context: grpc.ServicerContext, err: LoupeError):
    context.set_trailing_metadata(((ERROR_CODE_KEY, err.code),))
    context.abort(err.grpc_status, err.message)


def _unexpected(method: str) -> LoupeError:
    log.exception("unhandled error in %s", method)
    return Internal("internal error", "Unknown")


def _canonical(request):
    """The request (or each message of a request stream) with its ids canonicalised."""
    if isinstance(request, Message):
        return convert.canonical_ids(request)
    return (convert.canonical_ids(m) for m in request)


def _call(kind: str):
    """Wraps a unary-answer method `(self, principal, request, context)`."""
    def wrap(method):
        @functools.wraps(method)
        def wrapped(self, request, context):
            try:
                principal = self._authenticate(kind, context)
                return method(self, principal, _canonical(request), context)
            except LoupeError as err:
                failure = err
            except Exception:  # noqa: BLE001 - logged, answered INTERNAL
                failure = _unexpected(method.__name__)
            _abort(context, failure)
        return wrapped
    return wrap


def _stream(kind: str):
    """Wraps a streamed-answer method (a generator) `(self, principal, request, context)`."""
    def wrap(method):
        @functools.wraps(method)
        def wrapped(self, request, context):
            try:
                principal = self._authenticate(kind, context)
                yield from method(self, principal, _canonical(request), context)
                return
            except LoupeError as err:
                failure = err
            except Exception:  # noqa: BLE001 - logged, answered INTERNAL
                failure = _unexpected(method.__name__)
            _abort(context, failure)
        return wrapped
    return wrap


class _Base:
    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    def _authenticate(self, kind: str, context: grpc.ServicerContext) -> Principal:
        return auth.authenticate(self.ctx.keys, self.ctx.limiter, kind,
                                 context.invocation_metadata(), auth.peer_address(context.peer()))


def _guids(values, code: str = "BadRequestInvalidIds") -> list[str]:
    return validation.parse_guid_list(list(values), code)


class ProjectsServicer(_Base, api_pb2_grpc.ProjectsServicer):
    """loupe.v1.api.Projects: projects, tags and training images (training key)."""

    @_call(TRAINING)
    def CreateProject(self, p: Principal, request: api.CreateProjectRequest, context):
        project = self.ctx.backends.create_project(
            p.account_id, name=request.name, description=request.description,
            domain_id=domains.resolve(request.domain_id or None),
            classification_type=request.classification_type, target_export_platforms=[],
        )
        return api.CreateProjectResponse(project=convert.project(project))

    @_call(TRAINING)
    def ListProjects(self, p: Principal, request, context):
        return api.ListProjectsResponse(
            projects=[convert.project(x) for x in self.ctx.backends.list_projects(p.account_id)])

    @_call(TRAINING)
    def GetProject(self, p: Principal, request: api.GetProjectRequest, context):
        project = self.ctx.backends.get_project(p.account_id, request.project_id)
        return api.GetProjectResponse(project=convert.project(project))

    @_call(TRAINING)
    def DeleteProject(self, p: Principal, request: api.DeleteProjectRequest, context):
        projects.delete(self.ctx.backends, p.account_id, request.project_id)
        return api.DeleteProjectResponse()

    @_call(TRAINING)
    def CreateTag(self, p: Principal, request: api.CreateTagRequest, context):
        tag = self.ctx.backends.create_tag(p.account_id, request.project_id, name=request.name,
                                           description=request.description, type=request.type)
        return api.CreateTagResponse(tag=convert.tag(tag))

    @_call(TRAINING)
    def ListTags(self, p: Principal, request: api.ListTagsRequest, context):
        tags = self.ctx.backends.list_tags(p.account_id, request.project_id)
        return api.ListTagsResponse(tags=[convert.tag(t) for t in tags])

    @_call(TRAINING)
    def DeleteTag(self, p: Principal, request: api.DeleteTagRequest, context):
        self.ctx.backends.delete_tag(p.account_id, request.project_id, request.tag_id)
        return api.DeleteTagResponse()

    @_call(TRAINING)
    def UploadImages(self, p: Principal, request_iterator, context):
        project_id, entries = read_upload(request_iterator, self.ctx.config)
        results = uploads.store(self.ctx.backends, self.ctx.config, p.account_id, project_id,
                                entries, strict=True)
        return api.UploadImagesResponse(
            is_batch_successful=uploads.batch_successful(results),
            images=[api.ImageCreateResult(name=r.name, status=r.status,
                                          image=convert.image(r.image) if r.image else None)
                    for r in results],
        )

    @_call(TRAINING)
    def ListImages(self, p: Principal, request: api.ListImagesRequest, context):
        page = self.ctx.backends.list_images(
            p.account_id, request.project_id, tagging_status=request.tagging_status,
            tag_ids=_guids(request.tag_ids, "BadRequestImageTags"),
            take=validation.parse_take(str(request.take) if request.take else None),
            skip=validation.parse_skip(str(request.skip) if request.skip else None),
        )
        return api.ListImagesResponse(images=[convert.image(i) for i in page.images],
                                      total=page.total)


def read_upload(messages: Iterator[api.UploadImagesRequest], config: GatewayConfig
                ) -> tuple[str, list[uploads.Entry]]:
    """The project id and images of an UploadImages stream, with the REST batch limits.

    An image's bytes stop being kept once it is over the size limit (it is then refused as
    too large), and reading stops at the first image over the batch limit, so a huge stream
    costs no memory.

    Raises:
        BadRequest: no project, bytes before any image, too many images or tags per image,
            a tag id that is not a GUID, or no image at all.
    """
    project_id = ""
    entries: list[uploads.Entry] = []
    buffers: list[bytearray] = []
    limit = config.max_training_image_bytes

    def add(buffer: bytearray, entry: uploads.Entry, data: bytes) -> None:
        entry.size += len(data)
        if entry.size > limit:
            entry.too_large = True
            buffer.clear()
        else:
            buffer.extend(data)

    for message in messages:
        project_id = project_id or message.project_id
        part = message.WhichOneof("part")
        if part == "image":
            if len(entries) >= config.max_batch_images:
                validation.check_batch(len(entries) + 1, 0, config.max_batch_images,
                                       config.max_batch_tags)
            tags = _guids(message.image.tag_ids, "BadRequestImageTags")
            validation.check_batch(1, len(tags), config.max_batch_images, config.max_batch_tags)
            entry = uploads.Entry(message.image.name or f"image {len(entries)}", None, 0, tags)
            entries.append(entry)
            buffers.append(bytearray())
            add(buffers[-1], entry, message.image.data)
        elif part == "chunk":
            if not entries:
                raise BadRequest("a chunk came before any image", "BadRequestImageBatch")
            add(buffers[-1], entries[-1], message.chunk)
    if not project_id:
        raise BadRequest("project_id is required", "BadRequestRequiredParamIsNull")
    validation.check_batch(len(entries), 0, config.max_batch_images, config.max_batch_tags)
    for entry, buffer in zip(entries, buffers):
        entry.data = None if entry.too_large else bytes(buffer)
    return project_id, entries


class TrainingServicer(_Base, api_pb2_grpc.TrainingServicer):
    """loupe.v1.api.Training: training, iterations, publishing, stored predictions."""

    @_stream(TRAINING)
    def TrainProject(self, p: Principal, request: api.TrainProjectRequest, context):
        backends = self.ctx.backends
        it = iterations.train(
            backends, self.ctx.config, p.account_id, request.project_id,
            training_type=request.training_type,
            reserved_budget_in_hours=request.reserved_budget_in_hours,
            force_train=request.force_train,
            selected_tag_ids=_guids(request.selected_tag_ids, "BadRequestInvalidIds"),
        )
        event = convert.progress(it)
        yield event
        last = (event.stage, event.percent)
        while not event.finished and context.is_active():
            time.sleep(self.ctx.progress_poll_seconds)
            event = convert.progress(backends.get_iteration(p.account_id, request.project_id, it.id))
            if event.finished or (event.stage, event.percent) != last:
                last = (event.stage, event.percent)
                yield event

    @_call(TRAINING)
    def GetIteration(self, p: Principal, request: api.GetIterationRequest, context):
        it = self.ctx.backends.get_iteration(p.account_id, request.project_id,
                                             request.iteration_id)
        return api.GetIterationResponse(iteration=convert.iteration(it))

    @_call(TRAINING)
    def ListIterations(self, p: Principal, request: api.ListIterationsRequest, context):
        its = self.ctx.backends.list_iterations(p.account_id, request.project_id)
        return api.ListIterationsResponse(iterations=[convert.iteration(i) for i in its])

    @_call(TRAINING)
    def GetIterationPerformance(self, p: Principal,
                                request: api.GetIterationPerformanceRequest, context):
        threshold = request.threshold if request.HasField("threshold") else 0.5
        perf = iterations.iteration_performance(
            self.ctx.backends, p.account_id, request.project_id, request.iteration_id, threshold)
        return convert.performance(perf)

    @_call(TRAINING)
    def PublishIteration(self, p: Principal, request: api.PublishIterationRequest, context):
        it = iterations.publish(
            self.ctx.backends, p.account_id, request.project_id, request.iteration_id,
            request.publish_name, request.prediction_resource_id, request.overwrite)
        return api.PublishIterationResponse(iteration=convert.iteration(it))

    @_call(TRAINING)
    def UnpublishIteration(self, p: Principal, request: api.UnpublishIterationRequest, context):
        iterations.unpublish(self.ctx.backends, p.account_id, request.project_id,
                             request.iteration_id)
        return api.UnpublishIterationResponse()

    @_call(TRAINING)
    def QueryPredictions(self, p: Principal, request: api.QueryPredictionsRequest, context):
        # The REST PredictionQueryToken's fields, so both transports validate one way.
        token = {"iterationId": request.iteration_id, "application": request.application,
                 "maxCount": request.max_count, "continuation": request.continuation}
        page = stored.query(self.ctx.backends,
                            stored.query_request(token, p.account_id, request.project_id))
        return api.QueryPredictionsResponse(
            predictions=[convert.stored_prediction(x) for x in page.predictions],
            continuation=page.continuation)


class PredictionServicer(_Base, api_pb2_grpc.PredictionServicer):
    """loupe.v1.api.Prediction: classification with a published iteration (prediction key)."""

    def __init__(self, ctx: ApiContext, executor: futures.Executor):
        super().__init__(ctx)
        self._executor = executor

    def _classify(self, p: Principal, request: api.ClassifyImageRequest) -> api.ImagePrediction:
        cfg = self.ctx.config
        prediction.check_image(cfg, request.image)
        result, _types = prediction.classify(
            self.ctx.backends, p.account_id, request.project_id, request.publish_name,
            request.image, request.store, request.application)
        return convert.prediction(result)

    @_call(PREDICTION)
    def ClassifyImage(self, p: Principal, request: api.ClassifyImageRequest, context):
        return api.ClassifyImageResponse(prediction=self._classify(p, request))

    def _one(self, p: Principal, request: api.ClassifyImageRequest, bucket: list[str] | None
             ) -> api.ClassifyStreamResponse:
        out = api.ClassifyStreamResponse(correlation_id=request.correlation_id)
        try:
            if bucket is not None:  # every request of a stream after the first counts
                auth.check_rate(self.ctx.limiter, bucket)
            out.prediction.CopyFrom(self._classify(p, request))
        except LoupeError as err:
            out.error.CopyFrom(convert.classify_error(err))
        except Exception:  # noqa: BLE001 - one request's failure must not end the stream
            log.exception("unhandled error in ClassifyStream")
            out.error.CopyFrom(convert.classify_error(Internal("internal error", "Unknown")))
        return out

    @_stream(PREDICTION)
    def ClassifyStream(self, p: Principal, request_iterator, context):
        # A reader thread takes requests as they come and starts each at once (up to
        # `stream_window` in flight); answers go out in request order. Reading apart from
        # answering lets a client wait for each answer before sending the next request.
        window: queue.Queue = queue.Queue(maxsize=self.ctx.stream_window)
        done = object()

        def put(item) -> bool:
            while context.is_active():
                try:
                    window.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        key = auth.buckets(context.invocation_metadata())

        def read() -> None:
            try:
                for index, request in enumerate(_canonical(request_iterator)):
                    bucket = key if index else None  # the first was counted by authenticate
                    if not put(self._executor.submit(self._one, p, request, bucket)):
                        return
            except Exception:  # noqa: BLE001 - the client went away: the stream just ends
                pass
            put(done)

        threading.Thread(target=read, name="classify-stream-reader", daemon=True).start()
        while True:
            try:
                item = window.get(timeout=0.5)
            except queue.Empty:
                if not context.is_active():
                    return
                continue
            if item is done:
                return
            yield item.result()
