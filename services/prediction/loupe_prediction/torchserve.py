"""Client of TorchServe's inference and management APIs."""
from __future__ import annotations

import http.client
import logging
import threading
import time
import urllib.parse

import numpy as np
import requests

from loupe_common.errors import BadRequest, Unavailable
from loupe_model.serving import decode_embedding

log = logging.getLogger(__name__)


class _KeptAlive:
    """POSTs over one kept-alive HTTP connection per thread (the gRPC server's workers).

    `requests` costs about as much Python per call as the rest of the prediction service, and
    its pool keeps 10 connections, so at a concurrency of 16 some calls open a new one each
    time; http.client on a thread's own connection does neither.
    """

    def __init__(self, base_url: str, timeout: float):
        url = urllib.parse.urlsplit(base_url)
        self._factory = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self._host, self._port = url.hostname, url.port
        self._prefix = url.path.rstrip("/")
        self._timeout = timeout
        self._local = threading.local()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of a POST; an idle connection the server closed is replaced once."""
        while True:
            conn = getattr(self._local, "conn", None)
            fresh = conn is None
            if fresh:
                conn = self._local.conn = self._factory(self._host, self._port, timeout=self._timeout)
            try:
                conn.request("POST", self._prefix + path, body=body,
                             headers={"Content-Type": "application/octet-stream"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if fresh:
                    raise
                continue  # the kept-alive connection had gone stale: once more, on a new one
            if resp.will_close:
                conn.close()
                self._local.conn = None
            return resp.status, data


class TorchServeClient:
    def __init__(self, inference_url: str, management_url: str, model: str, timeout: float = 30.0):
        self.inference_url = inference_url.rstrip("/")
        self.management_url = management_url.rstrip("/")
        self.model = model
        self.session = requests.Session()  # the management API: registration only
        self._inference = _KeptAlive(self.inference_url, timeout)

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
            status, body = self._inference.post(f"/predictions/{self.model}", image)
        except (OSError, http.client.HTTPException) as err:
            raise Unavailable(f"TorchServe unreachable: {err}") from None
        if status == 400:
            raise BadRequest("the image cannot be decoded", "BadRequestImageFormat")
        if status != 200:
            raise Unavailable(f"TorchServe answered {status}: {body[:200].decode(errors='replace')}")
        return decode_embedding(body)
