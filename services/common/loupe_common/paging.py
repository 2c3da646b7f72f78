"""Continuation tokens: the opaque strings a paged Custom Vision query hands back for its next page.

A token is base64url(JSON {"skip": n}), n being how many results the earlier pages returned. It
only means something to the same query that issued it; nothing in it is signed, since all a
forged one can do is skip a different number of the caller's own results.
"""
from __future__ import annotations

import base64
import binascii
import json

from loupe_common.errors import BadRequest


def encode_skip(skip: int) -> str:
    """The token of the page that starts after the first `skip` results."""
    return base64.urlsafe_b64encode(json.dumps({"skip": skip}).encode()).decode()


def decode_skip(token: str, code: str = "BadRequest") -> int:
    """How many results to skip for the page `token` (from `encode_skip`) stands for.

    Args:
        token: a token from an earlier page.
        code: the Custom Vision error code of an invalid token (it differs per API).
    Returns:
        The skip count, as written into the token.
    Raises:
        BadRequest: the token is not one `encode_skip` wrote.
    """
    try:
        return int(json.loads(base64.urlsafe_b64decode(token))["skip"])
    # OverflowError: a skip of 1e400 reads as infinity, which int() refuses.
    except (binascii.Error, ValueError, KeyError, TypeError, OverflowError):
        raise BadRequest("invalid continuation token", code) from None
