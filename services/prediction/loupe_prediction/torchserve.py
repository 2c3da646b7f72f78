"""Client of TorchServe's inference and management APIs."""
from __future__ import annotations

import logging
import time

import numpy as np
import requests

from loupe_common.errors import BadRequest, Unavailable
from loupe_model.serving import decode_embedding

log = logging.getLogger(__name__)


class TorchServeClient:
    def __init__(self, inference_url: str, management_url: str, model: str):
        self.inference_url = inference_url.rstrip("/")
        self.management_url = management_url.rstrip("/")
        self.model = model
        self.session = requests.Session()

    def ensure_registered(self, batch_size: int, max_batch_delay_ms: int, timeout: float = 120.0) -> None:
        """Registers the shared backbone once (idempotent across replicas)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                resp = self.session.get(f"{self.management_url}/models/{self.model}", timeout=5)
                if resp.status_code == 200:
                    return
                resp = self.session.post(
                    f"{self.management_url}/models",
                    params={"url": f"{self.model}.mar", "model_name": self.model, "initial_workers": 1,
                            "batch_size": batch_size, "max_batch_delay": max_batch_delay_ms,
                            "synchronous": "true"},
                    timeout=timeout,
                )
                if resp.status_code in (200, 201, 409):  # 409: another replica registered it
                    log.info("backbone %s registered in TorchServe", self.model)
                    return
                if resp.status_code == 405:  # enable_model_api=false: it must be loaded at start
                    log.warning("TorchServe does not serve %s and refuses registration (model API "
                                "off): load it at start (load_models)", self.model)
                log.warning("TorchServe registration answered %s: %s", resp.status_code, resp.text[:300])
            except requests.RequestException as err:
                log.info("TorchServe not reachable yet: %s", err)
            if time.monotonic() > deadline:
                raise Unavailable(f"could not register {self.model} in TorchServe")
            time.sleep(1)

    def embed(self, image: bytes) -> np.ndarray:
        try:
            resp = self.session.post(f"{self.inference_url}/predictions/{self.model}", data=image, timeout=30)
        except requests.RequestException as err:
            raise Unavailable(f"TorchServe unreachable: {err}") from None
        if resp.status_code == 400:
            raise BadRequest("the image cannot be decoded", "BadRequestImageFormat")
        if resp.status_code != 200:
            raise Unavailable(f"TorchServe answered {resp.status_code}: {resp.text[:200]}")
        return decode_embedding(resp.content)
