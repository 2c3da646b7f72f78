"""Retention of stored predictions (the prediction service's loop) against the in-process
metadata and storage services on the test stack's PostgreSQL and MinIO: past the period, rows
go, and image bytes go where nothing else references them."""
from __future__ import annotations

import io
import threading
import time
import uuid

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from PIL import Image

from internal_clients import ByRole
from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import storage_pb2 as spb
from loupe.v1.metadata_pb2_grpc import MetadataServiceStub
from loupe.v1.storage_pb2_grpc import StorageServiceStub
from loupe_common import internal_auth
from loupe_common.clients import ServiceClient
from loupe_common.errors import NotFound
from loupe_metadata import access as metadata_access
from loupe_prediction import retention as ret
from loupe_prediction.retention import PredictionRetention

pytestmark = pytest.mark.service

DAY = 86400.0


@pytest.fixture(scope="module")
def md(metadata_addr, credentials):
    """The metadata service as each role calls it (the gateway sets up, the recorder records)."""
    client = ByRole(metadata_addr, MetadataServiceStub, credentials, metadata_access.ALLOW)
    yield client
    client.close()


@pytest.fixture(scope="module")
def retention_clients(metadata_addr, storage_addr, credentials):
    """metadata and storage as the prediction service (whose loop retention is) calls them."""
    cred = credentials[internal_auth.PREDICTION]
    md = ServiceClient(metadata_addr, MetadataServiceStub, timeout=30, credential=cred)
    st = ServiceClient(storage_addr, StorageServiceStub, timeout=30, credential=cred)
    yield md, st
    md.close()
    st.close()


def _png(i: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (i % 256, 7, 99)).save(out, format="PNG")
    return out.getvalue()


def _record(md, project_id: str, sha: str, age_days: float) -> str:
    created = Timestamp()
    created.FromNanoseconds(int((time.time() - age_days * DAY) * 1e9))
    pid = str(uuid.uuid4())
    md.RecordPrediction(mpb.RecordPredictionRequest(prediction=mpb.StoredPrediction(
        id=pid, project_id=project_id, image_sha256=sha, width=16, height=16, created=created)))
    return pid


def _stored(storage, project_id: str, sha: str) -> bool:
    try:
        storage.GetImage(spb.GetImageRequest(project_id=project_id, sha256=sha))
        return True
    except NotFound:
        return False


def test_predictions_past_the_period_go_with_the_bytes_nothing_else_uses(md, storage_client, retention_clients,
                                                                        monkeypatch):
    account = md.CreateAccount(mpb.CreateAccountRequest(name="retention")).account
    project = md.CreateProject(mpb.CreateProjectRequest(account_id=account.id, name="r")).project.id
    ids = {"account_id": account.id, "project_id": project}
    sha = [storage_client.PutImage(spb.PutImageRequest(project_id=project, data=_png(i),
                                                       content_type="image/png")).sha256 for i in range(4)]
    old_only = _record(md, project, sha[0], 40)
    kept = _record(md, project, sha[1], 2)
    # An old prediction of an image that is also a training image: the row goes, the bytes stay.
    tag = md.CreateTag(mpb.CreateTagRequest(**ids, name="t")).tag.id
    md.AddImages(mpb.AddImagesRequest(**ids, images=[mpb.NewImage(sha256=sha[2], width=16, height=16,
                                                                  tag_ids=[tag])]))
    old_training = _record(md, project, sha[2], 31)
    # Two old predictions of one image, and a recent one of it: the bytes stay for the recent.
    _record(md, project, sha[3], 60)
    recent_same = _record(md, project, sha[3], 1)
    monkeypatch.setattr(ret, "BATCH", 1)  # several batches in one pass
    time.sleep(1.1)  # the bytes were written more than the (shortened) recent-write guard ago
    passes = PredictionRetention(*retention_clients, 30, threading.Event(), recent_write_s=1.0)
    assert passes.run_once() >= 3
    left = {p.id for p in md.ListPredictions(mpb.ListPredictionsRequest(**ids)).predictions}
    assert left == {kept, recent_same}
    assert old_only not in left and old_training not in left
    assert [_stored(storage_client, project, s) for s in sha] == [False, True, True, True]
    assert passes.run_once() == 0  # nothing more is due


def test_bytes_an_upload_just_rewrote_stay_when_their_last_prediction_expires(md, storage_client,
                                                                             retention_clients):
    """An upload of the same bytes rewrites them before it adds its row: retention, which saw
    no row left, must not take them from under it (the orphan sweep removes them later if no
    row ever comes)."""
    account = md.CreateAccount(mpb.CreateAccountRequest(name="retention-guard")).account
    project = md.CreateProject(mpb.CreateProjectRequest(account_id=account.id, name="g")).project.id
    data = _png(200)
    sha = storage_client.PutImage(spb.PutImageRequest(project_id=project, data=data,
                                                      content_type="image/png")).sha256
    _record(md, project, sha, 45)
    time.sleep(1.1)
    storage_client.PutImage(spb.PutImageRequest(project_id=project, data=data))  # the upload
    passes = PredictionRetention(*retention_clients, 30, threading.Event(), recent_write_s=1.0)
    assert passes.run_once() >= 1  # ours, and any other test's past the period
    assert _stored(storage_client, project, sha)
    assert not md.ListPredictions(mpb.ListPredictionsRequest(account_id=account.id,
                                                             project_id=project)).predictions


def test_zero_days_keeps_everything(retention_clients):
    assert PredictionRetention(*retention_clients, 0, threading.Event()).run_once() == 0
