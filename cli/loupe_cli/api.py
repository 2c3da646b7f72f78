"""The REST calls the CLI makes: Custom Vision's training (v3.3) and prediction (v3.0) APIs."""
from __future__ import annotations

import base64
import datetime
import email.utils
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from loupe_common.limits import MAX_BATCH_IMAGES  # Custom Vision's, enforced by the gateway too

TRAINING = "/customvision/v3.3/training"
PREDICTION = "/customvision/v3.0/prediction"
MAX_BATCH_BYTES = 24 * 1024 * 1024  # bytes of images per upload call
#: A throttled call (429) is retried this many times, each after the wait the server asks for
#: (Retry-After, at most MAX_RETRY_WAIT seconds), before the CLI gives up with an error.
RETRIES_429 = 5
MAX_RETRY_WAIT = 30.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
ENV_KEYS = ("LOUPE_ENDPOINT", "LOUPE_TRAINING_KEY", "LOUPE_PREDICTION_KEY", "LOUPE_PREDICTION_RESOURCE_ID")


class ApiError(Exception):
    """A refused call: Custom Vision's error code and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{code}: {message}" if code else message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Config:
    endpoint: str
    training_key: str
    prediction_key: str = ""
    prediction_resource_id: str = ""


def read_env_file(path: Path) -> dict[str, str]:
    """`export KEY=value` / `KEY=value` lines (what `make up` writes to .loupe/env)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def default_env_file() -> Path | None:
    """$LOUPE_ENV_FILE, else ./.loupe/env, else the checkout's .loupe/env (make up's)."""
    if os.environ.get("LOUPE_ENV_FILE"):
        return Path(os.environ["LOUPE_ENV_FILE"])
    for candidate in (Path.cwd() / ".loupe" / "env", Path(__file__).resolve().parents[2] / ".loupe" / "env"):
        if candidate.is_file():
            return candidate
    return None


def load_config(overrides: dict[str, str | None], env: dict[str, str] | None = None,
                env_file: Path | None = None) -> Config:
    """Flags first, then LOUPE_* environment variables, then the env file.

    Raises:
        ValueError: no endpoint or no training key anywhere.
    """
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in read_env_file(env_file).items() if k in ENV_KEYS})
    values.update({k: env[k] for k in ENV_KEYS if env.get(k)})
    values.update({k: v for k, v in overrides.items() if v})
    missing = [k for k in ENV_KEYS[:2] if not values.get(k)]
    if missing:
        raise ValueError(f"missing {' and '.join(missing)}: pass --endpoint/--training-key, set the "
                         "variables, or run `make up` (it writes .loupe/env)")
    return Config(values["LOUPE_ENDPOINT"].rstrip("/"), values["LOUPE_TRAINING_KEY"],
                  values.get("LOUPE_PREDICTION_KEY", ""), values.get("LOUPE_PREDICTION_RESOURCE_ID", ""))


def image_files(paths: list[str]) -> list[Path]:
    """Files named, plus the image files under directories named (sorted, recursive).

    Raises:
        FileNotFoundError: a path that does not exist.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or directory: {raw}")
    return found


def batches(files: list[Path], max_images: int = MAX_BATCH_IMAGES, max_bytes: int = MAX_BATCH_BYTES):
    """Groups files into upload calls within the image-count and byte limits."""
    batch: list[Path] = []
    size = 0
    for path in files:
        n = path.stat().st_size
        if batch and (len(batch) >= max_images or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(path)
        size += n
    if batch:
        yield batch


def retry_after_seconds(value: str | None, now: float, default: float = 1.0,
                        max_wait: float = MAX_RETRY_WAIT) -> float:
    """The seconds a Retry-After header value asks to wait, at most `max_wait`.

    Args:
        value: the header: seconds ("2", "0.5") or an HTTP date.
        now: the current time (seconds since the epoch), for a date.
        default: the wait when the header is absent, unreadable or a date already past.
    """
    if not value:
        return min(max_wait, default)
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return min(max_wait, default)
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - now
        if seconds <= 0:
            return min(max_wait, default)
    return min(max_wait, max(0.0, seconds))


def retry_after(resp: requests.Response) -> float:
    """The seconds a 429 asks to wait: its Retry-After (1 when absent), at most MAX_RETRY_WAIT."""
    return retry_after_seconds(resp.headers.get("Retry-After"), time.time())


class Throttle:
    """When to send a call and whether to retry it; pure (it never sleeps: the caller does).

    Custom Vision limits calls per key: F0 2 per second, S0 10. `rate` paces calls so they stay
    within such a limit; a 429 (or 503) that still comes is retried after the wait its
    Retry-After asks for (the client is sequential: nothing else goes out meanwhile).

    Args:
        rate: calls per second at most (0: unpaced).
        retries: how many times one call is retried after a 429/503 before giving up.
        max_wait: the longest wait honoured for one Retry-After.
    """

    RETRY_STATUSES = (429, 503)

    def __init__(self, rate: float = 0.0, retries: int = RETRIES_429,
                 max_wait: float = MAX_RETRY_WAIT):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.retries = retries
        self.max_wait = max_wait
        self._next = float("-inf")  # the earliest time the next call may go out

    def before(self, now: float) -> float:
        """The seconds to wait before a call that would go out at `now` (and books its slot)."""
        wait = max(0.0, self._next - now)
        self._next = now + wait + self.interval
        return wait

    def after(self, status: int, retry_after: str | None, attempt: int, now: float) -> float | None:
        """The seconds to wait before retrying a call that got `status` on its `attempt`-th
        try (0 the first), or None when it is not retried (success, another error, or no
        retries left)."""
        if status not in self.RETRY_STATUSES or attempt >= self.retries:
            return None
        return retry_after_seconds(retry_after, now, max_wait=self.max_wait)


def _api_error(resp: requests.Response) -> ApiError:
    """The Custom Vision error ({"code", "message"}, or {"error": {...}}) a refused call carries."""
    try:
        body = resp.json()
    except ValueError:
        return ApiError(resp.status_code, "", f"HTTP {resp.status_code}: {resp.text[:300]}")
    error = body.get("error", body) if isinstance(body, dict) else {}
    return ApiError(resp.status_code, str(error.get("code", "")), str(error.get("message", resp.text)))


class Client:
    """Raw HTTP against a Loupe (or Custom Vision) endpoint; retries a 429 a few times, as the
    SDK does.

    Args:
        config: endpoint and keys.
        timeout: seconds per HTTP request.
        retries: how many times a throttled (429) call is retried before ApiError.
        sleep: waits between retries (tests pass a fake).
    """

    def __init__(self, config: Config, timeout: float = 120.0, retries: int = RETRIES_429,
                 sleep: Callable[[float], None] = time.sleep, rate: float = 0.0,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.timeout = timeout
        self.retries = retries
        self.sleep = sleep
        self.clock = clock
        self.throttle = Throttle(rate, retries)
        self.http = requests.Session()

    def _send(self, method: str, url: str, headers: dict[str, str], **kw) -> requests.Response:
        waited = 0.0
        attempt = 0
        while True:
            pause = self.throttle.before(self.clock())
            if pause:
                self.sleep(pause)
            resp = self.http.request(method, url, headers=headers, timeout=self.timeout, **kw)
            # Only a 429 is retried here: the call was refused before it did anything.
            status = resp.status_code if resp.status_code == 429 else 0
            wait = self.throttle.after(status, resp.headers.get("Retry-After"), attempt,
                                       self.clock())
            if wait is None:
                break
            self.sleep(wait)
            waited += wait
            attempt += 1
        if resp.status_code >= 400:
            err = _api_error(resp)
            if resp.status_code == 429:
                err = ApiError(429, err.code or "TooManyRequests",
                               f"{err.message} (still refused after {self.retries} retries "
                               f"and {waited:.0f} s of waiting; the limit is per key)")
            raise err
        return resp

    def train(self, method: str, path: str, **kw):
        resp = self._send(method, self.config.endpoint + TRAINING + path,
                          {"Training-Key": self.config.training_key}, **kw)
        return resp.json() if resp.content else None

    def train_status(self, method: str, path: str, **kw) -> tuple[int, object]:
        """A training API call's HTTP status (e.g. 201 or 200 from an idempotent PUT) and body."""
        resp = self._send(method, self.config.endpoint + TRAINING + path,
                          {"Training-Key": self.config.training_key}, **kw)
        return resp.status_code, (resp.json() if resp.content else None)

    def predict(self, project_id: str, published_name: str, data: bytes, store: bool = True) -> dict:
        if not self.config.prediction_key:
            raise ValueError("no prediction key: pass --prediction-key or set LOUPE_PREDICTION_KEY")
        path = f"{PREDICTION}/{project_id}/classify/iterations/{published_name}/image" + ("" if store else "/nostore")
        resp = self._send("POST", self.config.endpoint + path,
                          {"Prediction-Key": self.config.prediction_key,
                           "Content-Type": "application/octet-stream"}, data=data)
        return resp.json()

    def fetch(self, url: str) -> bytes:
        """The bytes behind a (signed) URL, e.g. an image's originalImageUri; sent without a key,
        not paced (blob downloads are not API calls), but a 429/503 is retried as any call."""
        attempt = 0
        while True:
            resp = self.http.get(url, timeout=self.timeout)
            wait = self.throttle.after(resp.status_code, resp.headers.get("Retry-After"), attempt,
                                       self.clock())
            if wait is None:
                break
            self.sleep(wait)
            attempt += 1
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, "", f"download failed: HTTP {resp.status_code}")
        return resp.content

    def download(self, url: str, path: Path) -> int:
        """Saves a (signed) download URL to `path`, streamed; returns the bytes written."""
        size = 0
        with self.http.get(url, stream=True, timeout=self.timeout) as resp:
            if resp.status_code >= 400:
                raise ApiError(resp.status_code, "", f"download failed: HTTP {resp.status_code}")
            tmp = path.with_name(path.name + ".part")
            with open(tmp, "wb") as f:
                for chunk in resp.iter_content(1 << 20):
                    f.write(chunk)
                    size += len(chunk)
            tmp.replace(path)
        return size

    def project_id(self, name_or_id: str) -> str:
        """A project's id from its id or its (unique) name.

        Raises:
            ApiError: no such project, or several with that name.
        """
        projects = self.train("GET", "/projects")
        by_id = [p for p in projects if p["id"] == name_or_id]
        if by_id:
            return by_id[0]["id"]
        named = [p for p in projects if p["name"] == name_or_id]
        if len(named) == 1:
            return named[0]["id"]
        if named:
            raise ApiError(400, "BadRequest", f"{len(named)} projects are named {name_or_id!r}: use the id")
        raise ApiError(404, "NotFound", f"no project with id or name {name_or_id!r}")

    def tag_id(self, project_id: str, name: str, create: bool = False) -> str:
        for tag in self.train("GET", f"/projects/{project_id}/tags"):
            if tag["name"] == name:
                return tag["id"]
        if not create:
            raise ApiError(404, "NotFound", f"no tag named {name!r}")
        return self.train("POST", f"/projects/{project_id}/tags", params={"name": name})["id"]

    def upload(self, project_id: str, files: list[Path], tag_ids: list[str]) -> dict:
        """One upload call (ImageCreateSummary); refused images come back with their status."""
        body = {"images": [{"name": p.name, "contents": base64.b64encode(p.read_bytes()).decode()} for p in files]}
        if tag_ids:
            body["tagIds"] = tag_ids
        return self.train("POST", f"/projects/{project_id}/images/files", json=body)
