"""A GUID is one id however it is written: upper case, braces, no hyphens. The gateway
canonicalises path ids once, so rows, storage keys and caches all see the same spelling; a
project deleted by its upper-case id leaves none of its bytes behind."""
from __future__ import annotations

import io
import uuid

import pytest
from minio import Minio
from PIL import Image

from loupe_common import storage_keys

pytestmark = pytest.mark.e2e


def _png(i: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), (i * 40 % 256, 120, 200 - i)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def bucket(s3_config):
    client = Minio(s3_config["LOUPE_S3_ENDPOINT"], access_key=s3_config["LOUPE_S3_ACCESS_KEY"],
                   secret_key=s3_config["LOUPE_S3_SECRET_KEY"],
                   secure=s3_config["LOUPE_S3_SECURE"] == "true")
    return client, s3_config["LOUPE_S3_BUCKET"]


def _stored(bucket, project_id: str) -> list[str]:
    client, name = bucket
    return [o.object_name for o in client.list_objects(name, prefix=storage_keys.images_prefix(project_id),
                                                        recursive=True)]


@pytest.mark.parametrize("spell", [str.upper, lambda s: "{" + s + "}", lambda s: s.replace("-", "")])
def test_any_spelling_of_a_project_id_names_the_same_project(api, spell):
    project = api.new_project(f"spelling-{uuid.uuid4().hex[:6]}")
    pid = spell(project["id"])
    assert pid != project["id"]
    tag = api.train("POST", f"/projects/{pid}/tags", params={"name": "a"})
    got = api.train("GET", f"/projects/{pid}")
    assert got["id"] == project["id"]
    summary = api.upload_files(pid, [_png(1)], tag["id"])
    image_id = summary["images"][0]["image"]["id"]
    listed = api.train("GET", f"/projects/{pid}/images/id", params={"imageIds": image_id})
    assert [i["id"] for i in listed] == [image_id]
    api.train("DELETE", f"/projects/{project['id']}", expect=204)


def test_a_project_deleted_by_its_upper_case_id_leaves_no_bytes(api, bucket):
    project = api.new_project(f"upper-delete-{uuid.uuid4().hex[:6]}")
    tag = api.train("POST", f"/projects/{project['id']}/tags", params={"name": "a"})
    summary = api.upload_files(project["id"], [_png(i) for i in range(3)], tag["id"])
    assert summary["isBatchSuccessful"], summary
    # A thumbnail too (a derived variant under the same prefix).
    images = api.train("GET", f"/projects/{project['id']}/images")
    assert api.http.get(images[0]["thumbnailUri"], timeout=30).status_code == 200
    assert len(_stored(bucket, project["id"])) >= 3
    api.train("DELETE", f"/projects/{project['id'].upper()}", expect=204)
    api.train("GET", f"/projects/{project['id']}", expect=404)
    assert _stored(bucket, project["id"]) == []
