"""Project export tokens and iteration export records (no I/O)."""
from __future__ import annotations

import uuid

import pytest

from loupe_common import exports
from loupe_common.errors import BadRequest
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
