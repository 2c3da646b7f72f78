"""`loupe import-azure` without a server: throttling and Retry-After, what is skipped, domain
mapping, upload batching, the resume state and the report."""
from __future__ import annotations

import email.utils
import json

import pytest

from loupe_cli import importer
from loupe_cli.api import MAX_RETRY_WAIT, Throttle, retry_after_seconds
from loupe_cli.importer import (
    OD_MESSAGE, ImportState, ProjectReport, Report, SourceImage, default_state_path,
    export_platforms, map_domain, skip_reason, upload_groups,
)

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
LOUPE_GENERAL = {"id": "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31", "name": "General",
                 "type": "Classification", "exportable": False, "exportablePlatforms": []}
LOUPE_COMPACT = {"id": "0732100f-1a38-4e49-a514-c9b44c697ab5", "name": "General (compact)",
                 "type": "Classification", "exportable": True, "exportablePlatforms": ["ONNX"]}
DEST_DOMAINS = [LOUPE_GENERAL, LOUPE_COMPACT]
# Source domains as Custom Vision lists them (ids are only data here).
FOOD = {"id": "c151d5b5-dd07-472a-acc8-15d29dea8518", "name": "Food", "type": "Classification",
        "exportable": False}
FOOD_COMPACT = {"id": "8882951b-82cd-4c32-970b-d5f8cb8bf6d7", "name": "Food (compact)",
                "type": "Classification", "exportable": True}
OD_GENERAL = {"id": "da2e3a8a-40a5-4171-82f4-58522f70fbc1", "name": "General",
              "type": "ObjectDetection", "exportable": False}
SOURCE_DOMAINS = {d["id"]: d for d in (FOOD, FOOD_COMPACT, OD_GENERAL, LOUPE_GENERAL)}


# --- 429 / Retry-After and pacing (pure: nothing sleeps) -------------------------------------

def test_retry_after_in_seconds_or_as_a_date_within_the_cap():
    assert retry_after_seconds("2", NOW) == 2.0
    assert retry_after_seconds("0.5", NOW) == 0.5
    assert retry_after_seconds(None, NOW) == 1.0 and retry_after_seconds("", NOW) == 1.0
    assert retry_after_seconds("soon", NOW) == 1.0
    assert retry_after_seconds("600", NOW) == MAX_RETRY_WAIT
    date = email.utils.formatdate(NOW + 7, usegmt=True)
    assert retry_after_seconds(date, NOW) == pytest.approx(7.0)
    past = email.utils.formatdate(NOW - 60, usegmt=True)
    assert retry_after_seconds(past, NOW) == 1.0  # already past: the polite default


def test_a_429_is_retried_after_its_retry_after_until_the_retries_run_out():
    throttle = Throttle(retries=3)
    assert throttle.after(429, "4", 0, NOW) == 4.0
    assert throttle.after(429, None, 1, NOW) == 1.0
    assert throttle.after(503, "2", 2, NOW) == 2.0  # a busy server is retried the same way
    assert throttle.after(429, "4", 3, NOW) is None  # the 3 retries are spent
    assert throttle.after(200, None, 0, NOW) is None
    assert throttle.after(400, "4", 0, NOW) is None


def test_pacing_keeps_calls_within_the_rate():
    f0 = Throttle(rate=2.0)  # Custom Vision F0: 2 calls per second
    waits = [f0.before(NOW) for _ in range(4)]  # four calls wanted at the same instant
    assert waits == [0.0, 0.5, 1.0, 1.5]
    assert f0.before(NOW + 10) == 0.0  # after a pause, at once
    assert Throttle(rate=0).before(NOW) == 0.0 and Throttle(rate=0).before(NOW) == 0.0


def test_a_paced_sequence_of_calls_never_exceeds_the_rate():
    s0 = Throttle(rate=10.0)
    now, sent = 0.0, []
    for _ in range(50):
        now += s0.before(now)  # the caller sleeps that long
        sent.append(now)
    for i in range(len(sent) - 10):
        assert sent[i + 10] - sent[i] >= 1.0 - 1e-9  # at most 10 in any second


# --- what is copied --------------------------------------------------------------------------

def _project(domain_id: str, classification: str | None = "Multiclass") -> dict:
    return {"id": "7b5ab3a4-c9e5-4f8e-9a5e-3c3f1d1e2a10", "name": "p", "description": "",
            "settings": {"domainId": domain_id, "classificationType": classification}}


def test_object_detection_projects_are_skipped_with_a_message():
    assert skip_reason(_project(OD_GENERAL["id"], None), SOURCE_DOMAINS) == OD_MESSAGE
    # A domain the source does not list, with Custom Vision's null classificationType of
    # object detection: skipped too.
    assert skip_reason(_project("11111111-2222-3333-4444-555555555555", None), SOURCE_DOMAINS) == OD_MESSAGE
    assert skip_reason(_project(FOOD["id"]), SOURCE_DOMAINS) is None
    assert skip_reason(_project(LOUPE_GENERAL["id"], "Multilabel"), SOURCE_DOMAINS) is None


def test_the_report_lists_skipped_object_detection_and_counts():
    report = Report([
        ProjectReport("a", "shoes", "imported", project_created=True, tags_created=3,
                      images_total=300, images_copied=290, images_duplicate=10),
        ProjectReport("b", "boxes", "skipped", OD_MESSAGE),
    ])
    text = report.render()
    assert f"skipped    b  'boxes': {OD_MESSAGE}" in text
    assert "images: 300 in the source; 290 copied, 10 already there" in text
    assert "projects: 1 imported, 1 skipped" in text
    assert not report.failed
    report.projects[0].refused.append(("img", "ErrorImageFormat"))
    assert report.failed and "refused image img: ErrorImageFormat" in report.render()
    assert "stopped before the end" in Report(stopped=True).render()


def test_domains_map_to_loupes_general_or_compact():
    assert map_domain(LOUPE_GENERAL, LOUPE_GENERAL["id"], DEST_DOMAINS) == (LOUPE_GENERAL["id"], "")
    assert map_domain(None, LOUPE_COMPACT["id"].upper(), DEST_DOMAINS) == (LOUPE_COMPACT["id"], "")
    dest, note = map_domain(FOOD, FOOD["id"], DEST_DOMAINS)
    assert dest == LOUPE_GENERAL["id"] and note == "domain 'Food' mapped to 'General'"
    dest, note = map_domain(FOOD_COMPACT, FOOD_COMPACT["id"], DEST_DOMAINS)
    assert dest == LOUPE_COMPACT["id"] and "General (compact)" in note
    dest, note = map_domain(None, "unknown", DEST_DOMAINS)
    assert dest == LOUPE_GENERAL["id"] and "unknown source domain" in note


def test_export_platforms_keep_what_the_domain_exports():
    assert export_platforms(["CoreML", "onnx"], LOUPE_COMPACT) == (["ONNX"], "export platforms not offered: CoreML")
    assert export_platforms([], LOUPE_GENERAL) == ([], "")


def _image(n: int, metadata: dict | None = None, tags=("t",)) -> SourceImage:
    return SourceImage.from_json({"id": f"i{n}", "originalImageUri": f"https://blob/{n}",
                                  "tags": [{"tagId": t, "tagName": t} for t in tags],
                                  "metadata": metadata, "regions": []})


def test_source_images_carry_tags_metadata_and_the_original_uri():
    img = _image(1, {"b": "2", "a": "1"}, tags=("x", "y"))
    assert img.uri == "https://blob/1" and img.tag_ids == ("x", "y")
    assert img.metadata == (("a", "1"), ("b", "2")) and img.regions == 0
    assert _image(2).metadata == ()


def test_upload_calls_carry_one_metadata_each_within_the_limits():
    plain = [(_image(n), b"x" * 10) for n in range(130)]
    tagged = [(_image(200 + n, {"camera": "a"}), b"y" * 10) for n in range(3)]
    groups = list(upload_groups(plain[:70] + tagged + plain[70:]))
    assert [len(g) for g in groups] == [64, 64, 2, 3]
    assert all(len({img.metadata for img, _ in g}) == 1 for g in groups)
    assert [img.id for g in groups[:3] for img, _ in g] == [f"i{n}" for n in range(130)]  # order kept
    big = [(_image(n), b"z" * 1000) for n in range(10)]
    assert [len(g) for g in upload_groups(big, max_bytes=4000)] == [3, 3, 3, 1]


# --- resume state ----------------------------------------------------------------------------

def test_the_state_file_round_trips_and_never_holds_a_key(tmp_path):
    path = default_state_path("https://x.cognitiveservices.azure.com/", "secret-key",
                              "http://127.0.0.1:7500", "loupe-key", env={"LOUPE_CACHE": str(tmp_path)})
    assert path.parent == tmp_path / "import"
    assert path != default_state_path("https://x.cognitiveservices.azure.com", "other-key",
                                      "http://127.0.0.1:7500", "loupe-key", env={"LOUPE_CACHE": str(tmp_path)})
    state = ImportState.load(path)
    state.add_copied("p", ["a", "b"])
    state.add_copied("p", ["b", "c"])
    state.save()
    assert "secret-key" not in path.read_text() and not path.with_name(path.name + ".tmp").exists()
    again = ImportState.load(path)
    assert again.copied("p") == {"a", "b", "c"} and again.copied("q") == set()
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="another version"):
        ImportState.load(path)


def test_the_default_state_lives_in_the_loupe_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = default_state_path("a", "b", "c", "d", env={})
    assert path.parent == tmp_path / ".cache" / "loupe" / "import"
    assert importer.STATE_VERSION == 1
