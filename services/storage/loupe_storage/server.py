"""The storage server factory, shared by `python -m loupe_storage` and the service tests."""
from __future__ import annotations

import dataclasses
import os

import certifi
import urllib3
from minio import Minio

from loupe.v1 import storage_pb2, storage_pb2_grpc
from loupe_common import internal_tls
from loupe_common.grpcserver import BuiltServer, create_server
from loupe_common.internal_auth import Policy
from loupe_storage import access
from loupe_storage.config import StorageConfig
from loupe_storage.core import Store
from loupe_storage.servicer import StorageServicer

SERVICE_NAME = storage_pb2.DESCRIPTOR.services_by_name["StorageService"].full_name


@dataclasses.dataclass
class StorageDeps:
    """What the storage service talks to: S3 / MinIO."""

    minio: Minio


#: Seconds to connect to the object store, and to wait for each read of an answer: the MinIO
#: SDK's own default is five minutes each, which would hold a request (and its thread) that long.
S3_CONNECT_TIMEOUT = 5.0
S3_READ_TIMEOUT = 60.0


def connect(config: StorageConfig) -> StorageDeps:
    """A MinIO client for `config`'s endpoint and keys (connects lazily)."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=S3_CONNECT_TIMEOUT, read=S3_READ_TIMEOUT),
        maxsize=16, cert_reqs="CERT_REQUIRED", ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return StorageDeps(Minio(
        config.s3_endpoint,
        access_key=config.s3_access_key,
        secret_key=config.s3_secret_key,
        secure=config.s3_secure,
        http_client=http,
    ))


def build_server(config: StorageConfig, deps: StorageDeps | None = None) -> BuiltServer:
    """Builds the (not yet started) storage gRPC server; makes the bucket if it is missing.

    Args:
        config: the service configuration; an address with port 0 picks a free port.
        deps: the MinIO client to use; None connects one from `config`.
    Returns:
        the bound server, not started.
    """
    deps = deps or connect(config)
    store = Store(deps.minio, config.s3_bucket)
    store.ensure_bucket()
    server, port, health = create_server(
        [lambda s: storage_pb2_grpc.add_StorageServiceServicer_to_server(StorageServicer(store), s)],
        host=config.host, port=config.port, service_names=[SERVICE_NAME],
        auth=Policy(config.internal_secret, access.ALLOW),
        tls=internal_tls.load(config), health_port=config.health_port,
    )
    return BuiltServer(server, port, health, "storage")
