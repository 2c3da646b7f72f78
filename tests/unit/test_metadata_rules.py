"""Pure rules of the metadata service: validation, key hashing, change detection."""
from __future__ import annotations

import hashlib
import uuid

import pytest

from loupe_common.config import ConfigError, load
from loupe_common.errors import BadRequest, Conflict
from loupe_metadata import rules
from loupe_metadata.config import MetadataConfig
from loupe_metadata.migrate import MIGRATIONS_DIR, discover
from loupe_metadata.rules import TagCount

pytestmark = pytest.mark.unit


def test_keys_are_random_hex_and_stored_hashed():
    a, b = rules.new_key(), rules.new_key()
    assert a != b and len(a) == 32 and int(a, 16) >= 0
    assert rules.hash_key(a) == hashlib.sha256(a.encode()).hexdigest()
    assert rules.hash_key(f" {a}\n") == rules.hash_key(a)
    assert rules.hash_key(a) != a


def test_prediction_resource_id_is_azure_shaped_and_per_account():
    one = rules.prediction_resource_id("a1")
    assert one.startswith("/subscriptions/a1/resourceGroups/")
    assert one != rules.prediction_resource_id("a2")


@pytest.mark.parametrize("name", ["", "   ", "x" * 256])
def test_bad_project_names(name):
    with pytest.raises(BadRequest) as err:
        rules.project_name(name)
    assert err.value.code == "BadRequestProjectName"


def test_project_name_is_trimmed():
    assert rules.project_name("  Birds ") == "Birds"
    assert rules.project_name("x" * 255) == "x" * 255


def test_account_names_are_trimmed_and_bounded():
    assert rules.account_name(" acme ") == "acme"
    for bad in ("", "   ", "a" * 256):
        with pytest.raises(BadRequest):
            rules.account_name(bad)


def test_masked_changes_checks_only_the_named_fields_in_mask_order():
    def refuse():
        raise BadRequest("bad name", "BadRequestProjectName")

    fields = {"name": refuse, "description": lambda: "d", "type": lambda: "Negative"}
    assert rules.masked_changes(["type", "description"], fields) == {
        "type": "Negative", "description": "d"}
    assert list(rules.masked_changes(["type", "description"], fields)) == ["type", "description"]
    assert rules.masked_changes([], fields) == {}
    with pytest.raises(BadRequest) as err:
        rules.masked_changes(["description", "name"], fields)
    assert err.value.code == "BadRequestProjectName"
    with pytest.raises(BadRequest) as err:
        rules.masked_changes(["description", "id"], fields)
    assert err.value.code == "BadRequest" and "'id'" in str(err.value)


@pytest.mark.parametrize("name", ["", "  ", "t" * 256])
def test_bad_tag_names(name):
    with pytest.raises(BadRequest) as err:
        rules.tag_name(name)
    assert err.value.code == "BadRequestTagName"


def test_enumerations_default_and_normalise_case():
    assert rules.classification_type("") == "Multiclass"
    assert rules.classification_type("multilabel") == "Multilabel"
    assert rules.tag_type("") == "Regular"
    assert rules.tag_type("negative") == "Negative"
    assert rules.training_type("advanced") == "Advanced"
    with pytest.raises(BadRequest) as err:
        rules.classification_type("Detection")
    assert err.value.code == "BadRequestProjectUnknownClassification"
    with pytest.raises(BadRequest) as err:
        rules.tag_type("GeneralProduct")
    assert err.value.code == "BadRequestTagType"


@pytest.mark.parametrize("name", ["", "has space", "x" * 256, "a/b"])
def test_bad_publish_names(name):
    with pytest.raises(BadRequest) as err:
        rules.publish_name(name)
    assert err.value.code == "BadRequestInvalidPublishName"


def test_parse_uuids_refuses_garbage_and_drops_repeats():
    a = str(uuid.uuid4())
    assert rules.parse_uuids([a, a.upper()]) == [uuid.UUID(a)]
    assert rules.parse_uuid("nope") is None
    with pytest.raises(BadRequest) as err:
        rules.parse_uuids([a, "nope"], "BadRequestImageTags")
    assert err.value.code == "BadRequestImageTags"


def test_sha256_must_be_hex():
    good = hashlib.sha256(b"x").hexdigest()
    assert rules.sha256_hex(good.upper()) == good
    with pytest.raises(BadRequest):
        rules.sha256_hex("abc")


def test_training_minutes_round_up():
    assert rules.minutes(0) == 0
    assert rules.minutes(1) == 1
    assert rules.minutes(60) == 1
    assert rules.minutes(61) == 2


def test_negative_and_regular_on_one_image():
    reg, neg = uuid.uuid4(), uuid.uuid4()
    types = {reg: "Regular", neg: "Negative"}
    rules.check_image_tag_types([reg], types)
    rules.check_image_tag_types([neg], types)
    with pytest.raises(BadRequest) as err:
        rules.check_image_tag_types([reg, neg], types)
    assert err.value.code == "BadRequestNegativeAndRegularTagOnSameImage"


def _validation_message(tags, classification="Multiclass", minimum=5) -> str:
    with pytest.raises(Conflict) as err:
        rules.check_training_set(tags, classification, minimum)
    assert err.value.code == "BadRequestTrainingValidationFailed"
    return err.value.message


def test_multiclass_needs_two_regular_tags_negative_does_not_count():
    message = _validation_message(
        [TagCount("1", "cat", "Regular", 9), TagCount("2", "neg", "Negative", 9)]
    )
    assert "2 tags" in message
    rules.check_training_set(
        [TagCount("1", "cat", "Regular", 5), TagCount("2", "dog", "Regular", 5)], "Multiclass", 5
    )


def test_multilabel_trains_with_one_tag():
    rules.check_training_set([TagCount("1", "cat", "Regular", 5)], "Multilabel", 5)
    _validation_message([], "Multilabel")


def test_tag_with_too_few_images_is_named():
    message = _validation_message(
        [TagCount("1", "cat", "Regular", 5), TagCount("2", "dog", "Regular", 4)]
    )
    assert "'dog'" in message and "4" in message and "5" in message


def test_unused_negative_tag_is_ignored_but_a_used_one_needs_the_minimum():
    two = [TagCount("1", "cat", "Regular", 5), TagCount("2", "dog", "Regular", 5)]
    rules.check_training_set(two + [TagCount("3", "neg", "Negative", 0)], "Multiclass", 5)
    assert "'neg'" in _validation_message(two + [TagCount("3", "neg", "Negative", 2)])


def test_min_images_defaults_to_custom_vision_five():
    tags = [TagCount("1", "cat", "Regular", 4), TagCount("2", "dog", "Regular", 9)]
    _validation_message(tags, minimum=0)
    rules.check_training_set(tags, "Multiclass", 3)


def test_fingerprint_ignores_order_and_sees_every_change():
    base = [("h1", ["t1"]), ("h2", ["t2", "t1"])]
    fp = rules.training_fingerprint(base, "Regular", "Multiclass", "d")
    assert fp == rules.training_fingerprint(
        [("h2", ["t1", "t2"]), ("h1", ["t1"])], "Regular", "Multiclass", "d"
    )
    changed = [
        rules.training_fingerprint(base + [("h3", ["t1"])], "Regular", "Multiclass", "d"),
        rules.training_fingerprint([("h1", ["t1"]), ("h2", ["t2"])], "Regular", "Multiclass", "d"),
        rules.training_fingerprint(base, "Advanced", "Multiclass", "d"),
        rules.training_fingerprint(base, "Regular", "Multilabel", "d"),
        rules.training_fingerprint(base, "Regular", "Multiclass", "other"),
    ]
    assert fp not in changed and len(set(changed)) == len(changed)
    # An image without training tags is not part of the training set.
    assert fp == rules.training_fingerprint(base + [("h4", [])], "Regular", "Multiclass", "d")


def test_config_requires_the_dsn_and_has_defaults():
    with pytest.raises(ConfigError) as err:
        load(MetadataConfig, {})
    assert "LOUPE_POSTGRES_DSN" in str(err.value) and "LOUPE_INTERNAL_SECRET" in str(err.value)
    config = load(MetadataConfig, {"LOUPE_POSTGRES_DSN": "postgresql://x/y", "LOUPE_INTERNAL_SECRET": "s"})
    assert (config.addr, config.metrics_port, config.log_level) == ("127.0.0.1:50051", 0, "INFO")
    assert (config.host, config.port) == ("127.0.0.1", 50051)


def test_migrations_are_numbered_and_ordered(tmp_path):
    assert [v for v, _ in discover(MIGRATIONS_DIR)][0] == 1
    for name in ("0002_b.sql", "0010_c.sql", "0001_a.sql", "README.md"):
        (tmp_path / name).write_text("")
    assert [v for v, _ in discover(tmp_path)] == [1, 2, 10]
    (tmp_path / "0002_dup.sql").write_text("")
    with pytest.raises(ValueError):
        discover(tmp_path)


@pytest.mark.parametrize("seconds, text", [
    (5, "5 s"), (45.5, "45.5 s"), (119, "119 s"), (300, "5 min"), (5400, "90 min"),
    (7200, "2 h"), (9000, "2.5 h"), (86400, "24 h"), (3 * 86400, "3 days"),
])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert rules.duration_text(seconds) == text


def test_an_iteration_no_trainer_started_says_why_it_failed_and_what_to_do():
    message = rules.untouched_message(86400)
    assert message.startswith("no trainer started this training within 24 h")
    assert "trained again" in message
