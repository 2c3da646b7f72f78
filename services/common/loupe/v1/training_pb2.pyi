import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingJob(_message.Message):
    __slots__ = ("iteration_id", "project_id", "account_id", "training_type", "reserved_budget_in_hours", "requested_at")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_BUDGET_IN_HOURS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    project_id: str
    account_id: str
    training_type: str
    reserved_budget_in_hours: float
    requested_at: _timestamp_pb2.Timestamp
    def __init__(self, iteration_id: _Optional[str] = ..., project_id: _Optional[str] = ..., account_id: _Optional[str] = ..., training_type: _Optional[str] = ..., reserved_budget_in_hours: _Optional[float] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrainingEvent(_message.Message):
    __slots__ = ("iteration_id", "project_id", "stage", "percent", "eta_seconds", "message", "trainer_id", "time")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRAINER_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    project_id: str
    stage: str
    percent: float
    eta_seconds: float
    message: str
    trainer_id: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, iteration_id: _Optional[str] = ..., project_id: _Optional[str] = ..., stage: _Optional[str] = ..., percent: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., message: _Optional[str] = ..., trainer_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DescribeTrainerRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeTrainerResponse(_message.Message):
    __slots__ = ("trainer_id", "device", "current_iteration_id", "jobs_completed", "assigned_partitions")
    TRAINER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    JOBS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    trainer_id: str
    device: str
    current_iteration_id: str
    jobs_completed: int
    assigned_partitions: int
    def __init__(self, trainer_id: _Optional[str] = ..., device: _Optional[str] = ..., current_iteration_id: _Optional[str] = ..., jobs_completed: _Optional[int] = ..., assigned_partitions: _Optional[int] = ...) -> None: ...

class ExportIterationRequest(_message.Message):
    __slots__ = ("project_id", "iteration_id", "artifact_key", "platform", "flavor")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_KEY_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    iteration_id: str
    artifact_key: str
    platform: str
    flavor: str
    def __init__(self, project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., artifact_key: _Optional[str] = ..., platform: _Optional[str] = ..., flavor: _Optional[str] = ...) -> None: ...

class ExportIterationResponse(_message.Message):
    __slots__ = ("export_key", "size_bytes")
    EXPORT_KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    export_key: str
    size_bytes: int
    def __init__(self, export_key: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...
