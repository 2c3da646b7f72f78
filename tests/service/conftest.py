"""Fixtures of the service tier: Loupe's own services built in-process with their
`build_server(config, deps=None)` on port 0, against the test stack's real infrastructure."""
from __future__ import annotations

import uuid

import pytest

from loupe.v1 import storage_pb2_grpc
from loupe_common import config as cfg
from loupe_common import internal_auth
from loupe_common.clients import ServiceClient
from loupe_metadata.config import MetadataConfig
from loupe_metadata.migrate import migrate
from loupe_metadata.server import build_server as build_metadata
from loupe_storage.config import StorageConfig
from loupe_storage.server import build_server as build_storage


@pytest.fixture(scope="module")
def metadata_addr(postgres_dsn, internal_secret) -> str:
    """host:port of an in-process metadata service on the test database."""
    migrate(postgres_dsn)
    built = build_metadata(cfg.load(MetadataConfig, {
        "LOUPE_POSTGRES_DSN": postgres_dsn, "LOUPE_METADATA_ADDR": "127.0.0.1:0",
        "LOUPE_INTERNAL_SECRET": internal_secret}))
    built.start()
    yield f"127.0.0.1:{built.port}"
    built.stop(None)


@pytest.fixture(scope="module")
def storage_addr(s3_config, internal_secret) -> str:
    """host:port of an in-process storage service on a bucket of its own in the test MinIO."""
    built = build_storage(cfg.load(StorageConfig, dict(
        s3_config, LOUPE_STORAGE_ADDR="127.0.0.1:0", LOUPE_S3_BUCKET="test-" + uuid.uuid4().hex[:12],
        LOUPE_INTERNAL_SECRET=internal_secret)))
    built.start()
    yield f"127.0.0.1:{built.port}"
    built.stop(None)


@pytest.fixture(scope="module")
def storage_client(storage_addr, credentials):
    """The storage service as the gateway calls it (reads exports, deletes models)."""
    client = ServiceClient(storage_addr, storage_pb2_grpc.StorageServiceStub, timeout=120,
                           credential=credentials[internal_auth.GATEWAY])
    yield client
    client.close()


@pytest.fixture(scope="module")
def trainer_storage(storage_addr, credentials):
    """The storage service as a trainer calls it (the only role that writes models)."""
    client = ServiceClient(storage_addr, storage_pb2_grpc.StorageServiceStub, timeout=120,
                           credential=credentials[internal_auth.TRAINING])
    yield client
    client.close()
