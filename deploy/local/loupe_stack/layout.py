"""Where everything lives and which port each process listens on."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from loupe_common import ports

REPO = Path(__file__).resolve().parents[3]

#: Offsets from the base port. One table for every address of the local stack: Loupe's own
#: services come from the one table of their ports (loupe_common.ports), the infrastructure follows.
PORT_OFFSETS = {
    **ports.local_offsets(),
    "postgres": 20,
    "minio": 21,
    "minio_console": 22,
    "kafka": 23,
    "kafka_controller": 24,
    "torchserve_inference": 25,
    "torchserve_management": 26,
    "torchserve_metrics": 27,
    # TorchServe 0.12 always opens its gRPC ports (default 7070/7071, clashing between stacks).
    "torchserve_grpc_inference": 28,
    "torchserve_grpc_management": 29,
}

DEFAULT_BASE_PORT = 7500


def cache_dir() -> Path:
    """Built and downloaded things shared by every data folder (MinIO binary, Kafka jars, models)."""
    return Path(os.environ.get("LOUPE_CACHE", Path.home() / ".cache" / "loupe"))


@dataclasses.dataclass(frozen=True)
class Layout:
    data: Path
    base_port: int = DEFAULT_BASE_PORT
    host: str = "127.0.0.1"

    def port(self, name: str) -> int:
        return self.base_port + PORT_OFFSETS[name]

    def addr(self, name: str) -> str:
        return f"{self.host}:{self.port(name)}"

    @property
    def run(self) -> Path:
        return self.data / "run"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def supervisor_conf(self) -> Path:
        return self.data / "supervisord.conf"

    @property
    def supervisor_sock(self) -> Path:
        return self.run / "supervisor.sock"

    @property
    def env_file(self) -> Path:
        return self.data / "env"

    @property
    def secrets_file(self) -> Path:
        return self.data / "secrets.env"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.port('gateway')}"

    @property
    def grpc_endpoint(self) -> str:
        """host:port of the public gRPC API (LOUPE_GRPC_ENDPOINT)."""
        return self.addr("gateway_grpc")
