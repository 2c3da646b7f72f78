import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_KIND_UNSPECIFIED: _ClassVar[KeyKind]
    KEY_KIND_TRAINING: _ClassVar[KeyKind]
    KEY_KIND_PREDICTION: _ClassVar[KeyKind]
KEY_KIND_UNSPECIFIED: KeyKind
KEY_KIND_TRAINING: KeyKind
KEY_KIND_PREDICTION: KeyKind

class Account(_message.Message):
    __slots__ = ("id", "name", "training_key", "prediction_key", "prediction_resource_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRAINING_KEY_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_KEY_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    training_key: str
    prediction_key: str
    prediction_resource_id: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., training_key: _Optional[str] = ..., prediction_key: _Optional[str] = ..., prediction_resource_id: _Optional[str] = ...) -> None: ...

class CreateAccountRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class ResolveKeyRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class ResolveKeyResponse(_message.Message):
    __slots__ = ("account_id", "kind", "prediction_resource_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    kind: KeyKind
    prediction_resource_id: str
    def __init__(self, account_id: _Optional[str] = ..., kind: _Optional[_Union[KeyKind, str]] = ..., prediction_resource_id: _Optional[str] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("id", "account_id", "name", "description", "domain_id", "classification_type", "target_export_platforms", "created", "last_modified")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_EXPORT_PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    LAST_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    id: str
    account_id: str
    name: str
    description: str
    domain_id: str
    classification_type: str
    target_export_platforms: _containers.RepeatedScalarFieldContainer[str]
    created: _timestamp_pb2.Timestamp
    last_modified: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., account_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., domain_id: _Optional[str] = ..., classification_type: _Optional[str] = ..., target_export_platforms: _Optional[_Iterable[str]] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_modified: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateProjectRequest(_message.Message):
    __slots__ = ("account_id", "name", "description", "domain_id", "classification_type", "target_export_platforms", "id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_EXPORT_PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    name: str
    description: str
    domain_id: str
    classification_type: str
    target_export_platforms: _containers.RepeatedScalarFieldContainer[str]
    id: str
    def __init__(self, account_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., domain_id: _Optional[str] = ..., classification_type: _Optional[str] = ..., target_export_platforms: _Optional[_Iterable[str]] = ..., id: _Optional[str] = ...) -> None: ...

class CreateProjectResponse(_message.Message):
    __slots__ = ("project", "existed")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    project: Project
    existed: bool
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ..., existed: _Optional[bool] = ...) -> None: ...

class GetProjectRequest(_message.Message):
    __slots__ = ("account_id", "project_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class GetProjectResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: Project
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ...) -> None: ...

class ListProjectsRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class ListProjectsResponse(_message.Message):
    __slots__ = ("projects",)
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[Project]
    def __init__(self, projects: _Optional[_Iterable[_Union[Project, _Mapping]]] = ...) -> None: ...

class UpdateProjectRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "update_mask", "name", "description", "domain_id", "classification_type")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    update_mask: _containers.RepeatedScalarFieldContainer[str]
    name: str
    description: str
    domain_id: str
    classification_type: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., update_mask: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., domain_id: _Optional[str] = ..., classification_type: _Optional[str] = ...) -> None: ...

class UpdateProjectResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: Project
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ...) -> None: ...

class DeleteProjectRequest(_message.Message):
    __slots__ = ("account_id", "project_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class DeleteProjectResponse(_message.Message):
    __slots__ = ("image_sha256", "artifact_keys")
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_KEYS_FIELD_NUMBER: _ClassVar[int]
    image_sha256: _containers.RepeatedScalarFieldContainer[str]
    artifact_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, image_sha256: _Optional[_Iterable[str]] = ..., artifact_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("id", "project_id", "name", "description", "type", "image_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    name: str
    description: str
    type: str
    image_count: int
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., type: _Optional[str] = ..., image_count: _Optional[int] = ...) -> None: ...

class CreateTagRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "name", "description", "type", "id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    name: str
    description: str
    type: str
    id: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., type: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class CreateTagResponse(_message.Message):
    __slots__ = ("tag", "existed")
    TAG_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    tag: Tag
    existed: bool
    def __init__(self, tag: _Optional[_Union[Tag, _Mapping]] = ..., existed: _Optional[bool] = ...) -> None: ...

class GetTagRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "tag_id", "iteration_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    tag_id: str
    iteration_id: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., tag_id: _Optional[str] = ..., iteration_id: _Optional[str] = ...) -> None: ...

class GetTagResponse(_message.Message):
    __slots__ = ("tag",)
    TAG_FIELD_NUMBER: _ClassVar[int]
    tag: Tag
    def __init__(self, tag: _Optional[_Union[Tag, _Mapping]] = ...) -> None: ...

class ListTagsRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "iteration_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    iteration_id: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ...) -> None: ...

class ListTagsResponse(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    def __init__(self, tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ...) -> None: ...

class DeleteTagRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "tag_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    tag_id: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., tag_id: _Optional[str] = ...) -> None: ...

class DeleteTagResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateTagRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "tag_id", "update_mask", "name", "description", "type")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    tag_id: str
    update_mask: _containers.RepeatedScalarFieldContainer[str]
    name: str
    description: str
    type: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., tag_id: _Optional[str] = ..., update_mask: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class UpdateTagResponse(_message.Message):
    __slots__ = ("tag",)
    TAG_FIELD_NUMBER: _ClassVar[int]
    tag: Tag
    def __init__(self, tag: _Optional[_Union[Tag, _Mapping]] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("id", "project_id", "sha256", "width", "height", "content_type", "size_bytes", "created", "tags", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    sha256: str
    width: int
    height: int
    content_type: str
    size_bytes: int
    created: _timestamp_pb2.Timestamp
    tags: _containers.RepeatedCompositeFieldContainer[ImageTag]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., sha256: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tags: _Optional[_Iterable[_Union[ImageTag, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ImageTag(_message.Message):
    __slots__ = ("tag_id", "tag_name", "created")
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    tag_id: str
    tag_name: str
    created: _timestamp_pb2.Timestamp
    def __init__(self, tag_id: _Optional[str] = ..., tag_name: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NewImage(_message.Message):
    __slots__ = ("sha256", "width", "height", "content_type", "size_bytes", "tag_ids", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SHA256_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TAG_IDS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    width: int
    height: int
    content_type: str
    size_bytes: int
    tag_ids: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, sha256: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., tag_ids: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AddImagesRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "images")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    images: _containers.RepeatedCompositeFieldContainer[NewImage]
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., images: _Optional[_Iterable[_Union[NewImage, _Mapping]]] = ...) -> None: ...

class AddedImage(_message.Message):
    __slots__ = ("status", "image")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    status: str
    image: Image
    def __init__(self, status: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class AddImagesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AddedImage]
    def __init__(self, results: _Optional[_Iterable[_Union[AddedImage, _Mapping]]] = ...) -> None: ...

class ListImagesRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "tagging_status", "tag_ids", "order_by", "take", "skip", "image_ids", "iteration_id", "metadata_filter")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TAGGING_STATUS_FIELD_NUMBER: _ClassVar[int]
    TAG_IDS_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    TAKE_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FILTER_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    tagging_status: str
    tag_ids: _containers.RepeatedScalarFieldContainer[str]
    order_by: str
    take: int
    skip: int
    image_ids: _containers.RepeatedScalarFieldContainer[str]
    iteration_id: str
    metadata_filter: MetadataFilter
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., tagging_status: _Optional[str] = ..., tag_ids: _Optional[_Iterable[str]] = ..., order_by: _Optional[str] = ..., take: _Optional[int] = ..., skip: _Optional[int] = ..., image_ids: _Optional[_Iterable[str]] = ..., iteration_id: _Optional[str] = ..., metadata_filter: _Optional[_Union[MetadataFilter, _Mapping]] = ...) -> None: ...

class MetadataFilter(_message.Message):
    __slots__ = ("comparison", "all", "any")
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    comparison: MetadataComparison
    all: MetadataFilterList
    any: MetadataFilterList
    def __init__(self, comparison: _Optional[_Union[MetadataComparison, _Mapping]] = ..., all: _Optional[_Union[MetadataFilterList, _Mapping]] = ..., any: _Optional[_Union[MetadataFilterList, _Mapping]] = ...) -> None: ...

class MetadataFilterList(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedCompositeFieldContainer[MetadataFilter]
    def __init__(self, filters: _Optional[_Iterable[_Union[MetadataFilter, _Mapping]]] = ...) -> None: ...

class MetadataComparison(_message.Message):
    __slots__ = ("key", "op", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    op: str
    value: str
    def __init__(self, key: _Optional[str] = ..., op: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class ListImagesResponse(_message.Message):
    __slots__ = ("images", "total")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    total: int
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class DeleteImagesRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "image_ids", "all")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    image_ids: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., image_ids: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ...) -> None: ...

class DeleteImagesResponse(_message.Message):
    __slots__ = ("orphaned_sha256",)
    ORPHANED_SHA256_FIELD_NUMBER: _ClassVar[int]
    orphaned_sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, orphaned_sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class ImageTagLink(_message.Message):
    __slots__ = ("image_id", "tag_id")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    tag_id: str
    def __init__(self, image_id: _Optional[str] = ..., tag_id: _Optional[str] = ...) -> None: ...

class AddImageTagsRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "links", "max_tags_per_image")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    MAX_TAGS_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    links: _containers.RepeatedCompositeFieldContainer[ImageTagLink]
    max_tags_per_image: int
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., links: _Optional[_Iterable[_Union[ImageTagLink, _Mapping]]] = ..., max_tags_per_image: _Optional[int] = ...) -> None: ...

class AddImageTagsResponse(_message.Message):
    __slots__ = ("created", "duplicated", "exceeded")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATED_FIELD_NUMBER: _ClassVar[int]
    EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    created: _containers.RepeatedCompositeFieldContainer[ImageTagLink]
    duplicated: _containers.RepeatedCompositeFieldContainer[ImageTagLink]
    exceeded: _containers.RepeatedCompositeFieldContainer[ImageTagLink]
    def __init__(self, created: _Optional[_Iterable[_Union[ImageTagLink, _Mapping]]] = ..., duplicated: _Optional[_Iterable[_Union[ImageTagLink, _Mapping]]] = ..., exceeded: _Optional[_Iterable[_Union[ImageTagLink, _Mapping]]] = ...) -> None: ...

class DeleteImageTagsRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "image_ids", "tag_ids")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    TAG_IDS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    image_ids: _containers.RepeatedScalarFieldContainer[str]
    tag_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., image_ids: _Optional[_Iterable[str]] = ..., tag_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteImageTagsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateImageMetadataRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "image_ids", "metadata", "max_keys_per_image")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MAX_KEYS_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    image_ids: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    max_keys_per_image: int
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., image_ids: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., max_keys_per_image: _Optional[int] = ...) -> None: ...

class ImageMetadataResult(_message.Message):
    __slots__ = ("image_id", "status", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    status: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, image_id: _Optional[str] = ..., status: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UpdateImageMetadataResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ImageMetadataResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ImageMetadataResult, _Mapping]]] = ...) -> None: ...

class TagPerformance(_message.Message):
    __slots__ = ("tag_id", "name", "precision", "precision_std_deviation", "recall", "recall_std_deviation", "average_precision", "image_count")
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    PRECISION_STD_DEVIATION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    RECALL_STD_DEVIATION_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRECISION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    tag_id: str
    name: str
    precision: float
    precision_std_deviation: float
    recall: float
    recall_std_deviation: float
    average_precision: float
    image_count: int
    def __init__(self, tag_id: _Optional[str] = ..., name: _Optional[str] = ..., precision: _Optional[float] = ..., precision_std_deviation: _Optional[float] = ..., recall: _Optional[float] = ..., recall_std_deviation: _Optional[float] = ..., average_precision: _Optional[float] = ..., image_count: _Optional[int] = ...) -> None: ...

class Performance(_message.Message):
    __slots__ = ("threshold", "precision", "precision_std_deviation", "recall", "recall_std_deviation", "average_precision", "per_tag")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    PRECISION_STD_DEVIATION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    RECALL_STD_DEVIATION_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRECISION_FIELD_NUMBER: _ClassVar[int]
    PER_TAG_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    precision: float
    precision_std_deviation: float
    recall: float
    recall_std_deviation: float
    average_precision: float
    per_tag: _containers.RepeatedCompositeFieldContainer[TagPerformance]
    def __init__(self, threshold: _Optional[float] = ..., precision: _Optional[float] = ..., precision_std_deviation: _Optional[float] = ..., recall: _Optional[float] = ..., recall_std_deviation: _Optional[float] = ..., average_precision: _Optional[float] = ..., per_tag: _Optional[_Iterable[_Union[TagPerformance, _Mapping]]] = ...) -> None: ...

class Iteration(_message.Message):
    __slots__ = ("id", "project_id", "name", "status", "created", "last_modified", "trained_at", "domain_id", "classification_type", "training_type", "reserved_budget_in_hours", "training_time_in_minutes", "publish_name", "prediction_resource_id", "artifact_key", "error_message", "progress_stage", "progress_percent", "evaluation", "performance", "evaluation_image_ids", "progress_eta_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    LAST_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    TRAINED_AT_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_BUDGET_IN_HOURS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TIME_IN_MINUTES_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_NAME_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_KEY_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    name: str
    status: str
    created: _timestamp_pb2.Timestamp
    last_modified: _timestamp_pb2.Timestamp
    trained_at: _timestamp_pb2.Timestamp
    domain_id: str
    classification_type: str
    training_type: str
    reserved_budget_in_hours: float
    training_time_in_minutes: int
    publish_name: str
    prediction_resource_id: str
    artifact_key: str
    error_message: str
    progress_stage: str
    progress_percent: float
    evaluation: bytes
    performance: Performance
    evaluation_image_ids: _containers.RepeatedScalarFieldContainer[str]
    progress_eta_seconds: float
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_modified: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trained_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., domain_id: _Optional[str] = ..., classification_type: _Optional[str] = ..., training_type: _Optional[str] = ..., reserved_budget_in_hours: _Optional[float] = ..., training_time_in_minutes: _Optional[int] = ..., publish_name: _Optional[str] = ..., prediction_resource_id: _Optional[str] = ..., artifact_key: _Optional[str] = ..., error_message: _Optional[str] = ..., progress_stage: _Optional[str] = ..., progress_percent: _Optional[float] = ..., evaluation: _Optional[bytes] = ..., performance: _Optional[_Union[Performance, _Mapping]] = ..., evaluation_image_ids: _Optional[_Iterable[str]] = ..., progress_eta_seconds: _Optional[float] = ...) -> None: ...

class CreateIterationRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "training_type", "reserved_budget_in_hours", "force_train", "selected_tag_ids", "min_images_per_tag", "job_topic")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_BUDGET_IN_HOURS_FIELD_NUMBER: _ClassVar[int]
    FORCE_TRAIN_FIELD_NUMBER: _ClassVar[int]
    SELECTED_TAG_IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_IMAGES_PER_TAG_FIELD_NUMBER: _ClassVar[int]
    JOB_TOPIC_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    training_type: str
    reserved_budget_in_hours: float
    force_train: bool
    selected_tag_ids: _containers.RepeatedScalarFieldContainer[str]
    min_images_per_tag: int
    job_topic: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., training_type: _Optional[str] = ..., reserved_budget_in_hours: _Optional[float] = ..., force_train: _Optional[bool] = ..., selected_tag_ids: _Optional[_Iterable[str]] = ..., min_images_per_tag: _Optional[int] = ..., job_topic: _Optional[str] = ...) -> None: ...

class CreateIterationResponse(_message.Message):
    __slots__ = ("iteration",)
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ...) -> None: ...

class GetIterationRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "iteration_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    iteration_id: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ...) -> None: ...

class GetIterationResponse(_message.Message):
    __slots__ = ("iteration",)
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ...) -> None: ...

class ListIterationsRequest(_message.Message):
    __slots__ = ("account_id", "project_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class ListIterationsResponse(_message.Message):
    __slots__ = ("iterations",)
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    iterations: _containers.RepeatedCompositeFieldContainer[Iteration]
    def __init__(self, iterations: _Optional[_Iterable[_Union[Iteration, _Mapping]]] = ...) -> None: ...

class DeleteIterationRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "iteration_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    iteration_id: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ...) -> None: ...

class DeleteIterationResponse(_message.Message):
    __slots__ = ("artifact_key",)
    ARTIFACT_KEY_FIELD_NUMBER: _ClassVar[int]
    artifact_key: str
    def __init__(self, artifact_key: _Optional[str] = ...) -> None: ...

class UpdateIterationRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "iteration_id", "name")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    iteration_id: str
    name: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class UpdateIterationResponse(_message.Message):
    __slots__ = ("iteration",)
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ...) -> None: ...

class GetTrainingSetRequest(_message.Message):
    __slots__ = ("iteration_id",)
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    def __init__(self, iteration_id: _Optional[str] = ...) -> None: ...

class TrainingImage(_message.Message):
    __slots__ = ("image_id", "sha256", "tag_ids")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TAG_IDS_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    sha256: str
    tag_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, image_id: _Optional[str] = ..., sha256: _Optional[str] = ..., tag_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetTrainingSetResponse(_message.Message):
    __slots__ = ("iteration", "tags", "images")
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    images: _containers.RepeatedCompositeFieldContainer[TrainingImage]
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ..., images: _Optional[_Iterable[_Union[TrainingImage, _Mapping]]] = ...) -> None: ...

class ReportProgressRequest(_message.Message):
    __slots__ = ("iteration_id", "stage", "percent", "eta_seconds")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    stage: str
    percent: float
    eta_seconds: float
    def __init__(self, iteration_id: _Optional[str] = ..., stage: _Optional[str] = ..., percent: _Optional[float] = ..., eta_seconds: _Optional[float] = ...) -> None: ...

class ReportProgressResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartTrainingAttemptRequest(_message.Message):
    __slots__ = ("iteration_id",)
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    def __init__(self, iteration_id: _Optional[str] = ...) -> None: ...

class StartTrainingAttemptResponse(_message.Message):
    __slots__ = ("attempts",)
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    def __init__(self, attempts: _Optional[int] = ...) -> None: ...

class FinishIterationRequest(_message.Message):
    __slots__ = ("iteration_id", "status", "artifact_key", "error_message", "evaluation", "performance", "training_seconds", "evaluation_image_ids")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_KEY_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    status: str
    artifact_key: str
    error_message: str
    evaluation: bytes
    performance: Performance
    training_seconds: float
    evaluation_image_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, iteration_id: _Optional[str] = ..., status: _Optional[str] = ..., artifact_key: _Optional[str] = ..., error_message: _Optional[str] = ..., evaluation: _Optional[bytes] = ..., performance: _Optional[_Union[Performance, _Mapping]] = ..., training_seconds: _Optional[float] = ..., evaluation_image_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class FinishIterationResponse(_message.Message):
    __slots__ = ("iteration", "already_finished")
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    ALREADY_FINISHED_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    already_finished: bool
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ..., already_finished: _Optional[bool] = ...) -> None: ...

class MarkTrainingJobSentRequest(_message.Message):
    __slots__ = ("iteration_id",)
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    def __init__(self, iteration_id: _Optional[str] = ...) -> None: ...

class MarkTrainingJobSentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClaimTrainingJobsRequest(_message.Message):
    __slots__ = ("unsent_seconds", "limit")
    UNSENT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    unsent_seconds: float
    limit: int
    def __init__(self, unsent_seconds: _Optional[float] = ..., limit: _Optional[int] = ...) -> None: ...

class PendingTrainingJob(_message.Message):
    __slots__ = ("iteration_id", "project_id", "account_id", "training_type", "reserved_budget_in_hours", "topic", "created", "resends")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_BUDGET_IN_HOURS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    RESENDS_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    project_id: str
    account_id: str
    training_type: str
    reserved_budget_in_hours: float
    topic: str
    created: _timestamp_pb2.Timestamp
    resends: int
    def __init__(self, iteration_id: _Optional[str] = ..., project_id: _Optional[str] = ..., account_id: _Optional[str] = ..., training_type: _Optional[str] = ..., reserved_budget_in_hours: _Optional[float] = ..., topic: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resends: _Optional[int] = ...) -> None: ...

class ClaimTrainingJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[PendingTrainingJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[PendingTrainingJob, _Mapping]]] = ...) -> None: ...

class FailStaleIterationsRequest(_message.Message):
    __slots__ = ("untouched_seconds", "limit")
    UNTOUCHED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    untouched_seconds: float
    limit: int
    def __init__(self, untouched_seconds: _Optional[float] = ..., limit: _Optional[int] = ...) -> None: ...

class FailStaleIterationsResponse(_message.Message):
    __slots__ = ("iteration_ids",)
    ITERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    iteration_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, iteration_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PublishIterationRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "iteration_id", "publish_name", "prediction_resource_id", "overwrite")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_NAME_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    iteration_id: str
    publish_name: str
    prediction_resource_id: str
    overwrite: bool
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., publish_name: _Optional[str] = ..., prediction_resource_id: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class PublishIterationResponse(_message.Message):
    __slots__ = ("iteration",)
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ...) -> None: ...

class UnpublishIterationRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "iteration_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    iteration_id: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ...) -> None: ...

class UnpublishIterationResponse(_message.Message):
    __slots__ = ("iteration",)
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ...) -> None: ...

class GetPublishedIterationRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "publish_name")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_NAME_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    publish_name: str
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., publish_name: _Optional[str] = ...) -> None: ...

class GetPublishedIterationResponse(_message.Message):
    __slots__ = ("iteration", "tags")
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    iteration: Iteration
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    def __init__(self, iteration: _Optional[_Union[Iteration, _Mapping]] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ...) -> None: ...

class PredictedTag(_message.Message):
    __slots__ = ("tag_id", "tag_name", "probability")
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_NAME_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    tag_id: str
    tag_name: str
    probability: float
    def __init__(self, tag_id: _Optional[str] = ..., tag_name: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class StoredPrediction(_message.Message):
    __slots__ = ("id", "project_id", "iteration_id", "image_sha256", "width", "height", "application", "created", "predictions")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    iteration_id: str
    image_sha256: str
    width: int
    height: int
    application: str
    created: _timestamp_pb2.Timestamp
    predictions: _containers.RepeatedCompositeFieldContainer[PredictedTag]
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., iteration_id: _Optional[str] = ..., image_sha256: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., application: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., predictions: _Optional[_Iterable[_Union[PredictedTag, _Mapping]]] = ...) -> None: ...

class RecordPredictionRequest(_message.Message):
    __slots__ = ("prediction",)
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    prediction: StoredPrediction
    def __init__(self, prediction: _Optional[_Union[StoredPrediction, _Mapping]] = ...) -> None: ...

class RecordPredictionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPredictionsRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "max_count")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    max_count: int
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., max_count: _Optional[int] = ...) -> None: ...

class ListPredictionsResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[StoredPrediction]
    def __init__(self, predictions: _Optional[_Iterable[_Union[StoredPrediction, _Mapping]]] = ...) -> None: ...

class PredictionTagFilter(_message.Message):
    __slots__ = ("tag_id", "min_threshold", "max_threshold")
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    tag_id: str
    min_threshold: float
    max_threshold: float
    def __init__(self, tag_id: _Optional[str] = ..., min_threshold: _Optional[float] = ..., max_threshold: _Optional[float] = ...) -> None: ...

class QueryPredictionsRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "tags", "iteration_id", "start_time", "end_time", "order_by", "max_count", "continuation", "application", "ids")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    tags: _containers.RepeatedCompositeFieldContainer[PredictionTagFilter]
    iteration_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    order_by: str
    max_count: int
    continuation: str
    application: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., tags: _Optional[_Iterable[_Union[PredictionTagFilter, _Mapping]]] = ..., iteration_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., order_by: _Optional[str] = ..., max_count: _Optional[int] = ..., continuation: _Optional[str] = ..., application: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryPredictionsResponse(_message.Message):
    __slots__ = ("predictions", "continuation")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[StoredPrediction]
    continuation: str
    def __init__(self, predictions: _Optional[_Iterable[_Union[StoredPrediction, _Mapping]]] = ..., continuation: _Optional[str] = ...) -> None: ...

class DeletePredictionsRequest(_message.Message):
    __slots__ = ("account_id", "project_id", "ids")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    project_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, account_id: _Optional[str] = ..., project_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeletePredictionsResponse(_message.Message):
    __slots__ = ("orphaned_sha256",)
    ORPHANED_SHA256_FIELD_NUMBER: _ClassVar[int]
    orphaned_sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, orphaned_sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class ExpirePredictionsRequest(_message.Message):
    __slots__ = ("before", "limit")
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    before: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class OrphanedImage(_message.Message):
    __slots__ = ("project_id", "sha256")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    sha256: str
    def __init__(self, project_id: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class ExpirePredictionsResponse(_message.Message):
    __slots__ = ("deleted", "orphaned")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    ORPHANED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    orphaned: _containers.RepeatedCompositeFieldContainer[OrphanedImage]
    def __init__(self, deleted: _Optional[int] = ..., orphaned: _Optional[_Iterable[_Union[OrphanedImage, _Mapping]]] = ...) -> None: ...

class ExistingProjectsRequest(_message.Message):
    __slots__ = ("project_ids",)
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    project_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ExistingProjectsResponse(_message.Message):
    __slots__ = ("project_ids",)
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    project_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ReferencedImagesRequest(_message.Message):
    __slots__ = ("project_id", "sha256")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_id: _Optional[str] = ..., sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class ReferencedImagesResponse(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class StoredPredictionQuotaRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class StoredPredictionQuotaResponse(_message.Message):
    __slots__ = ("limit", "stored")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    limit: int
    stored: int
    def __init__(self, limit: _Optional[int] = ..., stored: _Optional[int] = ...) -> None: ...

class ImageHashesRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class ImageHashesResponse(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteImagesByHashRequest(_message.Message):
    __slots__ = ("project_id", "sha256")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_id: _Optional[str] = ..., sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteImagesByHashResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class ExistingIterationsRequest(_message.Message):
    __slots__ = ("project_id", "iteration_ids")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    iteration_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_id: _Optional[str] = ..., iteration_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ExistingIterationsResponse(_message.Message):
    __slots__ = ("iteration_ids",)
    ITERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    iteration_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, iteration_ids: _Optional[_Iterable[str]] = ...) -> None: ...
