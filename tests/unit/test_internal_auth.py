"""The internal credential and the per-server allowlists (loupe_common.internal_auth and each
service's access table): pure logic, no server."""
from __future__ import annotations

import pytest

from loupe.v1 import metadata_pb2, prediction_pb2, storage_pb2, training_pb2
from loupe_common import internal_auth as ia
from loupe_common.errors import BadRequest
from loupe_metadata import access as metadata_access
from loupe_prediction import access as prediction_access
from loupe_storage import access as storage_access
from loupe_storage.core import Store
from loupe_training import access as training_access

pytestmark = pytest.mark.unit

SECRET = "s3cret-of-this-install"
POLICY = ia.Policy(SECRET, {"loupe.v1.X": ia.table(Read=(ia.GATEWAY, ia.TRAINING), Write=(ia.GATEWAY,))})


def test_a_credential_proves_its_role_under_its_secret_only():
    for role in ia.ROLES:
        assert ia.verify(SECRET, ia.credential(SECRET, role)) == role
        assert ia.verify("another install", ia.credential(SECRET, role)) is None
    assert ia.credential(SECRET, ia.GATEWAY) != ia.credential(SECRET, ia.TRAINING)


def test_a_token_cannot_be_relabelled_with_another_role():
    training_token = ia.credential(SECRET, ia.TRAINING).partition(".")[2]
    assert ia.verify(SECRET, f"gateway.{training_token}") is None


@pytest.mark.parametrize("value", [None, "", "gateway", "gateway.", ".abc", "gateway.0000",
                                   "root." + ia.token(SECRET, "root"), "Gateway." + ia.token(SECRET, "gateway")])
def test_malformed_or_unknown_credentials_prove_nothing(value):
    assert ia.verify(SECRET, value) is None


def test_no_credential_for_an_unknown_role_or_an_empty_secret():
    with pytest.raises(ValueError):
        ia.credential(SECRET, "admin")
    with pytest.raises(ValueError):
        ia.credential("", ia.GATEWAY)
    with pytest.raises(ValueError):
        ia.Policy("", {})
    with pytest.raises(ValueError):
        ia.Policy(SECRET, {"loupe.v1.X": ia.table(Read=("admin",))})


def test_the_policy_decides_unauthenticated_then_permission_denied():
    gateway, training = ia.credential(SECRET, ia.GATEWAY), ia.credential(SECRET, ia.TRAINING)
    assert POLICY.decide("/loupe.v1.X/Write", None).code == "UNAUTHENTICATED"
    assert POLICY.decide("/loupe.v1.X/Write", ia.credential("other", ia.GATEWAY)).code == "UNAUTHENTICATED"
    assert POLICY.decide("/loupe.v1.X/Write", training) == ia.Decision(
        "PERMISSION_DENIED", ia.TRAINING, "internal RPC Write: role 'training' may not call it")
    assert POLICY.decide("/loupe.v1.X/Write", gateway).allowed
    assert POLICY.decide("/loupe.v1.X/Read", training) == ia.Decision("OK", ia.TRAINING)
    # A method or service the table does not name is closed to every role.
    assert POLICY.decide("/loupe.v1.X/New", gateway).code == "PERMISSION_DENIED"
    assert POLICY.decide("/loupe.v1.Y/Read", gateway).code == "PERMISSION_DENIED"
    assert POLICY.decide("/loupe.v1.Y/Read", None).code == "UNAUTHENTICATED"


@pytest.mark.parametrize("method", ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
                                    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"])
def test_health_and_reflection_need_no_credential(method):
    assert POLICY.decide(method, None).allowed


def test_role_of_reads_the_role_from_call_metadata():
    cred = ia.credential(SECRET, ia.PREDICTION)
    assert ia.role_of([("user-agent", "x"), (ia.METADATA_KEY, cred)]) == ia.PREDICTION
    assert ia.role_of([(ia.METADATA_KEY, cred.encode())]) == ia.PREDICTION
    assert ia.role_of([]) == ""


TABLES = [
    (metadata_pb2, "MetadataService", metadata_access.ALLOW),
    (storage_pb2, "StorageService", storage_access.ALLOW),
    (training_pb2, "TrainingService", training_access.ALLOW),
    (prediction_pb2, "PredictionService", prediction_access.ALLOW),
]


@pytest.mark.parametrize("module,service,allow", TABLES, ids=[t[1] for t in TABLES])
def test_every_rpc_of_every_service_is_in_its_table(module, service, allow):
    descriptor = module.DESCRIPTOR.services_by_name[service]
    assert set(allow) == {descriptor.full_name}
    assert set(allow[descriptor.full_name]) == {m.name for m in descriptor.methods}
    assert all(allow[descriptor.full_name].values()), "a listed RPC names at least one role"
    ia.Policy(SECRET, allow)  # every role in it is known


def test_who_may_do_what_in_the_tables():
    md = metadata_access.ALLOW[metadata_access.SERVICE_NAME]
    assert md["CreateAccount"] == md["ResolveKey"] == {ia.GATEWAY}
    assert md["GetTrainingSet"] == md["ReportProgress"] == {ia.TRAINING}
    assert md["RecordPrediction"] == md["ExpirePredictions"] == {ia.PREDICTION}
    st = storage_access.ALLOW[storage_access.SERVICE_NAME]
    # The gateway deletes for users; the prediction service's retention, expired images.
    assert st["DeleteImageData"] == {ia.GATEWAY, ia.PREDICTION}
    assert ia.PREDICTION not in st["PutObject"] | st["DeleteObjects"]
    for allow in (training_access.ALLOW, prediction_access.ALLOW):
        assert all(roles == {ia.GATEWAY} for roles in next(iter(allow.values())).values())


@pytest.mark.parametrize("method,role,key", [
    ("PutObject", ia.TRAINING, "artifacts/p/i/head.npz"),
    ("PutObject", ia.TRAINING, "features/ms1/p/abc"),
    ("PutObject", ia.TRAINING, "exports/p/i/ONNX.zip"),
    ("PutObject", ia.GATEWAY, "exports/p/i/ONNX.json"),
    ("GetObject", ia.PREDICTION, "artifacts/p/i/head.npz"),
    ("DeleteObjects", ia.GATEWAY, "exports/p/"),
])
def test_object_keys_inside_the_roles_roots_pass(method, role, key):
    storage_access.check_keys(method, role, [key])


@pytest.mark.parametrize("method,role,key", [
    ("PutObject", ia.GATEWAY, "artifacts/p/i/head.npz"),  # only a trainer writes models
    ("PutObject", ia.PREDICTION, "artifacts/p/i/head.npz"),
    ("PutObject", ia.TRAINING, "models/x"),
    ("GetObject", ia.PREDICTION, "exports/p/i/ONNX.zip"),
    ("DeleteObjects", ia.TRAINING, "exports/p/"),
    ("DeleteObjects", ia.PREDICTION, "artifacts/p/i/head.npz"),
    ("GetObject", "", "artifacts/p/i/head.npz"),  # no role: nothing
])
def test_object_keys_outside_the_roles_roots_are_refused(method, role, key):
    with pytest.raises(storage_access.KeyRefused) as err:
        storage_access.check_keys(method, role, [key])
    assert err.value.grpc_status.name == "PERMISSION_DENIED"


P = "0b4a9c1e-8a52-4d1b-9a86-cf0b8f3c1d2e"


@pytest.mark.parametrize("prefix", ["artifacts", "artifacts/", "exports/", f"exports/{P}",
                                    "features/ms1/", f"images/{P}/", "exports/not-a-uuid/"])
def test_a_prefix_delete_must_name_one_project(prefix):
    # Refused before the store is touched (no client at all here).
    with pytest.raises(BadRequest):
        Store(None, "bucket").delete_objects([], prefix)
