"""The one table of ports (loupe_common.ports) is what the configs, the local stack and the
Helm chart's values use."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loupe_common import config as cfg
from loupe_common.ports import LOCAL_GRPC_OFFSET, LOCAL_METRICS_OFFSET, SERVICES
from loupe_gateway.config import GatewayConfig
from loupe_metadata.config import MetadataConfig
from loupe_prediction.config import PredictionConfig
from loupe_stack.layout import PORT_OFFSETS, Layout
from loupe_storage.config import StorageConfig
from loupe_training.config import TrainingConfig

pytestmark = pytest.mark.unit

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "loupe" / "values.yaml"
GRPC_CONFIGS = {
    "metadata": MetadataConfig, "storage": StorageConfig, "training": TrainingConfig,
    "prediction": PredictionConfig,
}
#: Just what each config requires, so its defaults can be read.
REQUIRED = dict.fromkeys(
    ("LOUPE_POSTGRES_DSN", "LOUPE_S3_ENDPOINT", "LOUPE_S3_ACCESS_KEY", "LOUPE_S3_SECRET_KEY",
     "LOUPE_KAFKA_BOOTSTRAP", "LOUPE_METADATA_TARGET", "LOUPE_STORAGE_TARGET",
     "LOUPE_TORCHSERVE_INFERENCE_URL", "LOUPE_TORCHSERVE_MANAGEMENT_URL", "LOUPE_PREDICTION_TARGET",
     "LOUPE_TRAINING_TARGET", "LOUPE_URL_SIGNING_SECRET", "LOUPE_INTERNAL_SECRET"), "x")


def test_the_chart_values_are_the_table():
    values = yaml.safe_load(VALUES.read_text())
    for name, ports in SERVICES.items():
        assert values[name]["port"] == ports.main, name
        assert values[name].get("metricsPort") == ports.metrics, name
        assert values[name].get("grpcPort") == ports.grpc, name


@pytest.mark.parametrize("name", sorted(GRPC_CONFIGS))
def test_each_service_binds_its_table_port_on_loopback_by_default(name):
    config = cfg.load(GRPC_CONFIGS[name], REQUIRED)
    assert (config.host, config.port) == ("127.0.0.1", SERVICES[name].main)
    assert config.metrics_port == 0  # metrics stay off unless LOUPE_METRICS_PORT names a port


def test_the_gateway_listens_on_its_table_port_by_default():
    config = cfg.load(GatewayConfig, REQUIRED)
    assert (config.port, config.grpc_port) == (SERVICES["gateway"].main, SERVICES["gateway"].grpc)


def test_the_local_stack_places_every_service_from_the_table():
    layout = Layout(data=Path("/nonexistent"), base_port=7500)
    for name, ports in SERVICES.items():
        assert layout.port(name) == 7500 + ports.local_offset
        if ports.metrics is not None:
            assert PORT_OFFSETS[f"{name}_metrics"] == ports.local_offset + LOCAL_METRICS_OFFSET
        if ports.grpc is not None:
            assert PORT_OFFSETS[f"{name}_grpc"] == ports.local_offset + LOCAL_GRPC_OFFSET
    assert len(set(PORT_OFFSETS.values())) == len(PORT_OFFSETS)  # no two share a port
