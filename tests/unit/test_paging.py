"""Continuation tokens (loupe_common.paging)."""
from __future__ import annotations

import base64

import pytest

from loupe_common import paging
from loupe_common.errors import BadRequest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("skip", [0, 1, 50, 10**9])
def test_a_token_round_trips(skip):
    token = paging.encode_skip(skip)
    assert token.isascii() and "/" not in token and "+" not in token
    assert paging.decode_skip(token) == skip


def test_the_token_format_is_stable():
    # Tokens outlive a deployment (a client pages across an upgrade): the format must not drift.
    assert paging.encode_skip(100) == "eyJza2lwIjogMTAwfQ=="
    assert paging.decode_skip("eyJza2lwIjogMTAwfQ==") == 100


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("token", [
    "!!!", "abc", "é", _b64("not json"), _b64("[1, 2]"), _b64('{"take": 5}'),
    _b64('{"skip": "many"}'), _b64('{"skip": null}'), _b64('{"skip": 1e400}'),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_an_invalid_token_is_a_bad_request_with_the_callers_code(token):
    with pytest.raises(BadRequest) as info:
        paging.decode_skip(token, "BadRequestPredictionInvalidQueryParameters")
    assert info.value.code == "BadRequestPredictionInvalidQueryParameters"
    assert "continuation" in str(info.value)


def test_the_default_code_is_bad_request():
    with pytest.raises(BadRequest) as info:
        paging.decode_skip("!!!")
    assert info.value.code == "BadRequest"
