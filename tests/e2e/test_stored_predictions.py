"""A prediction made as soon as the stack says it is ready is stored within 2 s."""
from __future__ import annotations

import time

import pytest

from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


def test_a_prediction_right_after_readiness_is_stored_within_2_s(live, api):
    pid, _ = api.published_project("stored", "ready", seed=61)
    # A crashed prediction service leaves its recorder's consumer in the group until the
    # member's session expires: its successor's consumer joins only then (half a minute).
    # Readiness, as `make up` waits for it, includes that consumer holding its partitions.
    live.ctl("signal", "KILL", "prediction")
    live.ctl("stop", "prediction", check=False)
    live.ctl("start", "prediction")
    live.wait_services()
    ready = time.monotonic()

    image = load_fashion_mnist("test", (0,), 1, seed=62)[0][0]
    prediction_id = api.predict(f"/{pid}/classify/iterations/ready/image", image)["id"]
    while True:
        stored = api.train("POST", f"/projects/{pid}/predictions/query", json={})["results"]
        if [p["id"] for p in stored] == [prediction_id]:
            print(f"stored {time.monotonic() - ready:.2f} s after readiness")
            break
        assert time.monotonic() - ready < 2.0, "the prediction was not stored within 2 s"
        time.sleep(0.1)
