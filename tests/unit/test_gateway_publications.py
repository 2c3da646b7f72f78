"""The gateway's published-iteration cache: what it keeps, when it forgets, how announcements
reach it (no Kafka: the listener and announcer get scripted consumers and producers)."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from loupe_common import kafka as lk
from loupe_common.errors import NotFound
from loupe_gateway import publications as pubs
from loupe_gateway.clients import changes_project

pytestmark = pytest.mark.unit

KEY = ("acct", "proj", "live")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _counting(answer="iteration"):
    calls = []

    def lookup():
        calls.append(1)
        return answer
    return lookup, calls


def _listening_cache(ttl=10.0, **kw):
    cache = pubs.PublishedCache(ttl, **kw)
    cache.set_listening(True)
    return cache


def test_a_second_lookup_is_answered_from_the_cache_while_listening():
    cache = _listening_cache()
    lookup, calls = _counting()
    assert cache.get(KEY, lookup) == "iteration"
    assert cache.get(KEY, lookup) == "iteration"
    assert len(calls) == 1


def test_nothing_is_cached_while_the_listener_is_not_reading():
    cache = pubs.PublishedCache(10.0)  # never listening: a gateway without its listener
    lookup, calls = _counting()
    cache.get(KEY, lookup)
    cache.get(KEY, lookup)
    assert len(calls) == 2 and len(cache) == 0


def test_losing_the_listener_forgets_everything():
    cache = _listening_cache()
    lookup, calls = _counting()
    cache.get(KEY, lookup)
    cache.set_listening(False)
    cache.set_listening(True)
    cache.get(KEY, lookup)
    assert len(calls) == 2


def test_a_ttl_of_zero_turns_the_cache_off():
    cache = _listening_cache(ttl=0)
    lookup, calls = _counting()
    cache.get(KEY, lookup)
    cache.get(KEY, lookup)
    assert len(calls) == 2


def test_an_entry_expires_after_the_ttl():
    clock = Clock()
    cache = _listening_cache(ttl=10.0, clock=clock)
    lookup, calls = _counting()
    cache.get(KEY, lookup)
    clock.now += 9.9
    cache.get(KEY, lookup)
    assert len(calls) == 1
    clock.now += 0.2
    cache.get(KEY, lookup)
    assert len(calls) == 2


def test_a_refusal_is_not_cached_so_a_new_publication_is_seen_at_once():
    cache = _listening_cache()

    def not_published():
        raise NotFound("no such publish name", "NotFound")
    with pytest.raises(NotFound):
        cache.get(KEY, not_published)
    lookup, calls = _counting()
    assert cache.get(KEY, lookup) == "iteration" and len(calls) == 1


def test_dropping_a_project_forgets_its_names_only():
    cache = _listening_cache()
    lookup, calls = _counting()
    other = ("acct", "other", "live")
    cache.get(KEY, lookup)
    cache.get(other, lookup)
    cache.drop_project("proj")
    cache.get(KEY, lookup)
    cache.get(other, lookup)
    assert len(calls) == 3  # KEY twice, other once


def test_a_lookup_racing_a_change_does_not_store_what_it_read_before_it():
    cache = _listening_cache()

    def stale_lookup():
        cache.drop_project("proj")  # the project changes while metadata answers
        return "before the change"
    assert cache.get(KEY, stale_lookup) == "before the change"
    lookup, calls = _counting("after")
    assert cache.get(KEY, lookup) == "after" and len(calls) == 1


def test_the_least_recently_used_entry_goes_first():
    cache = _listening_cache(max_entries=2)
    lookup, calls = _counting()
    a, b, c = (("x", p, "n") for p in "abc")
    cache.get(a, lookup)
    cache.get(b, lookup)
    cache.get(a, lookup)  # a used last: b goes when c comes
    cache.get(c, lookup)
    assert len(cache) == 2
    cache.get(a, lookup)
    assert len(calls) == 3
    cache.get(b, lookup)
    assert len(calls) == 4


class _Consumer:
    """Polls follow a script of record batches (or an exception); records the seeks."""

    def __init__(self, script, stop, end=5):
        self.script = list(script)
        self.stop = stop
        self.end = end
        self.sought = None

    def assign(self, partitions):
        assert [p.topic for p in partitions] == [lk.PUBLICATIONS]

    def seek_to_end(self, partition):
        self.sought = ("end", self.end)

    def seek(self, partition, offset):
        self.sought = ("offset", offset)

    def position(self, partition, timeout_ms=None):
        return self.sought[1]

    def poll(self, timeout_ms):
        if not self.script:
            self.stop.set()
            return {}
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return {"tp": [SimpleNamespace(value=p.encode(), offset=o) for o, p in step]}

    def close(self, autocommit=True):
        pass


def test_the_listener_drops_announced_projects_and_resumes_where_it_stopped(monkeypatch):
    monkeypatch.setattr(threading.Event, "wait", lambda self, timeout=None: self.is_set())
    stop = threading.Event()
    cache = pubs.PublishedCache(10.0)
    dropped = []
    monkeypatch.setattr(cache, "drop_project", dropped.append)
    first = _Consumer([[(5, "p1")], ConnectionError("broker gone")], stop)
    second = _Consumer([[(6, "p2"), (7, "p3")]], stop)
    made = iter([first, second])
    listener = pubs.Listener(cache, lambda: next(made), stop)
    listener.run()
    assert dropped == ["p1", "p2", "p3"]
    assert first.sought == ("end", 5)
    assert second.sought == ("offset", 6), "announcements sent while it was down would be missed"
    assert not cache.listening


class _Producer:
    def __init__(self, failures):
        self.failures = failures
        self.sent = []

    def send(self, topic, key, value):
        producer = self

        class Future:
            def get(self, timeout):
                if producer.failures:
                    producer.failures -= 1
                    raise TimeoutError("no ack")
                producer.sent.append((topic, value))
        return Future()


def test_the_announcer_sends_each_change_and_retries_a_failed_send(monkeypatch):
    monkeypatch.setattr(threading.Event, "wait", lambda self, timeout=None: self.is_set())
    stop = threading.Event()
    producer = _Producer(failures=2)
    announcer = pubs.Announcer(lambda: producer, stop)
    announcer.announce("p1")
    announcer.announce("p2")
    announcer.announce("p3")
    thread = threading.Thread(target=announcer.run)
    thread.start()
    deadline = time.monotonic() + 5
    while not producer.sent and time.monotonic() < deadline:
        time.sleep(0.001)
    stop.set()  # what is queued still goes out (Kafka up)
    thread.join(5)
    assert producer.sent == [(lk.PUBLICATIONS, p) for p in (b"p1", b"p2", b"p3")]


def test_a_stopping_announcer_gives_up_while_kafka_is_down(monkeypatch):
    monkeypatch.setattr(threading.Event, "wait", lambda self, timeout=None: self.is_set())
    stop = threading.Event()
    producer = _Producer(failures=10**9)
    announcer = pubs.Announcer(lambda: producer, stop)
    announcer.announce("p1")
    stop.set()
    announcer.run()  # returns: a gateway stopping during a Kafka outage does not hang
    assert producer.sent == []


def test_a_changing_call_drops_the_project_also_when_it_fails():
    class Backends:
        def __init__(self):
            self.changed = []

        def project_changed(self, project_id):
            self.changed.append(project_id)

        @changes_project
        def unpublish_iteration(self, account_id, project_id, iteration_id):
            if iteration_id == "bad":
                raise TimeoutError("metadata did not answer (it may have unpublished)")
            return iteration_id

    b = Backends()
    assert b.unpublish_iteration("acct", project_id="proj", iteration_id="it") == "it"
    with pytest.raises(TimeoutError):
        b.unpublish_iteration("acct", "proj2", "bad")
    assert b.changed == ["proj", "proj2"]
