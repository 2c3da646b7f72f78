"""Uploads that share bytes with a concurrent removal, against the real stores.

Image bytes are content-addressed, so an upload can reuse bytes that something else is removing
at that moment: a failed upload taking back what it wrote, the deletion of the last image that
had them. Each test runs the real flows (uploads.store, images.delete) over the real services,
with the other party's work run at the worst point of the flow (a hook around one backend
call); afterwards every image row must still have its bytes.
"""
from __future__ import annotations

import hashlib
import uuid

import pytest

from loupe.v1 import storage_pb2 as spb
from loupe.v1 import storage_pb2_grpc
from loupe_common import config as cfg
from loupe_common.clients import ServiceClient
from loupe_common.errors import BadRequest, NotFound
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig
from loupe_gateway.flows import images as image_flows
from loupe_gateway.flows import uploads
from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


class Hooked:
    """`Backends` with some calls wrapped: hook(real_method, *args, **kwargs)."""

    def __init__(self, real: Backends, **hooks):
        self._real = real
        self._hooks = hooks

    def __getattr__(self, name):
        method = getattr(self._real, name)
        hook = self._hooks.get(name)
        if hook is None:
            return method
        return lambda *args, **kwargs: hook(method, *args, **kwargs)


@pytest.fixture(scope="module")
def env(live):
    return live.service_env()


@pytest.fixture
def backends(env):
    made = Backends(cfg.load(GatewayConfig, env))
    yield made
    made.close()


@pytest.fixture
def storage(live, credentials):
    client = ServiceClient(live.layout.addr("storage"), storage_pb2_grpc.StorageServiceStub,
                           credential=credentials["gateway"])
    yield client
    client.close()


@pytest.fixture
def project(api, backends):
    """(account id, project id, tag id) of a new project."""
    pid = api.new_project(f"races-{uuid.uuid4().hex[:6]}")["id"]
    tag = api.train("POST", f"/projects/{pid}/tags", params={"name": "t"})["id"]
    yield backends.resolve_key(api.training_key).account_id, pid, tag
    api.train("DELETE", f"/projects/{pid}", expect=204)


_SEEDS = iter(range(9100, 9200))


def _image() -> bytes:
    return load_fashion_mnist("train", (5,), 1, seed=next(_SEEDS))[0][0]


def _store(backends, env, account: str, pid: str, data: bytes, tag: str) -> list[uploads.Result]:
    entry = uploads.Entry(name="x.png", data=data, size=len(data), tag_ids=[tag])
    return uploads.store(backends, cfg.load(GatewayConfig, env), account, pid, [entry])


def _stored(storage, pid: str, data: bytes) -> bool:
    try:
        got = storage.GetImage(spb.GetImageRequest(project_id=pid, sha256=hashlib.sha256(data).hexdigest()))
    except NotFound:
        return False
    return got.data == data


def _rows(api, pid: str) -> int:
    return len(api.train("GET", f"/projects/{pid}/images", params={"take": 50}))


def _restored(by: str) -> float:
    return uploads.RESTORED.labels(by)._value.get()


def test_a_failed_upload_leaves_the_bytes_another_upload_rewrote_meanwhile(api, env, backends, storage,
                                                                          project):
    account, pid, tag = project
    data = _image()
    other: list[uploads.Result] = []

    def add_then_fail(add_images, *args, **kwargs):
        # B uploads the same bytes after A wrote them and before A's rows fail.
        other.extend(_store(backends, env, account, pid, data, tag))
        return add_images(*args, **kwargs)

    before = _restored("failed_upload")
    failing = Hooked(backends, add_images=add_then_fail)
    with pytest.raises(BadRequest):  # A: an unknown tag
        _store(failing, env, account, pid, data, str(uuid.uuid4()))
    assert [r.status for r in other] == ["OK"]
    assert _rows(api, pid) == 1 and _stored(storage, pid, data)
    assert _restored("failed_upload") == before  # B's write kept them: nothing was removed


def test_a_failed_upload_writes_back_bytes_whose_row_came_during_its_removal(api, env, backends,
                                                                            storage, project):
    """The removal's token check passed, then B rewrote the bytes and added its row, then the
    bytes went (the moment between storage's check and its removal): A, which sees B's row
    once its removal is done, writes the bytes back."""
    account, pid, tag = project
    data = _image()
    before = _restored("failed_upload")

    def remove_in_the_window(delete_image_data, project_id, hashes, **kwargs):
        assert kwargs.get("write_tokens"), "a failed upload removes by its write tokens"
        assert [r.status for r in _store(backends, env, account, pid, data, tag)] == ["OK"]
        return delete_image_data(project_id, hashes)  # as if checked before B's write

    failing = Hooked(backends, delete_image_data=remove_in_the_window)
    with pytest.raises(BadRequest):
        _store(failing, env, account, pid, data, str(uuid.uuid4()))
    assert _rows(api, pid) == 1 and _stored(storage, pid, data)
    assert _restored("failed_upload") == before + 1


def test_a_failed_upload_alone_takes_back_what_it_wrote(api, env, backends, storage, project):
    account, pid, _tag = project
    data = _image()
    with pytest.raises(BadRequest):
        _store(backends, env, account, pid, data, str(uuid.uuid4()))
    assert _rows(api, pid) == 0 and not _stored(storage, pid, data)


def test_an_upload_writes_back_reused_bytes_removed_under_it(api, env, backends, storage, project):
    """B reuses bytes the project holds (an orphan here); a removal that passed its checks
    before B's rewrite takes them after B's row is in: B, checking once its rows are in,
    writes them back."""
    account, pid, tag = project
    data = _image()
    assert not storage.PutImage(spb.PutImageRequest(project_id=pid, data=data)).existed
    before = _restored("reusing_upload")

    def add_then_lose(add_images, *args, **kwargs):
        added = add_images(*args, **kwargs)
        backends.delete_image_data(pid, [hashlib.sha256(data).hexdigest()])
        return added

    results = _store(Hooked(backends, add_images=add_then_lose), env, account, pid, data, tag)
    assert [r.status for r in results] == ["OK"]
    assert _stored(storage, pid, data) and _rows(api, pid) == 1
    assert _restored("reusing_upload") == before + 1


def test_deleting_an_image_keeps_its_bytes_when_an_upload_just_reused_them(api, env, backends,
                                                                          storage, project):
    account, pid, tag = project
    data = _image()
    [first] = _store(backends, env, account, pid, data, tag)
    added: list[uploads.Result] = []

    def delete_rows_then_upload(delete_images, *args, **kwargs):
        orphaned = delete_images(*args, **kwargs)
        assert orphaned == [hashlib.sha256(data).hexdigest()]
        # B uploads the same bytes between the rows' deletion and the bytes' removal.
        added.extend(_store(backends, env, account, pid, data, tag))
        return orphaned

    image_flows.delete(Hooked(backends, delete_images=delete_rows_then_upload), account, pid,
                       [first.image.id], False)
    assert [r.status for r in added] == ["OK"] and added[0].image.id != first.image.id
    listed = api.train("GET", f"/projects/{pid}/images", params={"take": 50})
    assert [i["id"] for i in listed] == [added[0].image.id]
    assert api.http.get(listed[0]["originalImageUri"], timeout=30).content == data
