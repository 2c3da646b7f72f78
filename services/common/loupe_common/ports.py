"""Every Loupe service's ports, in one table.

The services' configuration defaults (`LOUPE_<SERVICE>_ADDR`, `LOUPE_GATEWAY_PORT`), the Helm
chart's values (tests/unit/test_ports.py checks they agree) and the local stack's layout
(deploy/local/loupe_stack/layout.py: base port + offset) all come from here.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ServicePorts:
    """The ports of one service.

    Args:
        main: the gRPC port (the gateway's: its HTTP port, which also serves /metrics).
        grpc: the public gRPC API's port (only the gateway serves one; docs/grpc.md).
        metrics: the Prometheus /metrics port in the image and the chart (None: on `main`).
            The services leave metrics off unless LOUPE_METRICS_PORT names a port.
        local_offset: offset of `main` from the local stack's base port; a metrics port is at
            `local_offset + LOCAL_METRICS_OFFSET`.
    """

    main: int
    metrics: int | None
    local_offset: int
    grpc: int | None = None


#: Offset of a service's metrics port from its main port's offset in the local stack.
LOCAL_METRICS_OFFSET = 10
#: Offset of the gateway's public gRPC port from its main port's offset in the local stack.
LOCAL_GRPC_OFFSET = 5

SERVICES: dict[str, ServicePorts] = {
    "gateway": ServicePorts(main=8080, metrics=None, local_offset=0, grpc=50050),
    "metadata": ServicePorts(main=50051, metrics=9101, local_offset=1),
    "storage": ServicePorts(main=50052, metrics=9102, local_offset=2),
    "training": ServicePorts(main=50053, metrics=9103, local_offset=3),
    "prediction": ServicePorts(main=50054, metrics=9104, local_offset=4),
}

#: Where a service binds by default: loopback, so a bare `python -m loupe_<svc>` is never
#: reachable from outside; the chart and the local stack set the address.
DEFAULT_HOST = "127.0.0.1"


def default_addr(service: str) -> str:
    """`127.0.0.1:<gRPC port>` of `service`: the default of its LOUPE_<SERVICE>_ADDR."""
    return f"{DEFAULT_HOST}:{SERVICES[service].main}"


def local_offsets() -> dict[str, int]:
    """Offsets from the local stack's base port: `<svc>` and `<svc>_metrics` for each service,
    `<svc>_grpc` for the one with a public gRPC API."""
    offsets = {}
    for name, ports in SERVICES.items():
        offsets[name] = ports.local_offset
        if ports.metrics is not None:
            offsets[f"{name}_metrics"] = ports.local_offset + LOCAL_METRICS_OFFSET
        if ports.grpc is not None:
            offsets[f"{name}_grpc"] = ports.local_offset + LOCAL_GRPC_OFFSET
    return offsets
