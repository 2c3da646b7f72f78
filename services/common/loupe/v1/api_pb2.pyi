import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Project(_message.Message):
    __slots__ = ("id", "name", "description", "domain_id", "classification_type", "created", "last_modified")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    LAST_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    domain_id: str
    classification_type: str
    created: _timestamp_pb2.Timestamp
    last_modified: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., domain_id: _Optional[str] = ..., classification_type: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_modified: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("id", "name", "description", "type", "image_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    type: str
    image_count: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., type: _Optional[str] = ..., image_count: _Optional[int] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("id", "width", "height", "tag_ids", "created", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TAG_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    width: int
    height: int
    tag_ids: _containers.RepeatedScalarFieldContainer[str]
    created: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., tag_ids: _Optional[_Iterable[str]] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Iteration(_message.Message):
    __slots__ = ("id", "name", "status", "created", "trained_at", "training_type", "publish_name", "error_message")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    TRAINED_AT_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TYPE_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    status: str
    created: _timestamp_pb2.Timestamp
    trained_at: _timestamp_pb2.Timestamp
    training_type: str
    publish_name: str
    error_message: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trained_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., training_type: _Optional[str] = ..., publish_name: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class TagPerformance(_message.Message):
    __slots__ = ("tag_id", "tag_name", "precision", "precision_std_deviation", "recall", "recall_std_deviation", "average_precision")
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_NAME_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    PRECISION_STD_DEVIATION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    RECALL_STD_DEVIATION_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRECISION_FIELD_NUMBER: _ClassVar[int]
    tag_id: str
    tag_name: str
    precision: float
    precision_std_deviation: float
    recall: float
    recall_std_deviation: float
    average_precision: float
    def __init__(self, tag_id: _Optional[str] = ..., tag_name: _Optional[str] = ..., precision: _Optional[float] = ..., precision_std_deviation: _Optional[float] = ..., recall: _Optional[float] = ..., recall_std_deviation: _Optional[float] = ..., average_precision: _Optional[float] = ...) -> None: ...

class TagProbability(_message.Message):
    __slots__ = ("tag_id", "tag_name", "probability")
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_NAME_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    tag_id: str
    tag_name: str
    probability: float
    def __init__(self, tag_id: _Optional[str] = ..., tag_name: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class ImagePrediction(_message.Message):
    __slots__ = ("id", "iteration_id", "created", "predictions")
    ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    iteration_id: str
    created: _timestamp_pb2.Timestamp
    predictions: _containers.RepeatedCompositeFieldContainer[TagProbability]
    def __init__(self, id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., predictions: _Optional[_Iterable[_Union[TagProbability, _Mapping]]] = ...) -> None: ...

class StoredPrediction(_message.Message):
    __slots__ = ("id", "iteration_id", "application", "created", "width", "height", "predictions")
    ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    iteration_id: str
    application: str
    created: _timestamp_pb2.Timestamp
    width: int
    height: int
    predictions: _containers.RepeatedCompositeFieldContainer[TagProbability]
    def __init__(self, id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., application: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., predictions: _Optional[_Iterable[_Union[TagProbability, _Mapping]]] = ...) -> None: ...

class CreateProjectRequest(_message.Message):
    __slots__ = ("name", "description", "domain_id", "classification_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    domain_id: str
    classification_type: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., domain_id: _Optional[str] = ..., classification_type: _Optional[str] = ...) -> None: ...

class CreateProjectResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: Project
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ...) -> None: ...

class ListProjectsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProjectsResponse(_message.Message):
    __slots__ = ("projects",)
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[Project]
    def __init__(self, projects: _Optional[_Iterable[_Union[Project, _Mapping]]] = ...) -> None: ...

class GetProjectRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class GetProjectResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: Project
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ...) -> None: ...

class DeleteProjectRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class DeleteProjectResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateTagRequest(_message.Message):
    __slots__ = ("project_id", "name", "description", "type")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    name: str
    description: str
    type: str
    def __init__(self, project_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class CreateTagResponse(_message.Message):
    __slots__ = ("tag",)
    TAG_FIELD_NUMBER: _ClassVar[int]
    tag: Tag
    def __init__(self, tag: _Optional[_Union[Tag, _Mapping]] = ...) -> None: ...

class ListTagsRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class ListTagsResponse(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    def __init__(self, tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ...) -> None: ...

class DeleteTagRequest(_message.Message):
    __slots__ = ("project_id", "tag_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    tag_id: str
    def __init__(self, project_id: _Optional[str] = ..., tag_id: _Optional[str] = ...) -> None: ...

class DeleteTagResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UploadImagesRequest(_message.Message):
    __slots__ = ("project_id", "image", "chunk")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    image: NewImage
    chunk: bytes
    def __init__(self, project_id: _Optional[str] = ..., image: _Optional[_Union[NewImage, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class NewImage(_message.Message):
    __slots__ = ("name", "tag_ids", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAG_IDS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    tag_ids: _containers.RepeatedScalarFieldContainer[str]
    data: bytes
    def __init__(self, name: _Optional[str] = ..., tag_ids: _Optional[_Iterable[str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ImageCreateResult(_message.Message):
    __slots__ = ("name", "status", "image")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: str
    image: Image
    def __init__(self, name: _Optional[str] = ..., status: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class UploadImagesResponse(_message.Message):
    __slots__ = ("is_batch_successful", "images")
    IS_BATCH_SUCCESSFUL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    is_batch_successful: bool
    images: _containers.RepeatedCompositeFieldContainer[ImageCreateResult]
    def __init__(self, is_batch_successful: _Optional[bool] = ..., images: _Optional[_Iterable[_Union[ImageCreateResult, _Mapping]]] = ...) -> None: ...

class ListImagesRequest(_message.Message):
    __slots__ = ("project_id", "tagging_status", "tag_ids", "take", "skip")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TAGGING_STATUS_FIELD_NUMBER: _ClassVar[int]
    TAG_IDS_FIELD_NUMBER: _ClassVar[int]
    TAKE_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    tagging_status: str
    tag_ids: _containers.RepeatedScalarFieldContainer[str]
    take: int
    skip: int
    def __init__(self, project_id: _Optional[str] = ..., tagging_status: _Optional[str] = ..., tag_ids: _Optional[_Iterable[str]] = ..., take: _Optional[int] = ..., skip: _Optional[int] = ...) -> None: ...

class ListImagesResponse(_message.Message):
    __slots__ = ("images", "total")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    total: int
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class TrainProjectRequest(_message.Message):
    __slots__ = ("project_id", "training_type", "reserved_budget_in_hours", "force_train", "selected_tag_ids")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_BUDGET_IN_HOURS_FIELD_NUMBER: _ClassVar[int]
    FORCE_TRAIN_FIELD_NUMBER: _ClassVar[int]
    SELECTED_TAG_IDS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    training_type: str
    reserved_budget_in_hours: float
    force_train: bool
    selected_tag_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_id: _Optional[str] = ..., training_type: _Optional[str] = ..., reserved_budget_in_hours: _Optional[float] = ..., force_train: _Optional[bool] = ..., selected_tag_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TrainingProgress(_message.Message):
    __slots__ = ("iteration", "stage", "percent", "eta_seconds", "finished")
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    stage: str
    percent: float
    eta_seconds: float
    finished: bool
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ..., stage: _Optional[str] = ..., percent: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., finished: _Optional[bool] = ...) -> None: ...

class GetIterationRequest(_message.Message):
    __slots__ = ("project_id", "iteration_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    iteration_id: str
    def __init__(self, project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ...) -> None: ...

class GetIterationResponse(_message.Message):
    __slots__ = ("iteration",)
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ...) -> None: ...

class ListIterationsRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class ListIterationsResponse(_message.Message):
    __slots__ = ("iterations",)
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    iterations: _containers.RepeatedCompositeFieldContainer[Iteration]
    def __init__(self, iterations: _Optional[_Iterable[_Union[Iteration, _Mapping]]] = ...) -> None: ...

class GetIterationPerformanceRequest(_message.Message):
    __slots__ = ("project_id", "iteration_id", "threshold")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    iteration_id: str
    threshold: float
    def __init__(self, project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., threshold: _Optional[float] = ...) -> None: ...

class GetIterationPerformanceResponse(_message.Message):
    __slots__ = ("precision", "precision_std_deviation", "recall", "recall_std_deviation", "average_precision", "per_tag")
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    PRECISION_STD_DEVIATION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    RECALL_STD_DEVIATION_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRECISION_FIELD_NUMBER: _ClassVar[int]
    PER_TAG_FIELD_NUMBER: _ClassVar[int]
    precision: float
    precision_std_deviation: float
    recall: float
    recall_std_deviation: float
    average_precision: float
    per_tag: _containers.RepeatedCompositeFieldContainer[TagPerformance]
    def __init__(self, precision: _Optional[float] = ..., precision_std_deviation: _Optional[float] = ..., recall: _Optional[float] = ..., recall_std_deviation: _Optional[float] = ..., average_precision: _Optional[float] = ..., per_tag: _Optional[_Iterable[_Union[TagPerformance, _Mapping]]] = ...) -> None: ...

class PublishIterationRequest(_message.Message):
    __slots__ = ("project_id", "iteration_id", "publish_name", "prediction_resource_id", "overwrite")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_NAME_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    iteration_id: str
    publish_name: str
    prediction_resource_id: str
    overwrite: bool
    def __init__(self, project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., publish_name: _Optional[str] = ..., prediction_resource_id: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class PublishIterationResponse(_message.Message):
    __slots__ = ("iteration",)
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ...) -> None: ...

class UnpublishIterationRequest(_message.Message):
    __slots__ = ("project_id", "iteration_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    iteration_id: str
    def __init__(self, project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ...) -> None: ...

class UnpublishIterationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryPredictionsRequest(_message.Message):
    __slots__ = ("project_id", "iteration_id", "application", "max_count", "continuation")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    iteration_id: str
    application: str
    max_count: int
    continuation: str
    def __init__(self, project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., application: _Optional[str] = ..., max_count: _Optional[int] = ..., continuation: _Optional[str] = ...) -> None: ...

class QueryPredictionsResponse(_message.Message):
    __slots__ = ("predictions", "continuation")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[StoredPrediction]
    continuation: str
    def __init__(self, predictions: _Optional[_Iterable[_Union[StoredPrediction, _Mapping]]] = ..., continuation: _Optional[str] = ...) -> None: ...

class ClassifyImageRequest(_message.Message):
    __slots__ = ("project_id", "publish_name", "image", "store", "application", "correlation_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    publish_name: str
    image: bytes
    store: bool
    application: str
    correlation_id: str
    def __init__(self, project_id: _Optional[str] = ..., publish_name: _Optional[str] = ..., image: _Optional[bytes] = ..., store: _Optional[bool] = ..., application: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class ClassifyImageResponse(_message.Message):
    __slots__ = ("prediction",)
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    prediction: ImagePrediction
    def __init__(self, prediction: _Optional[_Union[ImagePrediction, _Mapping]] = ...) -> None: ...

class ClassifyError(_message.Message):
    __slots__ = ("status", "code", "message")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    status: str
    code: str
    message: str
    def __init__(self, status: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ClassifyStreamResponse(_message.Message):
    __slots__ = ("correlation_id", "prediction", "error")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    prediction: ImagePrediction
    error: ClassifyError
    def __init__(self, correlation_id: _Optional[str] = ..., prediction: _Optional[_Union[ImagePrediction, _Mapping]] = ..., error: _Optional[_Union[ClassifyError, _Mapping]] = ...) -> None: ...
