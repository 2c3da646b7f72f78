"""Loupe's exported classifier: a prediction server that answers like Custom Vision's
exported container ("DockerFile" export), so IoT Edge modules and scripts written for it work
unchanged.

Routes (what Custom Vision's container serves, plus the cloud API's own path prefix):
- `GET /`: the plain-text harness banner.
- `POST /image`, `/{project}/image[/nostore]`,
  `/{project}/classify/iterations/{publishedName}/image[/nostore]` (and `detect/…`, as the
  original serves): the image as the raw body (`application/octet-stream`, what IoT Edge's
  cameraCapture module posts to http://classifier/image) or as a multipart/form-data part
  named `imageData`.
- `POST /url` and the same aliases ending in `url[/nostore]`: a JSON body {"url": "http…"}.
- Any of those behind `/customvision/v3.x/Prediction` too, so the official prediction SDK can
  point its endpoint at the container.

The answer is Custom Vision's ImagePrediction JSON: id, project, iteration, created (UTC,
ISO 8601 without an offset, as the original's `datetime.utcnow().isoformat()`), predictions
[{tagName, probability, tagId, boundingBox: null}], probabilities rounded to 8 decimals and
those under 1e-8 left out, as the original does. Unlike the original (which sends "" for
them), id, project, iteration and tagId carry the real values; predictions are sorted by
probability, highest first, as the cloud API sorts them.

Preprocessing is `loupe_model.preprocess.preprocess_bytes`, shipped as a verbatim copy of the
Loupe that exported the model, so the probabilities are the service's own.

Only the standard library, numpy, Pillow and onnxruntime are needed; the model is loaded in
`Classifier`, so the request parsing and response building below import and test without it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("loupe.container")

#: What `GET /` answers (Custom Vision's container answers exactly this).
HARNESS_TEXT = "CustomVision.ai model host harness"
#: Custom Vision's container refuses bodies over 4 MB (Flask MAX_CONTENT_LENGTH), as its
#: prediction API does; a bigger image is refused before it is read.
DEFAULT_MAX_IMAGE_BYTES = 4 * 1024 * 1024
#: How long fetching a /url image may take.
URL_TIMEOUT_S = 10.0
#: Probabilities are rounded to this many decimals, and those under MIN_PROBABILITY dropped.
ROUND_DECIMALS = 8
MIN_PROBABILITY = 1e-8

_ROUTE = re.compile(
    r"^(?i:/customvision/v3\.\d+/prediction)?"
    r"(?:/(?P<project>[^/]+)(?:/(?:classify|detect)/iterations/(?P<name>[^/]+))?)?"
    r"/(?P<kind>image|url)(?:/nostore)?/?$"
)


class RequestError(Exception):
    """A request the server refuses: HTTP status and a Custom Vision error code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Route:
    """What a request path asks for: kind "index", "image" or "url"."""

    kind: str
    project: str | None = None
    published_name: str | None = None


def route(method: str, path: str) -> Route:
    """Matches a request line to a route (query string ignored).

    Raises:
        RequestError: 404 for an unknown path, 405 for a known one with the wrong method.
    """
    path = path.split("?", 1)[0].split("#", 1)[0] or "/"
    if path == "/":
        if method not in ("GET", "HEAD"):
            raise RequestError(405, "MethodNotAllowed", f"{method} is not allowed on /")
        return Route("index")
    match = _ROUTE.match(path)
    if match is None:
        raise RequestError(404, "NotFound", f"no route {path}")
    if method != "POST":
        raise RequestError(405, "MethodNotAllowed", f"{method} is not allowed on {path}; POST")
    return Route(match["kind"], match["project"], match["name"])


def _boundary(content_type: str) -> bytes | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary" and value:
            return value.strip().strip('"').encode("latin-1")
    return None


def _disposition_name(headers: bytes) -> str | None:
    for line in headers.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() != b"content-disposition":
            continue
        match = re.search(rb'(?:^|;)\s*name\s*=\s*(?:"([^"]*)"|([^;\s]+))', value)
        if match:
            return (match.group(1) if match.group(1) is not None else match.group(2)).decode("latin-1")
    return None


def multipart_part(content_type: str, body: bytes, name: str = "imageData") -> bytes | None:
    """The bytes of the named part of a multipart/form-data body, untouched (binary-safe).

    The official SDK sends `imageData` with no filename; browsers and curl `-F` send one; both
    are read the same way.

    Returns:
        The part's bytes, or None when the body has no part of that name.

    Raises:
        RequestError: 400 when the body is not multipart or has no boundary.
    """
    boundary = _boundary(content_type)
    if not boundary:
        raise RequestError(400, "BadRequestImageFormat", "multipart body without a boundary")
    delimiter = b"--" + boundary
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        headers, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if _disposition_name(headers) == name:
            # The CRLF before the next delimiter belongs to the delimiter, not the data.
            return data[:-2] if data.endswith(b"\r\n") else data
    return None


def image_bytes(content_type: str, body: bytes) -> bytes:
    """The image of a /image request: the `imageData` part of a multipart body, else the body.

    Raises:
        RequestError: 400 for an empty image or a multipart body without `imageData`.
    """
    if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
        data = multipart_part(content_type, body)
        if data is None:
            raise RequestError(400, "BadRequestImageFormat", "no multipart part named imageData")
    else:
        data = body
    if not data:
        raise RequestError(400, "BadRequestImageFormat", "the request has no image")
    return data


def image_url(body: bytes) -> str:
    """The URL of a /url request body: JSON {"url": "http(s)://…"} ("Url" accepted too).

    Raises:
        RequestError: 400 when the body is not such JSON or the URL is not http(s).
    """
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RequestError(400, "BadRequestImageUrl", 'the body must be JSON {"url": "..."}') from None
    url = None
    if isinstance(payload, dict):
        url = payload.get("url", payload.get("Url"))
    if not isinstance(url, str) or not url:
        raise RequestError(400, "BadRequestImageUrl", 'the body must be JSON {"url": "..."}')
    if not url.lower().startswith(("http://", "https://")):
        raise RequestError(400, "BadRequestImageUrl", "the url must be http or https")
    return url


def created_now(now: datetime | None = None) -> str:
    """Custom Vision's container's `created`: naive UTC ISO 8601 with microseconds."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    return now.isoformat(timespec="microseconds")


def prediction(probabilities, labels: list[str], tag_ids: list[str], project: str, iteration: str,
               created: str, prediction_id: str) -> dict:
    """The ImagePrediction JSON for one image's probabilities (in labels order).

    Args:
        probabilities: one float per label.
        labels, tag_ids: the tags, in the model's output order.
        project, iteration: the exported iteration's ids.
        created: the timestamp (`created_now`).
        prediction_id: this prediction's id.

    Returns:
        The JSON-ready dict.
    """
    rows = []
    for p, name, tag_id in zip(probabilities, labels, tag_ids):
        value = round(float(p), ROUND_DECIMALS)
        if value > MIN_PROBABILITY:
            rows.append({"tagName": name, "probability": value, "tagId": tag_id, "boundingBox": None})
    rows.sort(key=lambda row: -row["probability"])
    return {"id": prediction_id, "project": project, "iteration": iteration, "created": created,
            "predictions": rows}


def error_body(code: str, message: str) -> bytes:
    """Custom Vision's error JSON."""
    return json.dumps({"code": code, "message": message}).encode("utf-8")


class Classifier:
    """The exported model: model.onnx, labels.txt and metadata_properties.json in one folder.

    Args:
        model_dir: the folder (the container's /app).
        threads: ONNX Runtime intra-op threads (0: its default, one per core).
    """

    def __init__(self, model_dir: str | os.PathLike[str], threads: int = 0):
        import onnxruntime as ort

        from loupe_model.preprocess import InvalidImage, preprocess_bytes

        folder = Path(model_dir)
        props = json.loads((folder / "metadata_properties.json").read_text(encoding="utf-8"))
        self.labels = (folder / "labels.txt").read_text(encoding="utf-8").splitlines()
        self.tag_ids = [t["id"] for t in props["tags"]]
        if [t["name"] for t in props["tags"]] != self.labels:
            raise ValueError("labels.txt and metadata_properties.json disagree")
        self.project = props.get("project_id", "")
        self.iteration = props.get("iteration_id", "")
        self.size = int(props["preprocessing"]["resize"]["width"])
        self.input = props.get("input", "data")
        self.output = props.get("output", "probabilities")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self._preprocess = preprocess_bytes
        self.invalid_image = InvalidImage

    def probabilities(self, data: bytes):
        """Tag probabilities of encoded image bytes, in labels order.

        Raises:
            RequestError: 400 when the bytes are not a supported image.
        """
        try:
            x = self._preprocess(data, self.size)[None]
        except self.invalid_image as exc:
            raise RequestError(400, "BadRequestImageFormat", str(exc)) from None
        return self.session.run([self.output], {self.input: x})[0][0]

    def predict(self, data: bytes) -> dict:
        """The ImagePrediction JSON of encoded image bytes."""
        return prediction(self.probabilities(data), self.labels, self.tag_ids, self.project,
                          self.iteration, created_now(), str(uuid.uuid4()))


def fetch(url: str, max_bytes: int, timeout: float = URL_TIMEOUT_S) -> bytes:
    """The bytes at an http(s) URL, at most max_bytes.

    Raises:
        RequestError: 400 when it cannot be fetched or is too large.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http(s) checked
            data = resp.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RequestError(400, "BadRequestImageUrl", f"cannot fetch {url}: {exc}") from None
    if len(data) > max_bytes:
        raise RequestError(400, "BadRequestImageSizeBytes",
                           f"the image at the url is over {max_bytes} bytes")
    return data


def _handler(classifier: Classifier, max_bytes: int, slots: threading.BoundedSemaphore):
    class Handler(BaseHTTPRequestHandler):
        server_version = "LoupeClassifier/1"
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self) -> bytes:
            length = self.headers.get("Content-Length")
            if length is None:
                if self.headers.get("Transfer-Encoding"):
                    self.close_connection = True
                    raise RequestError(411, "BadRequest", "send a Content-Length")
                return b""
            try:
                size = int(length)
            except ValueError:
                raise RequestError(400, "BadRequest", "bad Content-Length") from None
            if size > max_bytes:
                # The body is left unread: close the connection instead of draining it.
                self.close_connection = True
                raise RequestError(413, "BadRequestImageSizeBytes",
                                   f"the request is over {max_bytes} bytes")
            self.body_read = True
            return self.rfile.read(size)

        def _serve(self) -> None:
            started = time.perf_counter()
            status = 200
            self.body_read = False
            try:
                found = route(self.command, self.path)
                if found.kind == "index":
                    self._send(200, HARNESS_TEXT.encode(), "text/html; charset=utf-8")
                    return
                body = self._body()
                if found.kind == "url":
                    data = fetch(image_url(body), max_bytes)
                else:
                    data = image_bytes(self.headers.get("Content-Type", ""), body)
                # Decoding and inference hold memory: only so many at once.
                with slots:
                    answer = classifier.predict(data)
                self._send(200, json.dumps(answer).encode(), "application/json")
            except RequestError as err:
                status = err.status
                if not self.body_read and self.headers.get("Content-Length", "0").strip() != "0":
                    # A body left unread would be taken for the next request: close instead.
                    self.close_connection = True
                self._send(err.status, error_body(err.code, err.message), "application/json")
            except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
                status = 500
                log.exception("request %s failed", self.path)
                self._send(500, error_body("InternalServerError", str(exc)), "application/json")
            finally:
                log.info("%s %s %d %.1f ms", self.command, self.path, status,
                         (time.perf_counter() - started) * 1000)

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve

        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            pass  # one line per request is logged by _serve

    return Handler


def create_server(model_dir: str | os.PathLike[str], host: str = "0.0.0.0", port: int = 80,
                  max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES, workers: int = 2,
                  threads: int = 0) -> tuple[ThreadingHTTPServer, int]:
    """Loads the model and binds the server (port 0: any free port).

    Returns:
        (the server, not yet serving; the port it bound).
    """
    classifier = Classifier(model_dir, threads=threads)
    slots = threading.BoundedSemaphore(max(1, workers))
    server = ThreadingHTTPServer((host, port), _handler(classifier, max_image_bytes, slots))
    server.daemon_threads = True
    return server, server.server_address[1]


def main(argv: list[str] | None = None) -> int:
    """Runs the server until SIGTERM / SIGINT. Settings: flags, else PORT, HOST,
    MAX_IMAGE_BYTES, WORKERS (concurrent predictions), ORT_THREADS from the environment."""
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=env.get("HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(env.get("PORT", "80")))
    parser.add_argument("--model-dir", default=env.get("MODEL_DIR", str(Path(__file__).resolve().parent)))
    parser.add_argument("--max-image-bytes", type=int,
                        default=int(env.get("MAX_IMAGE_BYTES", str(DEFAULT_MAX_IMAGE_BYTES))))
    parser.add_argument("--workers", type=int, default=int(env.get("WORKERS", "2")))
    parser.add_argument("--ort-threads", type=int, default=int(env.get("ORT_THREADS", "0")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server, port = create_server(args.model_dir, args.host, args.port, args.max_image_bytes,
                                     args.workers, args.ort_threads)
    except PermissionError:
        log.error("cannot bind port %d as uid %d: set PORT (e.g. 8080), or run with "
                  "--sysctl net.ipv4.ip_unprivileged_port_start=0", args.port, os.getuid())
        return 1

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving on %s:%d", args.host, port)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
