import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadIterationRequest(_message.Message):
    __slots__ = ("project_id", "iteration_id", "artifact_key")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_KEY_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    iteration_id: str
    artifact_key: str
    def __init__(self, project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., artifact_key: _Optional[str] = ...) -> None: ...

class LoadIterationResponse(_message.Message):
    __slots__ = ("backbone",)
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    backbone: str
    def __init__(self, backbone: _Optional[str] = ...) -> None: ...

class UnloadIterationRequest(_message.Message):
    __slots__ = ("iteration_id",)
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    def __init__(self, iteration_id: _Optional[str] = ...) -> None: ...

class UnloadIterationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TagProbability(_message.Message):
    __slots__ = ("tag_id", "tag_name", "probability")
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_NAME_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    tag_id: str
    tag_name: str
    probability: float
    def __init__(self, tag_id: _Optional[str] = ..., tag_name: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("project_id", "iteration_id", "artifact_key", "image", "store", "application")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_KEY_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    iteration_id: str
    artifact_key: str
    image: bytes
    store: bool
    application: str
    def __init__(self, project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., artifact_key: _Optional[str] = ..., image: _Optional[bytes] = ..., store: _Optional[bool] = ..., application: _Optional[str] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("prediction_id", "project_id", "iteration_id", "created", "predictions")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    project_id: str
    iteration_id: str
    created: _timestamp_pb2.Timestamp
    predictions: _containers.RepeatedCompositeFieldContainer[TagProbability]
    def __init__(self, prediction_id: _Optional[str] = ..., project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., predictions: _Optional[_Iterable[_Union[TagProbability, _Mapping]]] = ...) -> None: ...

class PredictionRecord(_message.Message):
    __slots__ = ("prediction_id", "project_id", "iteration_id", "image", "application", "created", "predictions")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    project_id: str
    iteration_id: str
    image: bytes
    application: str
    created: _timestamp_pb2.Timestamp
    predictions: _containers.RepeatedCompositeFieldContainer[TagProbability]
    def __init__(self, prediction_id: _Optional[str] = ..., project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., image: _Optional[bytes] = ..., application: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., predictions: _Optional[_Iterable[_Union[TagProbability, _Mapping]]] = ...) -> None: ...
