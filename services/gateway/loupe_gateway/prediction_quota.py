"""The stored-prediction quota of an account, checked before a classification that stores.

Stored predictions are recorded after the answer (the prediction service hands them to Kafka,
its recorder writes the rows), so metadata cannot refuse one in the transaction that adds it,
as it does for projects, tags and images. The gateway asks first: metadata's
`StoredPredictionQuota` gives the quota and the account's stored predictions (counted up to the
quota). Asking on every classification would cost a round trip and a count each, so an answer is
reused for `ttl` seconds, and the stores this gateway let through meanwhile are added to it: one
gateway cannot overshoot, several overshoot by at most what the others store within `ttl`.

Refused: 400 BadRequestExceededQuota, with what to do (…/nostore answers as before; deleting
stored predictions, or their 30-day retention, frees the quota). When metadata cannot be asked,
the last answer is kept, or with none the classification goes ahead: a quota bounds disk use,
it must not make predictions fail while metadata restarts.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter

from loupe_common.errors import BadRequest, LoupeError

log = logging.getLogger(__name__)

REFUSED = Counter("loupe_gateway_stored_prediction_quota_refusals_total",
                  "Classifications refused because the account's stored-prediction quota is used up")

CODE = "BadRequestExceededQuota"


@dataclass
class _Entry:
    fetched: float
    limit: int
    stored: int  # as metadata counted it
    added: int = 0  # stores this gateway let through since


class StoredPredictionQuota:
    """Args:
        fetch: account id -> (quota, stored predictions), from metadata (0 quota: no limit).
        ttl: seconds an answer is reused (0: ask every time).
        max_accounts: entries kept, least recently used out first.
    """

    def __init__(self, fetch: Callable[[str], tuple[int, int]], ttl: float,
                 max_accounts: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._ttl = ttl
        self._max = max_accounts
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()

    def admit(self, account_id: str) -> None:
        """Counts one more stored prediction of the account, or refuses it.

        Raises:
            BadRequest: BadRequestExceededQuota, the quota is used up.
        """
        now = self._clock()
        with self._lock:
            entry = self._entries.get(account_id)
            fresh = entry is not None and now - entry.fetched < self._ttl
        if not fresh:
            try:
                limit, stored = self._fetch(account_id)
            except LoupeError as err:
                log.warning("stored-prediction quota of account %s not read (%s); %s", account_id,
                            err, "keeping the last answer" if entry else "not checked")
                if entry is None:
                    return
            else:
                entry = _Entry(now, limit, stored)
        with self._lock:
            current = self._entries.get(account_id)
            if current is not None and current.fetched >= entry.fetched:
                entry = current  # another thread's answer, as new or newer: keep its count
            self._entries[account_id] = entry
            self._entries.move_to_end(account_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
            if entry.limit and entry.stored + entry.added >= entry.limit:
                REFUSED.inc()
                raise BadRequest(
                    f"the account's quota of {entry.limit} stored predictions is reached: classify "
                    "with …/image/nostore (or …/url/nostore), which stores nothing, or delete "
                    "stored predictions (they are also deleted 30 days after they were made)",
                    CODE)
            entry.added += 1

    def forget(self, account_id: str) -> None:
        """Drops the account's answer (its stored predictions were deleted): the next
        classification asks metadata again."""
        with self._lock:
            self._entries.pop(account_id, None)
