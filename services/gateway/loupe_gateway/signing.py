"""Signed image URIs: time-limited links a plain HTTP client can GET without an API key.

A URI carries `a` (the account), `exp` (Unix seconds) and `sig`, an HMAC-SHA256 over the path,
the account and the expiry with the gateway's secret (LOUPE_URL_SIGNING_SECRET). Nothing is
stored: any gateway replica with the same secret verifies it.
"""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode


def signature(secret: str, path: str, account_id: str, exp: int) -> str:
    message = f"{path}\n{account_id}\n{exp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_query(secret: str, path: str, account_id: str, now: float, ttl: int) -> str:
    """The query string (without '?') that makes `path` GET-able until now + ttl."""
    exp = int(now) + int(ttl)
    return urlencode({"a": account_id, "exp": exp, "sig": signature(secret, path, account_id, exp)})


def verify(secret: str, path: str, account_id: str, exp: str, sig: str, now: float) -> bool:
    """True when `sig` signs (path, account, exp) and exp has not passed."""
    try:
        expiry = int(exp)
    except (TypeError, ValueError):
        return False
    if expiry < now:
        return False
    expected = signature(secret, path, account_id or "", expiry)
    return hmac.compare_digest(expected, sig or "")
