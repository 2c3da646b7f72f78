"""Timestamps: UTC everywhere, ISO-8601 on the wire of the REST API."""
from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def to_proto(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(dt.timezone.utc))
    return ts


def from_proto(ts: Timestamp) -> dt.datetime | None:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=dt.timezone.utc)


def iso(ts: Timestamp | dt.datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, as Custom Vision writes timestamps."""
    value = from_proto(ts) if isinstance(ts, Timestamp) else ts
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
