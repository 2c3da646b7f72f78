"""The gateway's cache of published iterations, kept true by announcements on Kafka.

Every classification needs the iteration a publish name stands for (metadata
`GetPublishedIteration`: a gRPC round trip and a PostgreSQL query, about a tenth of the CPU a
prediction costs the whole stack). The answer changes only when a project's publications,
iterations or tags change, and every such change goes through a gateway (`Backends`' methods
marked `changes_project`). So:

- a gateway that changes a project drops the project's entries at once (its next prediction
  sees the change) and announces the project id on `loupe.publications`, from a thread of its
  own (no request waits for Kafka);
- every gateway reads that topic (`Listener`: no consumer group, from the end) and drops the
  entries of each project announced, within milliseconds of the change;
- entries also expire after `ttl` seconds (`LOUPE_PUBLISHED_CACHE_SECONDS`), which bounds what
  an announcement lost to a Kafka outage could leave stale;
- the cache holds nothing while its listener is not reading the topic (Kafka unreachable, the
  listener not started: a gateway built for tests): every lookup then asks metadata.

A lookup that races a change cannot store what it read before the change: the cache's
generation moves on every drop, and a lookup stores its answer only if the generation is the
one it started with. Refusals (no such publish name) are not cached: publishing is seen at once.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter

from loupe_common import kafka as lk

log = logging.getLogger(__name__)

LOOKUPS = Counter("loupe_gateway_published_lookups", "Published-iteration lookups",
                  ["outcome"])  # hit, miss (asked metadata), uncached (listener not reading)
ANNOUNCEMENTS = Counter("loupe_gateway_publication_announcements",
                        "Project changes announced to other gateways", ["outcome"])  # sent, failed, heard
#: Entries kept at most (least recently used dropped): each is one small protobuf.
MAX_ENTRIES = 10_000
#: Seconds between a failed listener or announcer and its next try.
RETRY_SECONDS = 2.0

Key = tuple[str, str, str]  # (account id, project id, publish name)


class PublishedCache:
    """Answers of `GetPublishedIteration` by (account, project, publish name).

    Args:
        ttl: seconds an entry is used; 0 turns the cache off.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES):
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        #: Set while the listener reads `loupe.publications`; entries are kept only then.
        self.listening = False
        self._entries: collections.OrderedDict[Key, tuple[float, object]] = collections.OrderedDict()
        self._generation = 0
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Key, lookup: Callable[[], object]) -> object:
        """The cached answer for `key`, or `lookup()`'s (stored when nothing changed meanwhile).
        What `lookup` raises (NotFound: nothing published under that name) is not cached."""
        if not self.listening or self.ttl <= 0:
            LOOKUPS.labels("uncached").inc()
            return lookup()
        now = self.clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                self._entries.move_to_end(key)
                self.hits += 1
                LOOKUPS.labels("hit").inc()
                return hit[1]
            generation = self._generation
        LOOKUPS.labels("miss").inc()
        answer = lookup()
        with self._lock:
            if generation == self._generation and self.listening:
                self._entries[key] = (now + self.ttl, answer)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return answer

    def drop_project(self, project_id: str) -> None:
        """Forgets every entry of `project_id` and fails lookups in flight to store theirs."""
        with self._lock:
            self._generation += 1
            for key in [k for k in self._entries if k[1] == project_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def set_listening(self, listening: bool) -> None:
        """The listener's state: while it is not reading, nothing is cached (and what was is
        forgotten, since announcements may be missed meanwhile)."""
        with self._lock:
            self.listening = listening
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class Announcer:
    """Sends project ids to `loupe.publications` from a thread of its own.

    Args:
        producer: returns the (shared, lazily made) Kafka producer.
        stop: set to end the thread once the queue is empty (or at once while Kafka is down).
    """

    def __init__(self, producer: Callable[[], object], stop: threading.Event,
                 send_timeout: float = 10.0):
        self.producer = producer
        self.stop = stop
        self.send_timeout = send_timeout
        self._queue: queue.Queue[str] = queue.Queue(maxsize=100_000)

    def announce(self, project_id: str) -> None:
        try:
            self._queue.put_nowait(project_id)
        except queue.Full:  # Kafka down for long: the other gateways' TTL bounds what they keep
            ANNOUNCEMENTS.labels("failed").inc()

    def run(self) -> None:
        while not (self.stop.is_set() and self._queue.empty()):
            try:
                project_id = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            while True:
                try:
                    self.producer().send(lk.PUBLICATIONS, key=project_id.encode(),
                                         value=project_id.encode()).get(timeout=self.send_timeout)
                    ANNOUNCEMENTS.labels("sent").inc()
                    break
                except Exception as err:  # noqa: BLE001 - kafka-python raises many unrelated types
                    log.warning("announcing a change of project %s failed: %s", project_id, err)
                    if self.stop.wait(RETRY_SECONDS):
                        ANNOUNCEMENTS.labels("failed").inc()
                        break


class Listener:
    """Reads `loupe.publications` (one partition, no group: every gateway reads everything)
    and drops the announced projects from `cache`.

    A new consumer starts at the end of the topic; after a failure the next one goes on from
    the offset the last one reached, so announcements sent meanwhile are still heard.
    """

    def __init__(self, cache: PublishedCache, consumer_factory: Callable[[], object],
                 stop: threading.Event):
        self.cache = cache
        self.consumer_factory = consumer_factory
        self.stop = stop
        self.position: int | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._listen(self.consumer_factory())
            except Exception:  # noqa: BLE001 - whatever ends one consumer, the next one goes on
                log.warning("the publications listener failed; caching is off until it is back",
                            exc_info=True)
            self.cache.set_listening(False)
            self.stop.wait(RETRY_SECONDS)

    def _listen(self, consumer) -> None:
        from kafka import TopicPartition

        partition = TopicPartition(lk.PUBLICATIONS, 0)
        try:
            consumer.assign([partition])
            if self.position is None:
                consumer.seek_to_end(partition)
            else:
                consumer.seek(partition, self.position)
            self.position = consumer.position(partition, timeout_ms=10_000)  # resolves the end now
            self.cache.set_listening(True)
            log.info("published-iteration cache on (announcements from offset %d)", self.position)
            while not self.stop.is_set():
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        self.cache.drop_project(record.value.decode(errors="replace"))
                        ANNOUNCEMENTS.labels("heard").inc()
                        self.position = record.offset + 1
        finally:
            self.cache.set_listening(False)
            try:
                consumer.close(autocommit=False)
            except Exception:  # noqa: BLE001 - closing a broken client may fail too
                pass


def listener_consumer(bootstrap: str):
    """A group-less consumer for `Listener` (no offsets committed, nothing to rebalance)."""
    from kafka import KafkaConsumer

    return KafkaConsumer(**lk.security_from_env().client_options(), bootstrap_servers=bootstrap,
                         group_id=None, enable_auto_commit=False,
                         reconnect_backoff_max_ms=lk.RECONNECT_BACKOFF_MAX_MS)
