"""`loupe import-azure` against the running system: an account of the test stack is the source
(Loupe serves Custom Vision's training API, so it stands in for Azure), a second, independent
Loupe install the destination. Project and tag ids are unique within an install, so another
account of the same install cannot take them: that is the Conflict case."""
from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from loupe_cli.__main__ import main
from project_copies import account as _account
from project_copies import inventory as _inventory
from project_copies import png as _png
from project_copies import upload as _upload
from rest_api import Api

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"


@pytest.fixture(scope="module")
def source(live, live_env, credentials):
    """A source account with a multilabel project (300 images: 270 tagged, a Negative tag,
    metadata, 30 untagged) and a small multiclass project, trained and published."""
    api = _account(live, credentials, "import-source", live_env)
    ml = api.new_project(f"imp-ml-{uuid.uuid4().hex[:6]}", classificationType="Multilabel",
                         description="many labels")
    a = api.train("POST", f"/projects/{ml['id']}/tags", params={"name": "cat", "description": "a cat"})
    b = api.train("POST", f"/projects/{ml['id']}/tags", params={"name": "dog"})
    neg = api.train("POST", f"/projects/{ml['id']}/tags", params={"name": "none", "type": "Negative"})
    items = [(n, [a["id"]], {"camera": "c1"} if n % 10 == 0 else None) for n in range(200)]
    items += [(n, [a["id"], b["id"]], {"camera": "c2", "site": "north"} if n % 7 == 0 else None)
              for n in range(200, 250)]
    items += [(n, [neg["id"]], None) for n in range(250, 270)]
    items += [(n, [], {"batch": "u"} if n % 3 == 0 else None) for n in range(270, 300)]
    _upload(api, ml["id"], items)

    mc = api.new_project(f"imp-mc-{uuid.uuid4().hex[:6]}", domainId=COMPACT,
                         classificationType="Multiclass", description="one label")
    x = api.train("POST", f"/projects/{mc['id']}/tags", params={"name": "x"})
    y = api.train("POST", f"/projects/{mc['id']}/tags", params={"name": "y"})
    _upload(api, mc["id"], [(1000 + n, [x["id"] if n % 2 else y["id"]], None) for n in range(20)]
            + [(1100 + n, [], None) for n in range(3)])
    iteration = api.train("POST", f"/projects/{mc['id']}/train")
    assert api.wait_iteration(mc["id"], iteration["id"])["status"] == "Completed"
    api.train("POST", f"/projects/{mc['id']}/iterations/{iteration['id']}/publish",
              params={"publishName": "imported-v1", "predictionId": api.resource_id})
    return {"api": api, "ml": ml, "mc": mc}


def _import(capsys, source: Api, dest: Api, *args: str) -> tuple[int, str, str]:
    code = main(["--endpoint", dest.endpoint, "--training-key", dest.training_key,
                 "import-azure", "--source-endpoint", source.endpoint,
                 "--source-key", source.training_key, "--source-rate", "0", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_import_keeps_ids_bytes_tags_and_metadata_and_resumes(other_live_env, source, capsys,
                                                              tmp_path):
    src = source["api"]
    dest = Api(other_live_env["LOUPE_ENDPOINT"], other_live_env["LOUPE_TRAINING_KEY"],
               other_live_env["LOUPE_PREDICTION_KEY"], other_live_env["LOUPE_PREDICTION_RESOURCE_ID"])
    ml, mc = source["ml"], source["mc"]
    state = tmp_path / "state.json"

    # A dry run reads everything and changes nothing.
    code, out, err = _import(capsys, src, dest, "--state", str(state), "--dry-run")
    assert code == 0, out + err
    assert f"would import {ml['id']}" in out and f"would import {mc['id']}" in out
    assert "300 images, 0 copied by earlier runs" in out and "23 images" in out
    assert dest.train("GET", "/projects") == [] and not state.exists()

    # Interrupted after 100 images: exit 3, the state says what was copied.
    code, out, err = _import(capsys, src, dest, "--state", str(state), "--stop-after", "100")
    assert code == 3, out + err
    assert "stopped before the end" in out and f"incomplete {ml['id']}" in out
    assert dest.train("GET", f"/projects/{ml['id']}/images/tagged/count") == 100
    assert "images" in err and "%" in err  # the progress bar
    saved = json.loads(state.read_text())
    assert len(saved["projects"][ml["id"]]["images"]) == 100
    # As if killed after an upload but before the state was written: the last 30 are not
    # in the state, so the next run sends them again, and Loupe keeps them once.
    saved["projects"][ml["id"]]["images"] = saved["projects"][ml["id"]]["images"][:70]
    state.write_text(json.dumps(saved))

    started = time.monotonic()
    code, out, err = _import(capsys, src, dest, "--state", str(state))
    elapsed = time.monotonic() - started
    assert code == 0, out + err
    with capsys.disabled():
        print(f"\nimport of {300 - 70 + 23} images (230 + 23 uploaded) took {elapsed:.1f} s")
    assert f"imported   {ml['id']}" in out and f"imported   {mc['id']}" in out
    assert "200 copied, 30 already there (same bytes), 70 copied by earlier runs, 0 refused" in out
    assert "23 copied, 0 already there (same bytes), 0 copied by earlier runs" in out
    assert "tags: 2 created" in out  # the multiclass project's

    # Same ids, settings, tags (with description and type), bytes, tags per image, metadata.
    for project in (ml, mc):
        pid = project["id"]
        got = dest.train("GET", f"/projects/{pid}")
        want = src.train("GET", f"/projects/{pid}")
        assert (got["id"], got["name"], got["description"]) == (want["id"], want["name"], want["description"])
        assert got["settings"]["domainId"] == want["settings"]["domainId"]
        assert got["settings"]["classificationType"] == want["settings"]["classificationType"]
        strip = lambda tags: sorted((t["id"], t["name"], t["description"], t["type"], t["imageCount"])
                                    for t in tags)
        assert strip(dest.train("GET", f"/projects/{pid}/tags")) == strip(src.train("GET", f"/projects/{pid}/tags"))
        assert _inventory(dest, pid) == _inventory(src, pid)
    assert dest.train("GET", f"/projects/{ml['id']}/images/untagged/count") == 30
    assert {t["type"] for t in dest.train("GET", f"/projects/{ml['id']}/tags")} == {"Regular", "Negative"}

    # A rerun copies nothing; --publish trains and publishes under the source's name.
    code, out, err = _import(capsys, src, dest, "--state", str(state), "--publish",
                             "--prediction-resource", dest.resource_id, "--project", mc["id"])
    assert code == 0, out + err
    assert "0 copied, 0 already there (same bytes), 23 copied by earlier runs" in out
    assert "published iteration" in out and "'imported-v1'" in out
    image = _png(1001)
    prediction = dest.predict(f"/{mc['id']}/classify/iterations/imported-v1/image", image)
    assert {p["tagId"] for p in prediction["predictions"]} == {
        t["id"] for t in src.train("GET", f"/projects/{mc['id']}/tags")}

    # Without the state file, everything is seen as already there (dedupe by bytes).
    code, out, err = _import(capsys, src, dest, "--state", str(tmp_path / "fresh.json"),
                             "--project", ml["id"])
    assert code == 0, out + err
    assert "project already present; tags: 0 created, 3 already present" in out
    assert "0 copied, 300 already there (same bytes)" in out
    assert dest.train("GET", f"/projects/{ml['id']}/images/count") == 300


def test_ids_another_account_holds_are_a_conflict(live, live_env, credentials, source, capsys,
                                                  tmp_path):
    src, ml = source["api"], source["ml"]
    other = _account(live, credentials, "import-other", live_env)
    code, out, err = _import(capsys, src, other, "--state", str(tmp_path / "s.json"),
                             "--project", ml["id"])
    assert code == 1, out + err
    assert f"failed     {ml['id']}" in out and "Conflict" in out and "not imported" in out
    assert "copied" not in out  # nothing was reached: no counts
    assert other.train("GET", "/projects") == []

    # The routes themselves: a PUT of a taken project or tag id is 409 Conflict; with a fresh
    # id it creates (201), and again it answers 200 with the same project.
    resp = other.http.put(f"{other.endpoint}/customvision/v3.3/training/projects/{ml['id']}",
                          headers={"Training-Key": other.training_key}, json={"name": "mine"})
    assert resp.status_code == 409 and resp.json()["code"] == "Conflict"
    pid = str(uuid.uuid4())
    made = other.train("PUT", f"/projects/{pid}", expect=201, json={"name": "mine", "description": "d"})
    assert made["id"] == pid and made["description"] == "d"
    assert other.train("PUT", f"/projects/{pid}", expect=200, json={"name": "renamed"})["name"] == "mine"
    tag_id = src.train("GET", f"/projects/{ml['id']}/tags")[0]["id"]
    resp = other.http.put(f"{other.endpoint}/customvision/v3.3/training/projects/{pid}/tags/{tag_id}",
                          headers={"Training-Key": other.training_key}, json={"name": "t"})
    assert resp.status_code == 409 and resp.json()["code"] == "Conflict"
    tid = str(uuid.uuid4()).upper()  # any GUID spelling; stored canonical
    tag = other.train("PUT", f"/projects/{pid}/tags/{tid}", expect=201,
                      json={"name": "t", "type": "Negative", "description": "neg"})
    assert (tag["id"], tag["type"], tag["description"]) == (tid.lower(), "Negative", "neg")
    assert other.train("PUT", f"/projects/{pid}/tags/{tid}", expect=200, json={"name": "t"})["type"] == "Negative"
    # The public API's creation is unchanged: a new random id.
    assert other.train("POST", "/projects", params={"name": "plain"})["id"] not in (pid, ml["id"])


def test_a_killed_import_resumes_with_every_image_once(other_live_env, source, capsys, tmp_path):
    """`bin/loupe import-azure` killed (SIGKILL) while it copies; the rerun ends with exactly
    the source's images."""
    src = source["api"]
    dest = Api(other_live_env["LOUPE_ENDPOINT"], other_live_env["LOUPE_TRAINING_KEY"],
               other_live_env["LOUPE_PREDICTION_KEY"], other_live_env["LOUPE_PREDICTION_RESOURCE_ID"])
    project = src.new_project(f"imp-kill-{uuid.uuid4().hex[:6]}")
    tag = src.train("POST", f"/projects/{project['id']}/tags", params={"name": "t"})
    _upload(src, project["id"], [(5000 + n, [tag["id"]] if n % 2 else [], None) for n in range(200)])
    state = tmp_path / "state.json"
    command = [str(REPO / "bin" / "loupe"), "--endpoint", dest.endpoint, "--training-key",
               dest.training_key, "import-azure", "--source-endpoint", src.endpoint,
               "--source-key", src.training_key, "--source-rate", "0", "--project", project["id"],
               "--state", str(state)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # the first progress line: one upload call is done
            if line.startswith("["):
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    copied = dest.train("GET", f"/projects/{project['id']}/images/count")
    assert 0 < copied < 200

    code, out, err = _import(capsys, src, dest, "--state", str(state), "--project", project["id"])
    assert code == 0, out + err
    assert f"imported   {project['id']}" in out and "0 refused" in out
    assert dest.train("GET", f"/projects/{project['id']}/images/count") == 200
    assert _inventory(dest, project["id"]) == _inventory(src, project["id"])
