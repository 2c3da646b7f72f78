"""Builds the public gRPC API's server (loupe_common.grpcserver.create_server: grpc.health.v1
and server reflection included). It authenticates callers by
their API keys (`auth.py`), never by Loupe's internal credentials."""
from __future__ import annotations

from concurrent import futures

from loupe.v1 import api_pb2, api_pb2_grpc
from loupe_common.grpcserver import BuiltServer, create_server
from loupe_gateway.grpcapi.servicer import (
    ApiContext, PredictionServicer, ProjectsServicer, TrainingServicer,
)

#: The public services' full names (health reports each SERVING).
SERVICE_NAMES = tuple(s.full_name for s in api_pb2.DESCRIPTOR.services_by_name.values())
#: Calls handled at once: streams (TrainProject, ClassifyStream) hold a thread each.
MAX_WORKERS = 32


def build_server(ctx: ApiContext, host: str, port: int) -> BuiltServer:
    """The public API's server, bound but not started.

    Args:
        ctx: the gateway's configuration, backends, key resolver and rate limiter.
        host, port: where to listen (port 0 picks a free one).
    Returns:
        The BuiltServer (`port` tells the bound port); `after_stop` ends the ClassifyStream
        workers.
    """
    executor = futures.ThreadPoolExecutor(max_workers=MAX_WORKERS,
                                          thread_name_prefix="classify-stream")
    register = [
        lambda s: api_pb2_grpc.add_ProjectsServicer_to_server(ProjectsServicer(ctx), s),
        lambda s: api_pb2_grpc.add_TrainingServicer_to_server(TrainingServicer(ctx), s),
        lambda s: api_pb2_grpc.add_PredictionServicer_to_server(
            PredictionServicer(ctx, executor), s),
    ]
    server, bound, health = create_server(register, host=host, port=port,
                                          max_workers=MAX_WORKERS, service_names=SERVICE_NAMES)
    return BuiltServer(server, bound, health, "public gRPC API",
                       after_stop=lambda: executor.shutdown(wait=False, cancel_futures=True))
