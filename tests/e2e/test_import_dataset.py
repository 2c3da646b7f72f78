"""`loupe export-dataset` / `loupe import-dataset` against the running system: a project of the
test stack written to a folder (ImageFolder plus manifest.json), the folder checked, exported
again (resumed), imported into a second Loupe install with its ids, imported again as a second
copy with new ids, and a plain ImageFolder imported.

The second install is the one test_import_azure.py uses (this module sorts next to it, so it
is started once for both; tests/conftest.py)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from loupe_cli.__main__ import main
from project_copies import account, inventory, png, upload
from rest_api import Api

pytestmark = pytest.mark.e2e

UNSAFE = "a/b: c?"  # a tag name no folder can have
UNSAFE_FOLDER = "a%2Fb%3A c%3F"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cli(capsys, api: Api, *args: str) -> tuple[int, str, str]:
    code = main(["--endpoint", api.endpoint, "--training-key", api.training_key, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def project(live, live_env, credentials):
    """A multilabel project of a fresh account: 300 images (more than a page of 256): 200 `cat`,
    60 `cat` + the unsafe tag (some with metadata), 20 under a Negative tag, 20 untagged (some
    with metadata)."""
    api = account(live, credentials, "dataset-source", live_env)
    p = api.new_project(f"ds-{uuid.uuid4().hex[:6]}", classificationType="Multilabel",
                        description="exported")
    cat = api.train("POST", f"/projects/{p['id']}/tags", params={"name": "cat", "description": "a cat"})
    odd = api.train("POST", f"/projects/{p['id']}/tags", params={"name": UNSAFE})
    neg = api.train("POST", f"/projects/{p['id']}/tags", params={"name": "none", "type": "Negative"})
    items = [(n, [cat["id"]], None) for n in range(200)]
    items += [(n, [cat["id"], odd["id"]], {"camera": "c2", "site": "north"} if n % 7 == 0 else None)
              for n in range(200, 260)]
    items += [(n, [neg["id"]], None) for n in range(260, 280)]
    items += [(n, [], {"batch": "u"} if n % 3 == 0 else None) for n in range(280, 300)]
    upload(api, p["id"], items)
    return {"api": api, "project": p, "tags": {"cat": cat, "odd": odd, "none": neg}}


@pytest.fixture(scope="module")
def exported(project, other_live_env, tmp_path_factory):
    """The project exported with --source-endpoint/--source-key (as from Azure), loupe itself
    pointing at the other install."""
    src = project["api"]
    folder = tmp_path_factory.mktemp("dataset") / "out"
    started = time.monotonic()
    code = main(["--endpoint", other_live_env["LOUPE_ENDPOINT"], "--training-key",
                 other_live_env["LOUPE_TRAINING_KEY"], "export-dataset", project["project"]["name"],
                 str(folder), "--source-endpoint", src.endpoint, "--source-key", src.training_key,
                 "--source-rate", "0"])
    elapsed = time.monotonic() - started
    assert code == 0
    print(f"\nexport-dataset of 300 images took {elapsed:.1f} s")
    return folder


def test_export_writes_an_image_folder_and_a_manifest(project, exported, capsys):
    src, p, tags = project["api"], project["project"], project["tags"]
    manifest = json.loads((exported / "manifest.json").read_text())
    assert (manifest["format"], manifest["version"], manifest["complete"]) == ("loupe-dataset", 1, True)
    assert manifest["project"]["id"] == p["id"] and manifest["project"]["name"] == p["name"]
    assert manifest["project"]["description"] == "exported"
    settings = manifest["project"]["settings"]
    assert settings["classificationType"] == "Multilabel"
    assert settings["domainId"] == p["settings"]["domainId"] == settings["domain"]["id"]
    assert {(t["id"], t["name"], t["description"], t["type"], t["folder"]) for t in manifest["tags"]} == {
        (tags["cat"]["id"], "cat", "a cat", "Regular", "cat"),
        (tags["odd"]["id"], UNSAFE, "", "Regular", UNSAFE_FOLDER),
        (tags["none"]["id"], "none", "", "Negative", "none")}
    assert sorted(os.listdir(exported)) == sorted(["manifest.json", "_untagged", "cat", "none", UNSAFE_FOLDER])

    want = {_sha(png(n)): n for n in range(300)}
    images = manifest["images"]
    assert len(images) == 300 and {i["sha256"] for i in images} == set(want)
    listed = {i["id"]: i for i in src.train("GET", f"/projects/{p['id']}/images", params={"take": 256})}
    listed.update({i["id"]: i for i in src.train("GET", f"/projects/{p['id']}/images",
                                                 params={"take": 256, "skip": 256})})
    assert set(listed) == {i["id"] for i in images}
    folder_of = {t["id"]: t["folder"] for t in manifest["tags"]}
    for image in images:
        n = want[image["sha256"]]
        source = listed[image["id"]]
        assert sorted(image["tagIds"]) == sorted(t["tagId"] for t in source["tags"])
        assert image["metadata"] == (source["metadata"] or {})
        assert (image["width"], image["height"], image["created"]) == (24, 24, source["created"])
        expected = [f"{folder_of[t]}/{image['id']}.png" for t in image["tagIds"]] or [f"_untagged/{image['id']}.png"]
        assert sorted(image["files"]) == sorted(expected)
        for f in image["files"]:
            assert (exported / f).read_bytes() == png(n)
        if len(image["files"]) > 1:  # one file, linked into each tag's folder
            assert len({(exported / f).stat().st_ino for f in image["files"]}) == 1
    assert len(os.listdir(exported / UNSAFE_FOLDER)) == 60
    assert len(os.listdir(exported / "cat")) == 260 and len(os.listdir(exported / "_untagged")) == 20
    assert sum(1 for i in images if i["metadata"]) == 9 + 6

    # Again, with loupe's own endpoint as the source: nothing is downloaded; a damaged file is.
    damaged = exported / images[0]["files"][0]
    damaged.write_bytes(b"not the image")
    code, out, err = _cli(capsys, src, "export-dataset", p["id"], str(exported))
    assert code == 0, out + err
    assert "images: 300; 1 downloaded, 299 already in the folder (same sha256), 0 failed" in out, out
    assert "images" in err and "%" in err  # the progress bar
    assert damaged.read_bytes() == png(want[images[0]["sha256"]])
    again = json.loads((exported / "manifest.json").read_text())
    assert sorted((i["id"], i["files"], i["sha256"]) for i in again["images"]) == \
        sorted((i["id"], i["files"], i["sha256"]) for i in images)

    # Another project into the same folder is refused.
    other = src.new_project(f"ds-other-{uuid.uuid4().hex[:6]}")
    code, out, err = _cli(capsys, src, "export-dataset", other["id"], str(exported))
    assert code == 2 and f"holds project {p['id']}" in err


def test_import_into_another_install_keeps_ids_tags_metadata_and_bytes(project, exported,
                                                                        other_live_env, capsys):
    src, p = project["api"], project["project"]
    dest = Api(other_live_env["LOUPE_ENDPOINT"], other_live_env["LOUPE_TRAINING_KEY"],
               other_live_env["LOUPE_PREDICTION_KEY"], other_live_env["LOUPE_PREDICTION_RESOURCE_ID"])
    started = time.monotonic()
    code, out, err = _cli(capsys, dest, "import-dataset", str(exported))
    elapsed = time.monotonic() - started
    assert code == 0, out + err
    with capsys.disabled():
        print(f"\nimport-dataset of 300 images took {elapsed:.1f} s")
    assert f"imported {p['id']}" in out and "project created; tags: 3 created" in out
    assert "images: 300 in the folder; 300 uploaded, 0 already there (same bytes), 0 refused" in out
    got = dest.train("GET", f"/projects/{p['id']}")
    assert (got["name"], got["description"], got["settings"]["classificationType"]) == \
        (p["name"], "exported", "Multilabel")
    assert got["settings"]["domainId"] == p["settings"]["domainId"]
    strip = lambda tags: sorted((t["id"], t["name"], t["description"], t["type"], t["imageCount"]) for t in tags)
    assert strip(dest.train("GET", f"/projects/{p['id']}/tags")) == strip(src.train("GET", f"/projects/{p['id']}/tags"))
    assert inventory(dest, p["id"]) == inventory(src, p["id"])

    # A rerun uploads nothing twice.
    code, out, err = _cli(capsys, dest, "import-dataset", str(exported), "--quiet")
    assert code == 0, out + err
    assert "project already present; tags: 0 created, 3 already present" in out
    assert "300 in the folder; 0 uploaded, 300 already there (same bytes), 0 refused" in out
    assert dest.train("GET", f"/projects/{p['id']}/images/count") == 300


def test_a_second_copy_with_new_ids_in_the_same_install(project, exported, capsys):
    src, p = project["api"], project["project"]
    code, out, err = _cli(capsys, src, "import-dataset", str(exported), "--new-ids", "--name", "copy")
    assert code == 0, out + err
    assert "300 uploaded" in out
    copy = next(q for q in src.train("GET", "/projects") if q["name"] == "copy")
    assert copy["id"] != p["id"] and copy["settings"]["classificationType"] == "Multilabel"
    old_tags = {t["id"]: t for t in src.train("GET", f"/projects/{p['id']}/tags")}
    new_tags = {t["id"]: t for t in src.train("GET", f"/projects/{copy['id']}/tags")}
    assert not set(old_tags) & set(new_tags)
    by_name = {t["name"]: t["id"] for t in new_tags.values()}
    assert {(t["name"], t["type"], t["description"]) for t in new_tags.values()} == \
        {(t["name"], t["type"], t["description"]) for t in old_tags.values()}
    renamed = {h: (frozenset(by_name[old_tags[t]["name"]] for t in tagged), meta)
               for h, (tagged, meta) in inventory(src, p["id"]).items()}
    assert inventory(src, copy["id"]) == renamed


def test_a_folder_that_does_not_match_its_manifest_is_refused(project, exported, capsys, tmp_path):
    api = project["api"]
    code, out, err = _cli(capsys, api, "import-dataset", str(tmp_path / "nowhere"))
    assert code == 2 and "no such folder" in err

    bad = tmp_path / "bad"
    shutil.copytree(exported, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    first, second = manifest["images"][0], manifest["images"][1]
    (bad / first["files"][0]).write_bytes(b"changed")
    (bad / second["files"][0]).unlink()
    before = len(api.train("GET", "/projects"))
    code, out, err = _cli(capsys, api, "import-dataset", str(bad), "--new-ids")
    assert code == 2, out + err
    assert "2 files do not match the manifest; nothing was imported" in err
    assert f"image {first['id']}: {first['files'][0]} has sha256" in err
    assert f"image {second['id']}: {second['files'][0]} is missing" in err
    assert len(api.train("GET", "/projects")) == before

    manifest["version"] = 99
    (bad / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = _cli(capsys, api, "import-dataset", str(bad))
    assert code == 2 and "manifest version 99 is not known" in err


def test_a_plain_image_folder_imports_as_a_new_project(project, capsys, tmp_path):
    api = project["api"]
    folder = tmp_path / "plain"
    for rel, n in [("red/1.png", 9001), ("red/2.png", 9002), ("blue/3.png", 9003),
                   ("blue/same-as-1.png", 9001), ("4.png", 9004), ("blue/notes.txt", None)]:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(png(n) if n else b"not an image")
    code, out, err = _cli(capsys, api, "import-dataset", str(folder))
    assert code == 0, out + err
    assert "a plain ImageFolder" in err
    assert "project created; tags: 2 created" in out
    assert "images: 4 in the folder; 4 uploaded" in out
    made = next(q for q in api.train("GET", "/projects") if q["name"] == "plain")
    assert made["settings"]["classificationType"] == "Multilabel"  # 1.png is in two folders
    tags = {t["name"]: t["id"] for t in api.train("GET", f"/projects/{made['id']}/tags")}
    assert set(tags) == {"red", "blue"}
    assert inventory(api, made["id"]) == {
        _sha(png(9001)): (frozenset({tags["red"], tags["blue"]}), {}),
        _sha(png(9002)): (frozenset({tags["red"]}), {}),
        _sha(png(9003)): (frozenset({tags["blue"]}), {}),
        _sha(png(9004)): (frozenset(), {})}
