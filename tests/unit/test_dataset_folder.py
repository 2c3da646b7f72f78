"""`loupe export-dataset` / `import-dataset` without a server or files: folder names for tag
names, the manifest built from Custom Vision's JSON, its validation, and the manifest of a
plain ImageFolder."""
from __future__ import annotations

import copy
import hashlib

import pytest

from loupe_cli.dataset import (
    MAX_FOLDER_BYTES, UNTAGGED, build_manifest, folder_name, image_entry, image_extension,
    plain_manifest, tag_folders, validate_manifest,
)

pytestmark = pytest.mark.unit

PNG = b"\x89PNG\r\n\x1a\n" + b"rest"
TAGS = [{"id": "t1", "name": "cat", "description": "a cat", "type": "Regular"},
        {"id": "t2", "name": "a/b", "type": "Regular"},
        {"id": "t3", "name": "none", "type": "Negative"}]
PROJECT = {"id": "p1", "name": "pets", "description": "d",
           "settings": {"domainId": "D1", "classificationType": "Multilabel",
                        "targetExportPlatforms": ["ONNX"]}}
DOMAIN = {"id": "D1", "name": "General (compact)", "type": "Classification", "exportable": True,
          "exportablePlatforms": ["ONNX"]}


def _image(image_id: str, *tag_ids: str, metadata: dict | None = None) -> dict:
    return {"id": image_id, "width": 24, "height": 20, "created": "2026-01-01T00:00:00Z",
            "tags": [{"tagId": t, "tagName": "x"} for t in tag_ids], "metadata": metadata}


@pytest.mark.parametrize("name, folder", [
    ("cat", "cat"),
    ("a/b", "a%2Fb"),
    ("a\\b:c*d?e\"f<g>h|i", "a%5Cb%3Ac%2Ad%3Fe%22f%3Cg%3Eh%7Ci"),
    ("50%", "50%25"),  # the escape character itself, so two names never share a folder
    ("tab\there", "tab%09here"),
    (".", "%2E"), ("..", "%2E%2E"), (".hidden", "%2Ehidden"),
    ("_untagged", "%5Funtagged"),  # never the untagged images' folder
    ("end.", "end%2E"), ("end ", "end%20"),
    ("CON", "%43ON"), ("nul.txt", "%6Eul.txt"), ("console", "console"),
    ("", "%00"),
    ("Grüße", "Grüße"),
])
def test_folder_names_are_safe_everywhere(name, folder):
    assert folder_name(name) == folder


def test_distinct_names_get_distinct_folders():
    names = ["a/b", "a%2Fb", "a%b", "a%25b", ".x", "%2Ex", "_x", "%5Fx"]
    assert len({folder_name(n) for n in names}) == len(names)


def test_a_long_name_is_cut_with_a_hash():
    long_a, long_b = "x" * 300, "x" * 299 + "y"
    a, b = folder_name(long_a), folder_name(long_b)
    assert len(a.encode()) <= MAX_FOLDER_BYTES and a != b
    assert a.endswith("~" + hashlib.sha256(long_a.encode()).hexdigest()[:12])
    assert len(folder_name("é" * 200).encode()) <= MAX_FOLDER_BYTES  # cut on a character


def test_tag_folders_are_unique_ignoring_case():
    folders = tag_folders([{"id": "1", "name": "Cat"}, {"id": "2", "name": "cat"},
                           {"id": "3", "name": "CAT"}, {"id": "4", "name": "dog"}])
    assert folders == {"1": "Cat", "2": "cat~2", "3": "CAT~3", "4": "dog"}
    assert UNTAGGED not in tag_folders([{"id": "u", "name": UNTAGGED}]).values()


def test_image_extension_by_signature():
    assert image_extension(PNG) == "png"
    assert image_extension(b"\xff\xd8\xff\xe0....") == "jpg"
    assert image_extension(b"GIF89a") == "gif"
    assert image_extension(b"BM....") == "bmp"
    assert image_extension(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert image_extension(b"II*\x00") == image_extension(b"MM\x00*") == "tif"
    assert image_extension(b"what") == "bin"


def test_an_image_is_in_each_of_its_tags_folders_or_untagged():
    folders = tag_folders(TAGS)
    entry = image_entry(_image("i1", "t1", "t2", metadata={"k": "v"}), PNG, folders)
    assert entry == {"id": "i1", "files": ["cat/i1.png", "a%2Fb/i1.png"],
                     "sha256": hashlib.sha256(PNG).hexdigest(), "width": 24, "height": 20,
                     "tagIds": ["t1", "t2"], "metadata": {"k": "v"},
                     "created": "2026-01-01T00:00:00Z"}
    assert image_entry(_image("i2"), PNG, folders)["files"] == ["_untagged/i2.png"]


def _manifest() -> dict:
    folders = tag_folders(TAGS)
    images = [image_entry(_image("i1", "t1", "t2"), PNG, folders),
              image_entry(_image("i2", "t3", metadata={"a": "1"}), PNG + b"2", folders),
              image_entry(_image("i3"), PNG + b"3", folders)]
    return build_manifest(PROJECT, DOMAIN, TAGS, images, "https://src", True, "2026-02-02T00:00:00+00:00")


def test_the_manifest_carries_project_settings_tags_and_folders():
    m = _manifest()
    assert (m["format"], m["version"], m["complete"], m["source"]) == ("loupe-dataset", 1, True, "https://src")
    assert m["project"] == {"id": "p1", "name": "pets", "description": "d", "settings": {
        "classificationType": "Multilabel", "domainId": "D1",
        "domain": {"id": "D1", "name": "General (compact)", "type": "Classification", "exportable": True},
        "targetExportPlatforms": ["ONNX"]}}
    assert m["tags"] == [
        {"id": "t1", "name": "cat", "description": "a cat", "type": "Regular", "folder": "cat"},
        {"id": "t2", "name": "a/b", "description": "", "type": "Regular", "folder": "a%2Fb"},
        {"id": "t3", "name": "none", "description": "", "type": "Negative", "folder": "none"}]
    assert m["untaggedFolder"] == "_untagged" and len(m["images"]) == 3
    assert validate_manifest(m) == []
    assert "key" not in str(m).lower()  # the source's key is never written


@pytest.mark.parametrize("change, problem", [
    (lambda m: m.update(format="other"), "not a loupe-dataset manifest"),
    (lambda m: m.update(version=2), "manifest version 2 is not known to this loupe (it reads version 1)"),
    (lambda m: m.pop("version"), "manifest version None is not known"),
    (lambda m: m.update(complete=False), "the export did not finish"),
    (lambda m: m["project"].pop("id"), "project: needs an id and a name"),
    (lambda m: m["tags"][0].update(type="Odd"), "tag t1: unknown type 'Odd'"),
    (lambda m: m["images"][0].update(tagIds=["t1", "zz"]), "image i1: unknown tag ids zz"),
    (lambda m: m["images"][0].update(files=["../etc/passwd"]), "image i1: file path '../etc/passwd' is not"),
    (lambda m: m["images"][0].update(files=["/abs"]), "is not <folder>/<file>"),
    (lambda m: m["images"][0].update(files=["a/b/c.png"]), "is not <folder>/<file>"),
    (lambda m: m["images"][0].update(files=[]), "image i1: no files"),
    (lambda m: m["images"][0].update(sha256="abc"), "image i1: no sha256"),
    (lambda m: m["images"][1].update(id="i1"), "image i1: listed twice"),
    (lambda m: m["images"][0].update(metadata=[1]), "metadata is not an object"),
    (lambda m: m.update(images={}), "tags and images must be lists"),
])
def test_validation_names_what_is_wrong(change, problem):
    m = copy.deepcopy(_manifest())
    change(m)
    problems = validate_manifest(m)
    assert any(problem in p for p in problems), problems
    assert validate_manifest([]) == ["not a loupe-dataset manifest (no \"format\": \"loupe-dataset\")"]


def test_a_plain_image_folder_is_a_tag_per_folder_and_an_image_per_content():
    files = {"red": ["red/1.png", "red/2.png"], "blue": ["blue/1-again.png"], "": ["top.png"],
             UNTAGGED: ["_untagged/u.png"]}
    digests = {"red/1.png": "a" * 64, "red/2.png": "b" * 64, "blue/1-again.png": "a" * 64,
               "top.png": "c" * 64, "_untagged/u.png": "d" * 64}
    m = plain_manifest(files, digests, "mine")
    assert m["plain"] and m["project"]["id"] is None and m["project"]["name"] == "mine"
    assert m["project"]["settings"]["classificationType"] == "Multilabel"
    assert [(t["name"], t["folder"]) for t in m["tags"]] == [("blue", "blue"), ("red", "red")]
    by_sha = {i["sha256"]: i for i in m["images"]}
    assert sorted(by_sha["a" * 64]["files"]) == ["blue/1-again.png", "red/1.png"]
    assert sorted(by_sha["a" * 64]["tagIds"]) == ["folder:blue", "folder:red"]
    assert by_sha["c" * 64]["tagIds"] == [] and by_sha["d" * 64]["tagIds"] == []
    assert len(m["images"]) == 4
    single = plain_manifest({"red": ["red/1.png"], "blue": ["blue/2.png"]},
                            {"red/1.png": "a" * 64, "blue/2.png": "b" * 64}, "x")
    assert single["project"]["settings"]["classificationType"] == "Multiclass"
