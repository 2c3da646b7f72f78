"""The orphan sweep against the real stores: bytes no row references go, referenced bytes and
bytes younger than the grace stay, a deleted project's late writes go."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from loupe.v1 import storage_pb2 as spb
from loupe.v1 import storage_pb2_grpc
from loupe_common import config as cfg
from loupe_common import storage_keys
from loupe_common.clients import ServiceClient
from loupe_common.errors import NotFound
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig
from loupe_gateway.orphans import OrphanSweep
from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


@pytest.fixture
def storage(live, credentials):
    client = ServiceClient(live.layout.addr("storage"), storage_pb2_grpc.StorageServiceStub,
                           credential=credentials["gateway"])
    yield client
    client.close()


@pytest.fixture
def backends(live):
    made = Backends(cfg.load(GatewayConfig, live.service_env()))
    yield made
    made.close()


def _exists(storage, project_id: str, sha: str) -> bool:
    try:
        storage.GetImage(spb.GetImageRequest(project_id=project_id, sha256=sha))
        return True
    except NotFound:
        return False


def test_the_sweep_removes_unreferenced_bytes_and_keeps_the_rest(live, api, storage, backends):
    images = [img for img, _ in load_fashion_mnist("train", (0, 1, 2, 3), 2, seed=81)]
    kept_pid = api.new_project(f"sweep-kept-{uuid.uuid4().hex[:6]}")["id"]
    tag = api.train("POST", f"/projects/{kept_pid}/tags", params={"name": "t"})
    api.upload_files(kept_pid, images[:2], tag["id"])
    uploaded = [hashlib.sha256(i).hexdigest() for i in images[:2]]
    # An upload whose rows never came (its gateway died): bytes only.
    orphan = storage.PutImage(spb.PutImageRequest(project_id=kept_pid, data=images[2])).sha256
    # A stored prediction recorded after its project was deleted: bytes of a project metadata
    # no longer knows.
    gone_pid = api.new_project(f"sweep-gone-{uuid.uuid4().hex[:6]}")["id"]
    api.train("DELETE", f"/projects/{gone_pid}", expect=204)
    late = storage.PutImage(spb.PutImageRequest(project_id=gone_pid, data=images[3])).sha256
    assert gone_pid in backends.list_project_ids()

    # With the shipped grace (an hour) the fresh orphan stays: it could be an upload in flight.
    shipped = cfg.load(GatewayConfig, live.service_env()).orphan_grace_s
    assert shipped >= 600
    OrphanSweep(backends, shipped).run_once()
    assert _exists(storage, kept_pid, orphan)
    assert not _exists(storage, gone_pid, late), "a deleted project's bytes need no grace"

    # Old enough (grace 0 here): it goes; the uploaded images, which rows reference, stay.
    late = storage.PutImage(spb.PutImageRequest(project_id=gone_pid, data=images[3])).sha256
    done = OrphanSweep(backends, 0.0).run_once()
    assert done.projects >= 1 and done.images >= 1 and not done.skipped
    assert not _exists(storage, kept_pid, orphan)
    assert not _exists(storage, gone_pid, late)
    assert gone_pid not in backends.list_project_ids()
    assert all(_exists(storage, kept_pid, sha) for sha in uploaded)
    listed = api.train("GET", f"/projects/{kept_pid}/images", params={"take": 10})
    assert sorted(hashlib.sha256(api.http.get(i["originalImageUri"], timeout=30).content).hexdigest()
                  for i in listed) == sorted(uploaded)


def test_bytes_written_again_are_young_again(live, storage, backends, api):
    """An upload of bytes the project already holds rewrites them, so the sweep's re-check
    (older_than_seconds) keeps bytes that an upload in flight is about to reference."""
    pid = api.new_project(f"sweep-young-{uuid.uuid4().hex[:6]}")["id"]
    image = load_fashion_mnist("train", (4,), 1, seed=82)[0][0]
    sha = storage.PutImage(spb.PutImageRequest(project_id=pid, data=image)).sha256
    time.sleep(2.5)
    assert backends.list_image_data(pid, 2.0) == [sha]
    again = storage.PutImage(spb.PutImageRequest(project_id=pid, data=image))
    assert again.existed and again.sha256 == sha
    assert backends.list_image_data(pid, 2.0) == []
    backends.delete_image_data(pid, [sha], older_than_seconds=2.0)
    assert _exists(storage, pid, sha), "the re-check removed bytes written a moment ago"
    backends.delete_image_data(pid, [sha], older_than_seconds=0.0)
    assert not _exists(storage, pid, sha)


def test_the_artifacts_and_exports_of_a_deleted_iteration_go_and_a_live_ones_stay(live, api, backends,
                                                                                storage, credentials):
    """An iteration deletion that died between the row and its objects leaves a head and export
    files of an iteration metadata no longer knows: the sweep removes them, and nothing of the
    live iteration, which keeps predicting."""
    pid, live_it = api.published_project("sweep-iterations", f"sweep-{uuid.uuid4().hex[:6]}", seed=83)
    trainer = ServiceClient(live.layout.addr("storage"), storage_pb2_grpc.StorageServiceStub,
                            credential=credentials["training"])
    try:
        head = trainer.GetObject(spb.GetObjectRequest(key=storage_keys.head_key(pid, live_it))).data
        gone = str(uuid.uuid4())
        left = [storage_keys.head_key(pid, gone), storage_keys.export_zip_key(pid, gone, "ONNX"),
                storage_keys.export_record_key(pid, gone, "ONNX")]
        for key in left:
            trainer.PutObject(spb.PutObjectRequest(key=key, data=head))
        assert backends.list_iteration_ids(pid) == sorted([live_it, gone])

        done = OrphanSweep(backends, 3600.0).run_once()
        assert done.iterations >= 1
        assert backends.list_iteration_ids(pid) == [live_it]
        for key in left:
            with pytest.raises(NotFound):
                storage.GetObject(spb.GetObjectRequest(key=key))
        assert trainer.GetObject(spb.GetObjectRequest(key=storage_keys.head_key(pid, live_it))).data == head
    finally:
        trainer.close()
    image = load_fashion_mnist("test", (0,), 1, seed=84)[0][0]
    published = api.train("GET", f"/projects/{pid}/iterations/{live_it}")["publishName"]
    assert api.predict(f"/{pid}/classify/iterations/{published}/image/nostore", image)["predictions"]


def test_a_training_image_whose_bytes_are_gone_loses_its_row_in_the_second_pass(live, api, backends,
                                                                             storage):
    """Bytes lost from storage (a bucket restored from a backup, a removal that raced): the row
    can be neither shown nor trained on. The first pass only notes it, the second (recheck 0
    here) deletes it; every other image and its tags stay."""
    pid = api.new_project(f"sweep-rows-{uuid.uuid4().hex[:6]}")["id"]
    tag = api.train("POST", f"/projects/{pid}/tags", params={"name": "t"})
    images = [img for img, _ in load_fashion_mnist("train", (5, 6), 6, seed=85)]
    api.upload_files(pid, images, tag["id"])
    hashes = [hashlib.sha256(i).hexdigest() for i in images]
    lost = hashes[3]
    assert backends.delete_image_data(pid, [lost], older_than_seconds=0.0) >= 1  # with thumbnails
    assert backends.image_hashes(pid) == sorted(hashes)

    sweep = OrphanSweep(backends, 0.0, recheck_s=0.0)
    assert sweep.run_once().rows == 0, "a row must be seen without bytes twice"
    assert len(api.train("GET", f"/projects/{pid}/images", params={"take": 50})) == len(images)
    assert sweep.run_once().rows >= 1
    assert backends.image_hashes(pid) == sorted(h for h in hashes if h != lost)
    listed = api.train("GET", f"/projects/{pid}/images", params={"take": 50})
    assert len(listed) == len(images) - 1
    assert all(i["tags"][0]["tagId"] == tag["id"] for i in listed)
    assert sorted(hashlib.sha256(api.http.get(i["originalImageUri"], timeout=30).content).hexdigest()
                  for i in listed) == sorted(h for h in hashes if h != lost)
    assert api.train("GET", f"/projects/{pid}/tags/{tag['id']}")["imageCount"] == len(images) - 1


#: The LOUPE_* variables the chart's sweep CronJob gives its container.
CRONJOB_ENV = {"LOUPE_LOG_LEVEL", "LOUPE_ORPHAN_GRACE_S", "LOUPE_METADATA_TARGET",
               "LOUPE_STORAGE_TARGET", "LOUPE_INTERNAL_SECRET", "LOUPE_INTERNAL_TLS_DIR",
               "LOUPE_INTERNAL_TLS_SERVER_NAME"}


def test_a_single_run_sweeps_once_prints_what_it_removed_and_exits(live, api, storage):
    """`python -m loupe_gateway.orphans` (what the chart's CronJob runs) with the shipped
    settings and only the variables the CronJob sets (deploy/helm/loupe/templates/
    sweep-cronjob.yaml): a deleted project's late bytes go; it exits 0 and says what it did."""
    gone_pid = api.new_project(f"sweep-once-{uuid.uuid4().hex[:6]}")["id"]
    api.train("DELETE", f"/projects/{gone_pid}", expect=204)
    image = load_fashion_mnist("train", (7,), 1, seed=86)[0][0]
    late = storage.PutImage(spb.PutImageRequest(project_id=gone_pid, data=image)).sha256
    done = subprocess.run([sys.executable, "-m", "loupe_gateway.orphans"],
                          env={k: v for k, v in {**os.environ, **live.service_env()}.items()
                               if k in CRONJOB_ENV or not k.startswith("LOUPE_")},
                          capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["projects"] >= 1 and not summary["skipped"]
    assert not _exists(storage, gone_pid, late)
