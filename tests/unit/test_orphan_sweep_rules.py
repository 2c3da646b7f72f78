"""The orphan sweep's decisions (no I/O: backends are a dict of what each store holds)."""
from __future__ import annotations

import pytest

from loupe_gateway import orphans

pytestmark = pytest.mark.unit


class Stores:
    """Storage's projects, images and iteration folders; metadata's projects, referenced
    hashes and iterations."""

    def __init__(self, stored: dict[str, list[str]], known: set[str], referenced: set[str],
                 iterations: dict[str, list[str]] | None = None,
                 known_iterations: set[str] = frozenset(), rows: dict[str, list[str]] | None = None):
        self.stored = stored
        self.rows = rows or {}  # metadata's training images: project -> hashes
        self.known = known
        self.referenced = referenced
        self.iterations = iterations or {}
        self.known_iterations = known_iterations
        self.calls: list[tuple] = []

    def image_hashes(self, pid):
        return sorted(set(self.rows.get(pid, [])))

    def find_image_data(self, pid, hashes):
        assert len(hashes) <= orphans.BATCH
        self.calls.append(("find", pid, tuple(hashes)))
        return [h for h in hashes if h in self.stored.get(pid, [])]

    def delete_images_by_hash(self, pid, hashes):
        assert len(hashes) <= orphans.BATCH
        self.calls.append(("rows", pid, tuple(hashes)))
        before = self.rows.get(pid, [])
        self.rows[pid] = [h for h in before if h not in hashes]
        return len(before) - len(self.rows[pid])

    def list_iteration_ids(self, pid):
        return list(self.iterations.get(pid, []))

    def existing_iterations(self, pid, ids):
        assert len(ids) <= orphans.BATCH
        return [i for i in ids if i in self.known_iterations]

    def delete_prefix(self, prefix):
        self.calls.append(("prefix", prefix))

    def list_project_ids(self):
        return sorted(self.stored)

    def existing_projects(self, ids):
        assert len(ids) <= orphans.BATCH
        return [i for i in ids if i in self.known]

    def list_image_data(self, pid, older_than_seconds):
        return list(self.stored[pid])

    def referenced_images(self, pid, hashes):
        assert len(hashes) <= orphans.BATCH
        return [h for h in hashes if h in self.referenced]

    def delete_image_data(self, pid, hashes, older_than_seconds):
        self.calls.append(("images", pid, tuple(hashes), older_than_seconds))
        self.stored[pid] = [h for h in self.stored[pid] if h not in hashes]

    def delete_project_data(self, pid):
        self.calls.append(("project", pid))
        return len(self.stored.pop(pid))


def test_unknown_projects_go_whole_and_unreferenced_images_of_known_ones_go():
    stores = Stores({"live": ["a", "b", "c"], "deleted": ["x"]}, known={"live"}, referenced={"a", "c"})
    done = orphans.OrphanSweep(stores, grace_s=60).run_once()
    assert done == orphans.Sweep(projects=1, images=1)
    assert stores.stored == {"live": ["a", "c"]}
    # the image removal re-checks the grace at the store
    assert ("images", "live", ("b",), 60) in stores.calls


def test_nothing_goes_when_metadata_knows_none_of_the_projects():
    stores = Stores({"p1": ["a"], "p2": ["b"]}, known=set(), referenced=set())
    done = orphans.OrphanSweep(stores, grace_s=0).run_once()
    assert done.skipped and stores.calls == []


def test_many_projects_and_images_are_asked_in_bounded_batches():
    n = orphans.BATCH * 2 + 5
    stored = {f"p{i:05d}": [] for i in range(n)}
    stored["p00000"] = [f"h{i}" for i in range(n)]
    stores = Stores(stored, known=set(stored), referenced={f"h{i}" for i in range(0, n, 2)})
    done = orphans.OrphanSweep(stores, grace_s=0).run_once()
    assert done.images == n // 2
    assert all(int(h[1:]) % 2 == 0 for h in stores.stored["p00000"])


def test_a_stopped_sweep_removes_nothing_more():
    stores = Stores({"gone1": ["a"], "gone2": ["b"], "live": ["c"]}, known={"live"}, referenced=set())
    sweep = orphans.OrphanSweep(stores, grace_s=0)
    sweep.stop.set()
    sweep.run_once()
    assert stores.calls == []


P = "00000000-0000-0000-0000-00000000000a"
IT_LIVE, IT_GONE = "00000000-0000-0000-0000-0000000000b1", "00000000-0000-0000-0000-0000000000b2"


def test_the_artifacts_and_exports_of_iterations_metadata_does_not_know_go():
    stores = Stores({P: []}, known={P}, referenced=set(), iterations={P: [IT_LIVE, IT_GONE]},
                    known_iterations={IT_LIVE})
    done = orphans.OrphanSweep(stores, grace_s=0).run_once()
    assert done == orphans.Sweep(iterations=1)
    assert [c for c in stores.calls if c[0] == "prefix"] == [
        ("prefix", f"artifacts/{P}/{IT_GONE}/"), ("prefix", f"exports/{P}/{IT_GONE}/")]


def test_iterations_of_a_project_without_images_are_asked_in_bounded_batches():
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(orphans.BATCH + 3)]
    stores = Stores({P: []}, known={P}, referenced=set(), iterations={P: ids},
                    known_iterations=set(ids[1:]))
    assert orphans.OrphanSweep(stores, grace_s=0).run_once().iterations == 1


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _rows_sweep(stores, recheck_s=60.0):
    clock = Clock()
    return orphans.OrphanSweep(stores, grace_s=3600, clock=clock, recheck_s=recheck_s), clock


def test_a_row_whose_bytes_are_gone_goes_only_when_a_later_look_past_the_recheck_still_finds_it():
    hashes = [f"h{i:02d}" for i in range(20)]
    stores = Stores({P: hashes[1:]}, known={P}, referenced=set(hashes), rows={P: hashes})
    sweep, clock = _rows_sweep(stores)
    assert sweep.run_once().rows == 0  # first seen
    clock.now += 30
    assert sweep.run_once().rows == 0  # seen again, within the grace
    assert not [c for c in stores.calls if c[0] == "rows"]
    clock.now += 31
    assert sweep.run_once() == orphans.Sweep(rows=1)
    assert stores.rows[P] == hashes[1:]
    # storage was asked once more just before
    assert stores.calls.index(("find", P, ("h00",))) < stores.calls.index(("rows", P, ("h00",)))
    assert sweep.suspects == {}


def test_a_row_whose_bytes_come_back_stays():
    hashes = [f"h{i:02d}" for i in range(20)]
    stores = Stores({P: hashes[1:]}, known={P}, referenced=set(hashes), rows={P: hashes})
    sweep, clock = _rows_sweep(stores)
    sweep.run_once()
    stores.stored[P].append("h00")  # an upload that reused them wrote them back
    clock.now += 120
    assert sweep.run_once().rows == 0
    assert sweep.suspects == {}
    stores.stored[P].remove("h00")  # gone again later: the clock starts over
    sweep.run_once()
    clock.now += 59
    assert sweep.run_once().rows == 0
    clock.now += 2
    assert sweep.run_once().rows == 1


def test_bytes_that_reappear_between_the_passes_and_the_last_check_keep_their_row():
    hashes = [f"h{i:02d}" for i in range(20)]
    stores = Stores({P: hashes[1:]}, known={P}, referenced=set(hashes), rows={P: hashes})
    sweep, clock = _rows_sweep(stores, recheck_s=0)
    sweep.run_once()
    real_list = stores.list_image_data
    # listed without h00, but written back by the time storage is asked again
    stores.list_image_data = lambda pid, older: [h for h in real_list(pid, older) if h != "h00"]
    stores.stored[P].append("h00")
    assert sweep.run_once().rows == 0
    assert stores.rows[P] == hashes


def test_the_valve_holds_when_many_rows_of_a_project_lack_bytes():
    hashes = [f"h{i:03d}" for i in range(200)]
    # 21 of 200 missing: over a tenth
    stores = Stores({P: hashes[21:]}, known={P}, referenced=set(hashes), rows={P: hashes})
    sweep, clock = _rows_sweep(stores, recheck_s=0)
    for _ in range(3):
        assert sweep.run_once().rows == 0
    assert stores.rows[P] == hashes
    # 20 of 200 go (a tenth), and in a small project up to ten do
    stores.stored[P] = hashes[20:]
    sweep.run_once()
    assert sweep.run_once().rows == 20
    small = [f"s{i}" for i in range(12)]
    stores = Stores({P: small[10:]}, known={P}, referenced=set(small), rows={P: small})
    sweep, clock = _rows_sweep(stores, recheck_s=0)
    sweep.run_once()
    assert sweep.run_once().rows == 10


def test_suspects_of_projects_that_went_are_forgotten():
    stores = Stores({P: ["b"]}, known={P}, referenced={"a", "b"}, rows={P: ["a", "b"]})
    sweep, _ = _rows_sweep(stores)
    sweep.run_once()
    assert set(sweep.suspects) == {(P, "a")}
    stores.known = set()
    stores.stored["other"] = []
    stores.known = {"other"}
    sweep.run_once()
    assert sweep.suspects == {}


class AdvancingStop:
    """A stop event whose wait moves the test clock instead of sleeping."""

    def __init__(self, clock):
        self.clock, self.waited = clock, []

    def is_set(self):
        return False

    def wait(self, seconds):
        self.waited.append(seconds)
        self.clock.now += seconds
        return False


def test_a_single_run_looks_again_after_the_recheck_and_only_at_its_suspects_projects():
    hashes = [f"h{i:02d}" for i in range(20)]
    other = "00000000-0000-0000-0000-00000000000c"
    stores = Stores({P: hashes[1:], other: hashes}, known={P, other}, referenced=set(hashes),
                    rows={P: hashes, other: hashes})
    clock = Clock()
    stop = AdvancingStop(clock)
    sweep = orphans.OrphanSweep(stores, grace_s=3600, stop=stop, clock=clock, recheck_s=60)
    assert sweep.run_once().rows == 0
    clock.now += 15  # the pass took a while
    assert sweep.confirm_suspects() == 1
    assert stop.waited == [45]
    assert stores.rows[P] == hashes[1:] and stores.rows[other] == hashes
    assert sweep.confirm_suspects() == 0 and stop.waited == [45]  # nothing left to look at
