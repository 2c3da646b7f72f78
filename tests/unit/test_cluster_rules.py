"""Pure parts of `make k8s-up` (deploy/k8s/loupe_cluster): which pods it deletes, the kubelet's
eviction settings."""
from __future__ import annotations

import json

import pytest

from loupe_cluster.__main__ import pods_of_gone_images
from loupe_cluster.cluster import ClusterLayout, kubelet_config

pytestmark = pytest.mark.unit

WANTED = {"loupe.local/loupe:new", "loupe.local/kafka:new"}


def _pod(name: str, image: str, reason: str | None, init: bool = False) -> dict:
    state = {"waiting": {"reason": reason}} if reason else {"running": {}}
    key = "initContainerStatuses" if init else "containerStatuses"
    return {"metadata": {"name": name}, "status": {key: [{"name": "c", "image": image, "state": state}]}}


def test_only_pods_waiting_for_an_image_this_install_does_not_bring_are_deleted():
    pods = [
        _pod("kafka-0", "loupe.local/kafka:old", "ErrImageNeverPull"),      # pruned image: stuck
        _pod("prediction-a", "loupe.local/loupe:old", "ImagePullBackOff"),  # pruned image: stuck
        _pod("gateway-b", "loupe.local/loupe:old", "ErrImagePull", init=True),
        _pod("gateway-a", "loupe.local/loupe:old", None),                   # runs: the rollout replaces it
        _pod("prediction-b", "loupe.local/loupe:new", "ErrImageNeverPull"),  # a real failure: reported
        _pod("training-a", "loupe.local/loupe:old", "CrashLoopBackOff"),    # not an image problem
        {"metadata": {"name": "pending"}, "status": {"phase": "Pending"}},  # no statuses yet
    ]
    assert pods_of_gone_images(pods, WANTED) == ["kafka-0", "prediction-a", "gateway-b"]


def test_the_kubelet_evicts_at_a_size_not_a_share_of_a_shared_disk(tmp_path):
    # 2 % of a 252 GB disk shared with the rest of the machine was 5 GB: a CI run's image import
    # crossed it and every pod was evicted (DiskPressure).
    cfg = json.loads(kubelet_config(ClusterLayout(data=tmp_path / "data", cache=tmp_path / "cache")))
    hard = cfg["evictionHard"]
    for signal in ("nodefs.available", "imagefs.available"):
        assert not hard[signal].endswith("%")
    # Locally built images cannot be pulled again: the kubelet never garbage-collects them.
    assert cfg["imageGCHighThresholdPercent"] == 100
