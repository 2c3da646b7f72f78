"""Project export tokens and iteration export records (no I/O)."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from loupe_common import exports
from loupe_common.errors import BadRequest
from loupe_common.timeutil import iso
from loupe_gateway.api.exports import make_token, read_token

pytestmark = pytest.mark.unit

SECRET = "s3cret"
KEY = f"exports/{uuid.uuid4()}/project-{uuid.uuid4()}.json"


def test_token_round_trip():
    token = make_token(SECRET, "acct-a", KEY, exp=2_000)
    assert read_token(SECRET, token, "acct-a", now=1_000) == KEY


@pytest.mark.parametrize("case", ["other account", "expired", "other secret", "tampered",
                                  "garbage", "empty"])
def test_bad_tokens_are_refused(case):
    token = make_token(SECRET, "acct-a", KEY, exp=2_000)
    account, now, secret = "acct-a", 1_000, SECRET
    if case == "other account":
        account = "acct-b"
    elif case == "expired":
        now = 3_000
    elif case == "other secret":
        secret = "other"
    elif case == "tampered":
        forged = make_token(SECRET, "acct-a", KEY.replace("exports/", "exports/x"), exp=2_000)
        token = forged.split(".")[0] + "." + token.split(".")[1]
    elif case == "garbage":
        token = "!!!.???"
    else:
        token = ""
    with pytest.raises(BadRequest) as info:
        read_token(secret, token, account, now)
    assert info.value.code == "BadRequestInvalidImportToken"


def test_export_records():
    rec = exports.parse_record(exports.record("ONNX", "ONNX12", exports.DONE, 123))
    assert (rec["status"], rec["flavor"], rec["sizeBytes"]) == ("Done", "ONNX12", 123)
    assert exports.parse_record(b"not json")["status"] == exports.FAILED


def _at(minutes_ago: float) -> dict:
    rec = exports.parse_record(exports.record("ONNX", "", exports.EXPORTING))
    updated = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago)
    return {**rec, "updated": iso(updated)}


def test_an_exporting_record_expires_after_the_timeout_and_then_reads_as_failed():
    now = dt.datetime.now(dt.timezone.utc)
    fresh, stale = _at(1), _at(20)
    assert not exports.expired(fresh, now, 900)
    assert exports.current(fresh, now, 900) is fresh
    assert exports.expired(stale, now, 900)
    read = exports.current(stale, now, 900)
    assert read["status"] == exports.FAILED and "900 s" in read["message"]
    assert stale["status"] == exports.EXPORTING  # the record itself is left as it was


def test_only_exporting_records_expire_and_one_without_a_readable_time_does():
    now = dt.datetime.now(dt.timezone.utc)
    done = {**_at(60), "status": exports.DONE}
    assert not exports.expired(done, now, 900) and exports.current(done, now, 900) is done
    for updated in (None, "yesterday", "2026-12-01T10:00:00"):  # missing, garbage, naive
        rec = {**_at(0), "updated": updated}
        if updated is None:
            del rec["updated"]
        assert exports.expired(rec, now, 900), updated
