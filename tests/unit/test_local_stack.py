"""Pure parts of the local stack (deploy/local/loupe_stack)."""
from __future__ import annotations

import pytest

from loupe_common.config import load
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig
from loupe_stack.layout import PORT_OFFSETS, Layout
from loupe_stack.stack import SERVICES, Stack, _kafka_cluster_id

pytestmark = pytest.mark.unit


def test_kafka_cluster_ids_never_look_like_an_option():
    # A generated id starting with "-" once made the storage tool's argument parser fail.
    ids = {_kafka_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_every_process_has_its_own_port():
    assert len(set(PORT_OFFSETS.values())) == len(PORT_OFFSETS)


def _stack(monkeypatch, tmp_path) -> Stack:
    monkeypatch.setattr(Stack, "secrets", lambda self: dict.fromkeys(
        ("POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "URL_SIGNING_SECRET",
         "INTERNAL_SECRET"), "x"))
    return Stack(Layout(data=tmp_path))


def test_the_local_stack_does_not_throttle(monkeypatch, tmp_path):
    env = _stack(monkeypatch, tmp_path).service_env()
    config = load(GatewayConfig, env)
    assert config.rate_limit_per_second == 0
    assert not create_app(config).extensions["loupe.ratelimit"].enabled


def test_down_stops_the_services_while_kafka_still_runs(monkeypatch, tmp_path):
    # A consumer that cannot leave its group delays the next start's group by half a minute.
    stack = _stack(monkeypatch, tmp_path)
    calls = []
    monkeypatch.setattr(stack, "supervisor_running", lambda: True)
    monkeypatch.setattr(stack, "ctl", lambda *args, check=True: calls.append(args))
    stack.stop()
    assert calls == [("stop", *SERVICES), ("stop", "all"), ("shutdown",)]


def test_torchserve_loads_the_backbone_at_start_and_registers_nothing_over_its_api(monkeypatch, tmp_path):
    import json

    from loupe_model.archive import model_name
    from loupe_model.backbone import BACKBONES
    from loupe_prediction.config import PredictionConfig

    props = dict(line.split("=", 1) for line in _stack(monkeypatch, tmp_path)._torchserve_properties().splitlines())
    model = model_name(BACKBONES["lite0"])
    assert props["enable_model_api"] == "false"
    assert props["load_models"] == f"{model}.mar"
    version = json.loads(props["models"])[model]["1.0"]
    defaults = load(PredictionConfig, dict.fromkeys(
        ("LOUPE_TORCHSERVE_INFERENCE_URL", "LOUPE_TORCHSERVE_MANAGEMENT_URL", "LOUPE_KAFKA_BOOTSTRAP",
         "LOUPE_METADATA_TARGET", "LOUPE_STORAGE_TARGET", "LOUPE_INTERNAL_SECRET"), "x"))
    assert (version["batchSize"], version["maxBatchDelay"]) == (defaults.batch_size, defaults.max_batch_delay_ms)
    assert defaults.backbone == "lite0"
    # Token auth is off only where nothing but this machine reaches TorchServe.
    assert props["inference_address"].startswith("http://127.0.0.1:") and props["disable_token_authorization"] == "true"
