"""The internal gRPC plane is closed: against the running test stack, every method of every
internal server found by server reflection (at the addresses `.loupe/env` lists in
LOUPE_GRPC_INTERNAL_TARGETS) refuses a caller without the internal credential, with a wrong one,
and with the credential of a role its allowlist does not name. A new RPC cannot be forgotten:
reflection finds it, and an RPC missing from its server's table is refused to every role."""
from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from loupe.v1 import storage_pb2 as spb
from loupe_common import internal_auth
from loupe_metadata import access as metadata_access
from loupe_prediction import access as prediction_access
from loupe_storage import access as storage_access
from loupe_training import access as training_access

pytestmark = pytest.mark.service

#: Every internal server's allowlist, by the service it serves.
ALLOW = {**metadata_access.ALLOW, **storage_access.ALLOW, **training_access.ALLOW,
         **prediction_access.ALLOW}
NOT_LOUPE = internal_auth.EXEMPT_SERVICES


@pytest.fixture(scope="module")
def storage_target(live) -> str:
    return live.layout.addr("storage")


@pytest.fixture(scope="module")
def targets(live_env) -> list[str]:
    targets = live_env["LOUPE_GRPC_INTERNAL_TARGETS"].split(",")
    assert len(targets) == 4
    return targets


def _methods(channel) -> list[tuple[str, object]]:
    """(service name, method descriptor) of every method reflection lists, health and
    reflection excepted."""
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = DescriptorPool(database)
    found = []
    for name in database.get_services():
        if name in NOT_LOUPE:
            continue
        found += [(name, m) for m in pool.FindServiceByName(name).methods]
    return found


def _call(channel, service: str, method, metadata) -> grpc.StatusCode:
    """Calls `method` with an empty request; the status it ends with."""
    path = f"/{service}/{method.name}"
    kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
            (True, False): channel.stream_unary, (True, True): channel.stream_stream}[
        (method.client_streaming, method.server_streaming)]
    call = kind(path, request_serializer=None, response_deserializer=None)
    request = iter([b""]) if method.client_streaming else b""
    try:
        result = call(request, timeout=10, metadata=metadata)
        if method.server_streaming:
            list(result)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_every_internal_server_serves_reflection_and_health_without_a_credential(targets):
    served = set()
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            names = set(ProtoReflectionDescriptorDatabase(channel).get_services())
            assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
            ours = names - NOT_LOUPE
            assert len(ours) == 1, names
            served |= ours
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=next(iter(ours))), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert served == set(ALLOW)


def test_every_method_refuses_a_caller_without_a_valid_credential(targets, internal_secret):
    forged = internal_auth.credential("not this install's secret", internal_auth.GATEWAY)
    relabelled = "gateway." + internal_auth.token(internal_secret, internal_auth.TRAINING)
    checked = 0
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            for service, method in _methods(channel):
                for metadata in ((), ((internal_auth.METADATA_KEY, forged),),
                                 ((internal_auth.METADATA_KEY, relabelled),),
                                 ((internal_auth.METADATA_KEY, "gateway"),),
                                 (("training-key", "0" * 32), ("prediction-key", "0" * 32))):
                    got = _call(channel, service, method, metadata)
                    assert got == grpc.StatusCode.UNAUTHENTICATED, (service, method.name, metadata, got)
                checked += 1
    assert checked == sum(len(methods) for methods in ALLOW.values())


def test_every_method_refuses_a_role_its_allowlist_does_not_name(targets, credentials):
    checked = 0
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            for service, method in _methods(channel):
                allowed = ALLOW[service][method.name]
                for role in sorted(internal_auth.ROLES - allowed):
                    got = _call(channel, service, method, ((internal_auth.METADATA_KEY, credentials[role]),))
                    assert got == grpc.StatusCode.PERMISSION_DENIED, (service, method.name, role, got)
                    checked += 1
    # Only GetObject is open to every role (narrowed by key roots instead).
    assert checked >= sum(len(m) for m in ALLOW.values()) - 1


def test_an_allowed_role_reaches_the_servicer(storage_target, credentials):
    # A valid credential of an allowed role gets past the interceptor: the servicer answers.
    with grpc.insecure_channel(storage_target) as channel:
        stub = channel.unary_unary(f"/{storage_access.SERVICE_NAME}/GetObject",
                                   request_serializer=spb.GetObjectRequest.SerializeToString,
                                   response_deserializer=spb.GetObjectResponse.FromString)
        with pytest.raises(grpc.RpcError) as err:
            stub(spb.GetObjectRequest(key=f"artifacts/{uuid.uuid4()}/none.npz"), timeout=10,
                 metadata=((internal_auth.METADATA_KEY, credentials[internal_auth.PREDICTION]),))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("role,method,request_", [
    # Only a trainer writes models; the prediction service reads nothing but models.
    (internal_auth.GATEWAY, "PutObject", spb.PutObjectRequest(key=f"artifacts/{uuid.uuid4()}/x/head.npz", data=b"x")),
    (internal_auth.PREDICTION, "GetObject", spb.GetObjectRequest(key=f"exports/{uuid.uuid4()}/x/ONNX.zip")),
    (internal_auth.TRAINING, "DeleteObjects", spb.DeleteObjectsRequest(prefix=f"exports/{uuid.uuid4()}/")),
])
def test_storage_refuses_keys_outside_the_callers_roots(storage_target, credentials, role, method, request_):
    with grpc.insecure_channel(storage_target) as channel:
        stub = channel.unary_unary(f"/{storage_access.SERVICE_NAME}/{method}",
                                   request_serializer=type(request_).SerializeToString,
                                   response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as err:
            stub(request_, timeout=10, metadata=((internal_auth.METADATA_KEY, credentials[role]),))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()


@pytest.mark.parametrize("prefix", ["artifacts", "artifacts/", "exports/", "exports/not-a-project/"])
def test_storage_never_deletes_a_whole_root(storage_target, credentials, prefix):
    # DeleteObjects(prefix="artifacts") once passed the key check and would have wiped every model.
    with grpc.insecure_channel(storage_target) as channel:
        stub = channel.unary_unary(f"/{storage_access.SERVICE_NAME}/DeleteObjects",
                                   request_serializer=spb.DeleteObjectsRequest.SerializeToString,
                                   response_deserializer=spb.DeleteObjectsResponse.FromString)
        with pytest.raises(grpc.RpcError) as err:
            stub(spb.DeleteObjectsRequest(prefix=prefix), timeout=10,
                 metadata=((internal_auth.METADATA_KEY, credentials[internal_auth.GATEWAY]),))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_torchserve_registers_no_archive_over_its_management_api(infra):
    # Registering an archive runs its code: the model API is off, the backbone loaded at start.
    import requests

    from loupe_model.archive import model_name
    from loupe_model.backbone import BACKBONES

    management = f"http://{infra.layout.addr('torchserve_management')}"
    refused = requests.post(f"{management}/models", params={"url": "elsewhere.mar"}, timeout=10)
    assert refused.status_code == 405, refused.text
    assert requests.get(f"{management}/models/{model_name(BACKBONES['lite0'])}", timeout=10).status_code == 200
