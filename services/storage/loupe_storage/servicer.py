"""gRPC servicer: protobuf in, core call, protobuf out; object keys checked against the
caller's roots (access.OBJECT_ROOTS) first."""
from __future__ import annotations

from loupe.v1 import storage_pb2 as pb
from loupe.v1 import storage_pb2_grpc as pbg
from loupe_common.internal_auth import role_of
from loupe_storage.access import check_keys
from loupe_storage.core import Store, check_key

_VARIANTS = {
    pb.IMAGE_VARIANT_UNSPECIFIED: "original",
    pb.IMAGE_VARIANT_ORIGINAL: "original",
    pb.IMAGE_VARIANT_RESIZED: "resized",
    pb.IMAGE_VARIANT_THUMBNAIL: "thumbnail",
}


class StorageServicer(pbg.StorageServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    def PutImage(self, request, context):
        sha, existed, token = self.store.put_image(request.project_id, request.data, request.content_type)
        return pb.PutImageResponse(sha256=sha, existed=existed, size_bytes=len(request.data),
                                   write_token=token)

    def GetImage(self, request, context):
        data, ctype = self.store.get_image(request.project_id, request.sha256, _VARIANTS[request.variant])
        return pb.GetImageResponse(data=data, content_type=ctype)

    def DeleteImageData(self, request, context):
        n = self.store.delete_images(request.project_id, list(request.sha256), request.all,
                                     request.older_than_seconds, list(request.write_tokens))
        return pb.DeleteImageDataResponse(deleted=n)

    def ListIterationIds(self, request, context):
        return pb.ListIterationIdsResponse(
            iteration_ids=self.store.list_iteration_ids(request.project_id))

    def FindImageData(self, request, context):
        return pb.FindImageDataResponse(
            sha256=self.store.find_images(request.project_id, list(request.sha256)))

    def ListProjectIds(self, request, context):
        return pb.ListProjectIdsResponse(project_ids=self.store.list_project_ids())

    def ListImageData(self, request, context):
        return pb.ListImageDataResponse(
            sha256=self.store.list_image_data(request.project_id, request.older_than_seconds))

    def PutObject(self, request, context):
        _check_allowed("PutObject", context, [request.key])
        n = self.store.put_object(request.key, request.data, request.content_type)
        return pb.PutObjectResponse(size_bytes=n)

    def GetObject(self, request, context):
        _check_allowed("GetObject", context, [request.key])
        data, ctype = self.store.get_object(request.key)
        return pb.GetObjectResponse(data=data, content_type=ctype)

    def DeleteObjects(self, request, context):
        _check_allowed("DeleteObjects", context,
                       list(request.keys) + ([request.prefix] if request.prefix else []))
        return pb.DeleteObjectsResponse(deleted=self.store.delete_objects(list(request.keys), request.prefix))

    def DeleteProjectData(self, request, context):
        return pb.DeleteProjectDataResponse(deleted=self.store.delete_project(request.project_id))


def _check_allowed(method: str, context, keys: list[str]) -> None:
    """A malformed key is INVALID_ARGUMENT whoever asks; a well-formed one outside the caller's
    roots PERMISSION_DENIED."""
    for key in keys:
        check_key(key if not key.endswith("/") else key + "x")
    check_keys(method, role_of(context.invocation_metadata()), keys)
