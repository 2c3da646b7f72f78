"""The storage service in-process (port 0) against the test stack's real MinIO."""
from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from loupe.v1 import storage_pb2 as pb
from loupe.v1 import storage_pb2_grpc
from loupe_common import config as cfg
from internal_clients import ByRole
from loupe_common import internal_auth
from loupe_common.errors import BadRequest, Internal, NotFound
from loupe_storage import access
from loupe_storage.server import build_server
from loupe_storage.config import StorageConfig

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def storage(s3_config, credentials):
    env = dict(s3_config, LOUPE_STORAGE_ADDR="127.0.0.1:0",
               LOUPE_S3_BUCKET="test-" + uuid.uuid4().hex[:12], LOUPE_INTERNAL_SECRET="storage-tests")
    built = build_server(cfg.load(StorageConfig, env))
    built.start()
    # A trainer: the role that writes and deletes models (the object tests use artifacts/).
    client = ByRole(f"127.0.0.1:{built.port}", storage_pb2_grpc.StorageServiceStub,
                    {role: internal_auth.credential("storage-tests", role) for role in internal_auth.ROLES},
                    access.ALLOW, prefer=(internal_auth.TRAINING, internal_auth.GATEWAY))
    yield client
    client.close()
    built.stop(None)


def _png(color=(200, 30, 30), size=(640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def test_same_bytes_are_stored_once_per_project(storage):
    client = storage
    project = str(uuid.uuid4())
    data = _png()
    first = client.PutImage(pb.PutImageRequest(project_id=project, data=data, content_type="image/png"))
    second = client.PutImage(pb.PutImageRequest(project_id=project, data=data, content_type="image/png"))
    assert first.sha256 == second.sha256 and len(first.sha256) == 64
    assert (first.existed, second.existed) == (False, True)
    other = client.PutImage(pb.PutImageRequest(project_id=str(uuid.uuid4()), data=data))
    assert other.existed is False  # dedupe is per project
    got = client.GetImage(pb.GetImageRequest(project_id=project, sha256=first.sha256))
    assert got.data == data and got.content_type == "image/png"


def test_a_write_token_takes_back_only_bytes_no_later_write_replaced(storage):
    """A failed upload removes the bytes it wrote with its write token: not once another upload
    of the same bytes wrote them again (that upload is adding its row)."""
    project = str(uuid.uuid4())
    data, other = _png((1, 2, 3)), _png((4, 5, 6))
    first = storage.PutImage(pb.PutImageRequest(project_id=project, data=data))
    second = storage.PutImage(pb.PutImageRequest(project_id=project, data=data))
    assert first.write_token and second.write_token and first.write_token != second.write_token
    mine = storage.PutImage(pb.PutImageRequest(project_id=project, data=other))
    deleted = storage.DeleteImageData(pb.DeleteImageDataRequest(
        project_id=project, sha256=[first.sha256, mine.sha256],
        write_tokens=[first.write_token, mine.write_token])).deleted
    assert deleted >= 1
    found = storage.FindImageData(pb.FindImageDataRequest(project_id=project,
                                                          sha256=[first.sha256, mine.sha256]))
    assert list(found.sha256) == [first.sha256]  # rewritten since: kept; the other: gone
    assert storage.GetImage(pb.GetImageRequest(project_id=project, sha256=first.sha256)).data == data
    with pytest.raises(BadRequest):  # one token per hash, or none
        storage.DeleteImageData(pb.DeleteImageDataRequest(
            project_id=project, sha256=[first.sha256, mine.sha256], write_tokens=["x"]))
    # An unknown token removes nothing, as does a hash that is not stored.
    assert storage.DeleteImageData(pb.DeleteImageDataRequest(
        project_id=project, sha256=[first.sha256], write_tokens=["f" * 32])).deleted == 0
    assert storage.GetImage(pb.GetImageRequest(project_id=project, sha256=first.sha256)).data == data


def test_find_image_data_names_the_stored_hashes_only(storage):
    project = str(uuid.uuid4())
    sha = storage.PutImage(pb.PutImageRequest(project_id=project, data=_png((9, 9, 9)))).sha256
    absent = "0" * 64
    found = storage.FindImageData(pb.FindImageDataRequest(project_id=project, sha256=[absent, sha]))
    assert list(found.sha256) == [sha]
    assert not storage.FindImageData(pb.FindImageDataRequest(project_id=str(uuid.uuid4()),
                                                             sha256=[sha])).sha256  # per project
    with pytest.raises(BadRequest):
        storage.FindImageData(pb.FindImageDataRequest(project_id=project, sha256=["nope"]))
    with pytest.raises(BadRequest):
        storage.FindImageData(pb.FindImageDataRequest(project_id=project, sha256=[sha] * 1001))


def test_thumbnail_is_derived_and_small(storage):
    client = storage
    project = str(uuid.uuid4())
    sha = client.PutImage(pb.PutImageRequest(project_id=project, data=_png(size=(1600, 900)))).sha256
    thumb = client.GetImage(pb.GetImageRequest(project_id=project, sha256=sha, variant=pb.IMAGE_VARIANT_THUMBNAIL))
    with Image.open(io.BytesIO(thumb.data)) as img:
        assert img.format == "JPEG" and max(img.size) == 200
    client.DeleteImageData(pb.DeleteImageDataRequest(project_id=project, sha256=[sha]))
    with pytest.raises(NotFound):
        client.GetImage(pb.GetImageRequest(project_id=project, sha256=sha))
    with pytest.raises(NotFound):
        client.GetImage(pb.GetImageRequest(project_id=project, sha256=sha, variant=pb.IMAGE_VARIANT_THUMBNAIL))


def test_delete_all_images_of_a_project(storage):
    client = storage
    project, keep = str(uuid.uuid4()), str(uuid.uuid4())
    shas = [client.PutImage(pb.PutImageRequest(project_id=project, data=_png((i, 0, 0)))).sha256 for i in range(3)]
    kept = client.PutImage(pb.PutImageRequest(project_id=keep, data=_png())).sha256
    assert client.DeleteImageData(pb.DeleteImageDataRequest(project_id=project, all=True)).deleted == 3
    for sha in shas:
        with pytest.raises(NotFound):
            client.GetImage(pb.GetImageRequest(project_id=project, sha256=sha))
    assert client.GetImage(pb.GetImageRequest(project_id=keep, sha256=kept)).data


def test_objects_round_trip_and_prefix_delete(storage):
    client = storage
    prefix = f"artifacts/{uuid.uuid4()}"
    for i in range(2):
        client.PutObject(pb.PutObjectRequest(key=f"{prefix}/{i}.bin", data=bytes([i]) * 10))
    assert client.GetObject(pb.GetObjectRequest(key=f"{prefix}/1.bin")).data == b"\x01" * 10
    assert client.DeleteObjects(pb.DeleteObjectsRequest(prefix=prefix + "/")).deleted == 2
    with pytest.raises(NotFound):
        client.GetObject(pb.GetObjectRequest(key=f"{prefix}/0.bin"))


@pytest.mark.parametrize("key", ["../etc/passwd", "images/x", "artifacts/../images/y", ""])
def test_keys_outside_the_object_namespaces_are_refused(storage, key):
    client = storage
    with pytest.raises(BadRequest):
        client.PutObject(pb.PutObjectRequest(key=key, data=b"x"))


def test_bad_ids_are_refused_with_a_code(storage):
    client = storage
    with pytest.raises(BadRequest) as info:
        client.PutImage(pb.PutImageRequest(project_id="not-a-uuid", data=b"x"))
    assert info.value.code == "BadRequestInvalidIds"


def _project_objects(client, project: str, feature_ids: tuple[str, ...]) -> dict[str, str]:
    """Stores one of everything a project has (an image and its thumbnail, a head, features of
    each definition, an export); returns what was stored: kind -> key or sha."""
    sha = client.PutImage(pb.PutImageRequest(project_id=project, data=_png(size=(300, 200)))).sha256
    client.GetImage(pb.GetImageRequest(project_id=project, sha256=sha, variant=pb.IMAGE_VARIANT_THUMBNAIL))
    stored = {"image": sha, "head": f"artifacts/{project}/{uuid.uuid4()}/head.npz",
              "export": f"exports/{project}/{uuid.uuid4()}/ONNX.zip"}
    stored.update({f"features {f}": f"features/{f}/{project}/{sha}" for f in feature_ids})
    for kind, key in stored.items():
        if kind != "image":
            client.PutObject(pb.PutObjectRequest(key=key, data=b"x", content_type="application/octet-stream"))
    return stored


def _still_there(client, project: str, stored: dict[str, str]) -> list[str]:
    there = []
    for kind, key in stored.items():
        try:
            if kind == "image":
                for variant in (pb.IMAGE_VARIANT_ORIGINAL, pb.IMAGE_VARIANT_THUMBNAIL):
                    client.as_role(internal_auth.GATEWAY).GetImage(
                        pb.GetImageRequest(project_id=project, sha256=key, variant=variant))
            else:
                # features: the trainer's to read; artifacts and exports: the gateway's
                role = internal_auth.TRAINING if kind.startswith("features") else internal_auth.GATEWAY
                client.as_role(role).GetObject(pb.GetObjectRequest(key=key))
            there.append(kind)
        except NotFound:
            pass
    return there


def test_delete_project_data_removes_every_object_of_the_project_only(storage):
    client = storage
    features = (f"def-{uuid.uuid4().hex[:6]}", f"def-{uuid.uuid4().hex[:6]}")
    doomed, kept = str(uuid.uuid4()), str(uuid.uuid4())
    doomed_objects = _project_objects(client, doomed, features)
    kept_objects = _project_objects(client, kept, features)
    assert sorted(_still_there(client, doomed, doomed_objects)) == sorted(doomed_objects)
    deleted = client.DeleteProjectData(pb.DeleteProjectDataRequest(project_id=doomed)).deleted
    # the original, its thumbnail, the head, the export and the features of both definitions
    assert deleted == 2 + 2 + len(features)
    assert _still_there(client, doomed, doomed_objects) == []
    assert sorted(_still_there(client, kept, kept_objects)) == sorted(kept_objects)
    assert client.DeleteProjectData(pb.DeleteProjectDataRequest(project_id=doomed)).deleted == 0


def test_delete_project_data_is_the_gateways_and_needs_a_project_id(storage):
    for role in (internal_auth.TRAINING, internal_auth.PREDICTION):
        with pytest.raises(Internal, match="PERMISSION_DENIED"):
            storage.as_role(role).DeleteProjectData(pb.DeleteProjectDataRequest(project_id=str(uuid.uuid4())))
    for bad in ("", "artifacts", "../x", str(uuid.uuid4()).upper()):
        with pytest.raises(BadRequest):
            storage.DeleteProjectData(pb.DeleteProjectDataRequest(project_id=bad))
