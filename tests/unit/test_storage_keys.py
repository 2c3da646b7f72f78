"""Object-store keys (loupe_common.storage_keys): the bucket layout, one builder per kind."""
from __future__ import annotations

import uuid

import pytest

from loupe_common import storage_keys as keys
from loupe_common.errors import BadRequest

pytestmark = pytest.mark.unit

P, I = str(uuid.uuid4()), str(uuid.uuid4())
SHA = "ab" * 32


def test_image_keys_share_the_projects_prefix():
    assert keys.images_prefix(P) == f"images/{P}/"
    assert keys.image_key(P, SHA) == f"images/{P}/{SHA}"
    assert keys.image_variant_key(P, SHA, "thumbnail") == f"images/{P}/{SHA}.thumbnail"
    for key in (keys.image_key(P, SHA), keys.image_variant_key(P, SHA, "resized")):
        assert key.startswith(keys.images_prefix(P)) and key.startswith(keys.IMAGES)


def test_artifact_and_feature_keys():
    assert keys.head_key(P, I) == f"artifacts/{P}/{I}/head.npz"
    assert keys.artifact_key(P, f"{I}/head.npz") == keys.head_key(P, I)
    assert keys.head_key(P, I).startswith(keys.ARTIFACTS)
    assert keys.feature_key("lite0-ms1", P, SHA) == f"features/lite0-ms1/{P}/{SHA}"
    assert keys.feature_key("lite0-ms1", P, SHA).startswith(keys.FEATURES)


def test_export_keys_lie_below_the_prefixes_that_deletion_removes():
    assert keys.export_prefix(P) == f"exports/{P}/"
    assert keys.export_prefix(P, I) == f"exports/{P}/{I}/"
    assert keys.export_zip_key(P, I, "ONNX") == f"exports/{P}/{I}/ONNX.zip"
    assert keys.export_record_key(P, I, "ONNX") == f"exports/{P}/{I}/ONNX.json"
    manifest = keys.project_manifest_key(P, "m1")
    assert manifest == f"exports/{P}/project-m1.json"
    assert keys.export_zip_key(P, I, "ONNX").startswith(keys.export_prefix(P, I))
    assert manifest.startswith(keys.export_prefix(P)) and manifest.startswith(keys.EXPORTS)


@pytest.mark.parametrize("project, iteration", [
    ("../artifacts", ""), (P, "../x"), ("", ""), (P.upper(), ""), (P, "not-a-uuid"),
])
def test_export_keys_refuse_ids_that_are_not_uuids(project, iteration):
    with pytest.raises(BadRequest) as info:
        keys.export_prefix(project, iteration)
    assert info.value.code == "BadRequestInvalidIds"
    with pytest.raises(BadRequest):
        keys.export_zip_key(project, iteration or I, "ONNX")
