"""Who may call which storage RPC, and under which key roots (loupe_common.internal_auth).

Two tables: the methods each role may call, and for the object RPCs (keys chosen by the
caller) the roots of the keys each role may touch. A trainer writes models and features and
builds exports; the prediction service reads models and stores predicted images; the gateway
does the rest for end users. A trainer cannot overwrite an image, the prediction service cannot
write a model.
"""
from __future__ import annotations

import grpc

from loupe.v1 import storage_pb2
from loupe_common.errors import LoupeError
from loupe_common.internal_auth import GATEWAY, PREDICTION, TRAINING, table
from loupe_common.storage_keys import ARTIFACTS, EXPORTS, FEATURES

SERVICE_NAME = storage_pb2.DESCRIPTOR.services_by_name["StorageService"].full_name

ALLOW = {SERVICE_NAME: table(
    PutImage=(GATEWAY, PREDICTION),  # uploads; the recorder's stored predictions
    GetImage=(GATEWAY, TRAINING),
    DeleteImageData=(GATEWAY, PREDICTION),  # deletes; retention of stored predictions
    PutObject=(GATEWAY, TRAINING),
    GetObject=(GATEWAY, TRAINING, PREDICTION),
    DeleteObjects=(GATEWAY, TRAINING),
    DeleteProjectData=(GATEWAY,),  # a deleted project's every object
    ListProjectIds=(GATEWAY,), ListImageData=(GATEWAY,),  # the reconciler's orphan sweep
    ListIterationIds=(GATEWAY,),
    FindImageData=(GATEWAY,),  # an upload's check that the bytes it reused are still there
)}

#: method -> role -> key roots that role may name (keys and DeleteObjects prefixes).
OBJECT_ROOTS: dict[str, dict[str, tuple[str, ...]]] = {
    "PutObject": {
        GATEWAY: (EXPORTS,),  # export status records, project export manifests
        TRAINING: (ARTIFACTS, FEATURES, EXPORTS),  # heads, cached features, iteration exports
    },
    "GetObject": {
        GATEWAY: (ARTIFACTS, EXPORTS),
        TRAINING: (ARTIFACTS, FEATURES),
        PREDICTION: (ARTIFACTS,),
    },
    "DeleteObjects": {
        GATEWAY: (ARTIFACTS, EXPORTS),  # a deleted iteration's or project's model and exports
        TRAINING: (ARTIFACTS,),  # the head of an iteration deleted while it trained
    },
}


class KeyRefused(LoupeError):
    """A key outside the caller's roots: the request is well formed, the caller may not make it."""

    http_status = 403
    grpc_status = grpc.StatusCode.PERMISSION_DENIED
    default_code = "Forbidden"


def check_keys(method: str, role: str, keys: list[str]) -> None:
    """Checks that `role` may name every one of `keys` (object keys or a prefix) in `method`.

    Raises:
        KeyRefused: a key outside the role's roots (every key, for a role with none).
    """
    roots = OBJECT_ROOTS.get(method, {}).get(role, ())
    for key in keys:
        if not roots or not key.startswith(roots):
            raise KeyRefused(f"{method}: role {role!r} may not use key {key!r}")
