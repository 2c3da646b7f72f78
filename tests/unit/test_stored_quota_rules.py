"""The gateway's stored-prediction quota check (loupe_gateway/prediction_quota.py), without I/O:
metadata's answer is a function, the clock a variable."""
from __future__ import annotations

import threading

import pytest

from loupe_common.errors import BadRequest, Unavailable
from loupe_gateway.prediction_quota import StoredPredictionQuota

pytestmark = pytest.mark.unit


class Metadata:
    def __init__(self, limit: int, stored: int):
        self.limit, self.stored, self.calls, self.down = limit, stored, 0, False

    def __call__(self, account_id: str) -> tuple[int, int]:
        self.calls += 1
        if self.down:
            raise Unavailable("metadata is down")
        return self.limit, min(self.stored, self.limit) if self.limit else 0


def make(metadata, ttl=10.0, **kw):
    now = [0.0]
    return StoredPredictionQuota(metadata, ttl, clock=lambda: now[0], **kw), now


def test_stores_up_to_the_quota_then_refuses_with_custom_visions_code():
    md = Metadata(limit=5, stored=2)
    quota, _ = make(md)
    for _ in range(3):
        quota.admit("a")
    with pytest.raises(BadRequest) as err:
        quota.admit("a")
    assert err.value.code == "BadRequestExceededQuota"
    assert "quota of 5 stored predictions" in err.value.message and "nostore" in err.value.message
    assert md.calls == 1  # one answer reused, this gateway's own stores added to it


def test_an_answer_is_reused_for_ttl_then_asked_again():
    md = Metadata(limit=100, stored=0)
    quota, now = make(md, ttl=10)
    quota.admit("a")
    now[0] = 9.9
    quota.admit("a")
    assert md.calls == 1
    now[0] = 10.0
    quota.admit("a")
    assert md.calls == 2


def test_a_full_account_is_admitted_again_once_metadata_counts_fewer():
    md = Metadata(limit=1, stored=1)
    quota, now = make(md)
    with pytest.raises(BadRequest):
        quota.admit("a")
    md.stored = 0  # predictions deleted (or expired) elsewhere
    now[0] = 11
    quota.admit("a")


def test_forget_asks_again_at_once():
    md = Metadata(limit=1, stored=1)
    quota, _ = make(md)
    with pytest.raises(BadRequest):
        quota.admit("a")
    md.stored = 0
    quota.forget("a")  # this gateway deleted some
    quota.admit("a")
    assert md.calls == 2


def test_no_quota_never_refuses():
    md = Metadata(limit=0, stored=0)
    quota, _ = make(md)
    for _ in range(1000):
        quota.admit("a")
    assert md.calls == 1


def test_accounts_are_counted_apart():
    md = Metadata(limit=1, stored=0)
    quota, _ = make(md)
    quota.admit("a")
    quota.admit("b")
    with pytest.raises(BadRequest):
        quota.admit("a")


def test_metadata_down_keeps_the_last_answer_or_with_none_admits():
    md = Metadata(limit=2, stored=1)
    quota, now = make(md)
    md.down = True
    quota.admit("new")  # nothing known: not checked, not remembered
    quota.admit("new")
    md.down = False
    quota.admit("a")  # 1 + 1 of 2
    md.down = True
    now[0] = 60  # stale, and metadata cannot be asked: the last answer holds, with its count
    with pytest.raises(BadRequest):
        quota.admit("a")


def test_ttl_zero_asks_every_time():
    md = Metadata(limit=10, stored=0)
    quota, _ = make(md, ttl=0)
    for _ in range(3):
        quota.admit("a")
    assert md.calls == 3


def test_entries_are_bounded_least_recently_used_out_first():
    md = Metadata(limit=10, stored=0)
    quota, _ = make(md, max_accounts=2)
    quota.admit("a")
    quota.admit("b")
    quota.admit("a")
    quota.admit("c")  # b goes
    calls = md.calls
    quota.admit("a")
    assert md.calls == calls
    quota.admit("b")
    assert md.calls == calls + 1


def test_concurrent_stores_of_one_gateway_never_overshoot():
    md = Metadata(limit=50, stored=0)
    quota, _ = make(md)
    admitted, refused = [], []
    lock = threading.Lock()

    def store():
        for _ in range(20):
            try:
                quota.admit("a")
                with lock:
                    admitted.append(1)
            except BadRequest:
                with lock:
                    refused.append(1)

    threads = [threading.Thread(target=store) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 50 and len(refused) == 160 - 50
