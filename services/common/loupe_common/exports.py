"""The small status record kept next to each iteration export, and the export platforms.

An export is `exports/{project}/{iteration}/{platform}.zip` plus `….json`, a record
{"platform", "flavor", "status", "sizeBytes", "message", "updated"} (the keys are built by
loupe_common.storage_keys). The record lives and dies with the file (both go with the
`exports/{project}/{iteration}/` prefix when the iteration or project is deleted), so no database
table can disagree with what is actually stored.

An export is built within one gateway request, which writes Exporting first and Done or Failed
after; a gateway that dies in between leaves Exporting behind. Such a record `expired` once it is
older than any export can take (LOUPE_EXPORT_TIMEOUT_S), and is then read as Failed, so it
blocks no new export.
"""
from __future__ import annotations

import datetime as dt
import json

from loupe_common.errors import BadRequest
from loupe_common.timeutil import iso, utcnow

#: Custom Vision's ExportStatus values.
EXPORTING, DONE, FAILED = "Exporting", "Done", "Failed"
#: Platforms Loupe builds (Custom Vision's ExportPlatform names).
PLATFORMS = ("ONNX", "DockerFile")
#: Flavors accepted for ONNX (Custom Vision's ExportFlavor); all give the same opset-17 model.
ONNX_FLAVORS = ("", "ONNX10", "ONNX12")
#: Flavors accepted for DockerFile: both give the same multi-arch Dockerfile (python:3.11-slim
#: is published for amd64 and arm64); ARM's README and build line name linux/arm64. Custom
#: Vision's "Windows" flavor (a Windows container) is not built.
DOCKER_FLAVORS = ("Linux", "ARM")
FLAVORS = {"ONNX": ONNX_FLAVORS, "DockerFile": DOCKER_FLAVORS}
#: The flavor an export without one gets.
DEFAULT_FLAVORS = {"ONNX": "", "DockerFile": "Linux"}


def flavor(platform: str, raw: str | None) -> str:
    """The canonical flavor of an export request (Custom Vision's ExportFlavor spelling).

    Args:
        platform: one of PLATFORMS.
        raw: the `flavor` query parameter ("" or None: the platform's default); any case.

    Returns:
        The flavor as stored in the record ("" for a plain ONNX export).

    Raises:
        BadRequest: BadRequestProjectUnsupportedExportPlatform for a flavor the platform has not.
    """
    if not raw:
        return DEFAULT_FLAVORS[platform]
    by_lower = {f.lower(): f for f in FLAVORS[platform] if f}
    out = by_lower.get(raw.lower())
    if out is None:
        known = ", ".join(f for f in FLAVORS[platform] if f)
        raise BadRequest(f"flavor {raw!r} does not apply to {platform}; it takes {known}",
                         "BadRequestProjectUnsupportedExportPlatform")
    return out


def record(platform: str, flavor: str, status: str, size_bytes: int = 0, message: str = "") -> bytes:
    """A status record, serialised."""
    return json.dumps({
        "platform": platform, "flavor": flavor or None, "status": status,
        "sizeBytes": int(size_bytes), "message": message, "updated": iso(utcnow()),
    }).encode()


def parse_record(data: bytes) -> dict:
    """Reads a record written by `record` (an unreadable one counts as Failed)."""
    try:
        out = json.loads(data.decode("utf-8"))
        if isinstance(out, dict) and out.get("status") in (EXPORTING, DONE, FAILED):
            return out
    except (UnicodeDecodeError, ValueError):
        pass
    return {"platform": None, "flavor": None, "status": FAILED, "sizeBytes": 0,
            "message": "unreadable export record"}


def expired(record_: dict, now: dt.datetime, timeout_s: float) -> bool:
    """Whether `record_` says Exporting but was written more than `timeout_s` before `now` (or
    at no readable time): the export that wrote it is over, whatever became of it."""
    if record_.get("status") != EXPORTING:
        return False
    try:
        updated = dt.datetime.fromisoformat(str(record_["updated"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return True
    if updated.tzinfo is None:
        return True
    return (now - updated).total_seconds() > timeout_s


def current(record_: dict, now: dt.datetime, timeout_s: float) -> dict:
    """`record_` as it stands at `now`: an expired Exporting record reads as Failed."""
    if not expired(record_, now, timeout_s):
        return record_
    return {**record_, "status": FAILED,
            "message": f"the export did not finish within {timeout_s:g} s"}
