from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageVariant(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_VARIANT_UNSPECIFIED: _ClassVar[ImageVariant]
    IMAGE_VARIANT_ORIGINAL: _ClassVar[ImageVariant]
    IMAGE_VARIANT_RESIZED: _ClassVar[ImageVariant]
    IMAGE_VARIANT_THUMBNAIL: _ClassVar[ImageVariant]
IMAGE_VARIANT_UNSPECIFIED: ImageVariant
IMAGE_VARIANT_ORIGINAL: ImageVariant
IMAGE_VARIANT_RESIZED: ImageVariant
IMAGE_VARIANT_THUMBNAIL: ImageVariant

class PutImageRequest(_message.Message):
    __slots__ = ("project_id", "data", "content_type")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    data: bytes
    content_type: str
    def __init__(self, project_id: _Optional[str] = ..., data: _Optional[bytes] = ..., content_type: _Optional[str] = ...) -> None: ...

class PutImageResponse(_message.Message):
    __slots__ = ("sha256", "existed", "size_bytes", "write_token")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WRITE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    existed: bool
    size_bytes: int
    write_token: str
    def __init__(self, sha256: _Optional[str] = ..., existed: _Optional[bool] = ..., size_bytes: _Optional[int] = ..., write_token: _Optional[str] = ...) -> None: ...

class GetImageRequest(_message.Message):
    __slots__ = ("project_id", "sha256", "variant")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    sha256: str
    variant: ImageVariant
    def __init__(self, project_id: _Optional[str] = ..., sha256: _Optional[str] = ..., variant: _Optional[_Union[ImageVariant, str]] = ...) -> None: ...

class GetImageResponse(_message.Message):
    __slots__ = ("data", "content_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    content_type: str
    def __init__(self, data: _Optional[bytes] = ..., content_type: _Optional[str] = ...) -> None: ...

class DeleteImageDataRequest(_message.Message):
    __slots__ = ("project_id", "sha256", "all", "older_than_seconds", "write_tokens")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    sha256: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    older_than_seconds: float
    write_tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_id: _Optional[str] = ..., sha256: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ..., older_than_seconds: _Optional[float] = ..., write_tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteImageDataResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class PutObjectRequest(_message.Message):
    __slots__ = ("key", "data", "content_type")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    key: str
    data: bytes
    content_type: str
    def __init__(self, key: _Optional[str] = ..., data: _Optional[bytes] = ..., content_type: _Optional[str] = ...) -> None: ...

class PutObjectResponse(_message.Message):
    __slots__ = ("size_bytes",)
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    def __init__(self, size_bytes: _Optional[int] = ...) -> None: ...

class GetObjectRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class GetObjectResponse(_message.Message):
    __slots__ = ("data", "content_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    content_type: str
    def __init__(self, data: _Optional[bytes] = ..., content_type: _Optional[str] = ...) -> None: ...

class DeleteObjectsRequest(_message.Message):
    __slots__ = ("keys", "prefix")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    prefix: str
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., prefix: _Optional[str] = ...) -> None: ...

class DeleteObjectsResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class DeleteProjectDataRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class DeleteProjectDataResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class ListProjectIdsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProjectIdsResponse(_message.Message):
    __slots__ = ("project_ids",)
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    project_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListImageDataRequest(_message.Message):
    __slots__ = ("project_id", "older_than_seconds")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    older_than_seconds: float
    def __init__(self, project_id: _Optional[str] = ..., older_than_seconds: _Optional[float] = ...) -> None: ...

class ListImageDataResponse(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class ListIterationIdsRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class ListIterationIdsResponse(_message.Message):
    __slots__ = ("iteration_ids",)
    ITERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    iteration_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, iteration_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class FindImageDataRequest(_message.Message):
    __slots__ = ("project_id", "sha256")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_id: _Optional[str] = ..., sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class FindImageDataResponse(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sha256: _Optional[_Iterable[str]] = ...) -> None: ...
