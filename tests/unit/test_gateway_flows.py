"""The gateway's flows (loupe_gateway.flows) against an in-process stand-in for its clients."""
from __future__ import annotations

import logging

import pytest

from gateway_fakes import (ACCOUNT, IMAGES, ITERATION, PREDICTION, PROJECT, TAG_CAT, TAG_NEG,
                           TRAINING_KEY, FakeBackends)
from loupe_common.config import load
from loupe_common.errors import BadRequest, Conflict, NotFound, Unavailable
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig
from loupe_gateway.flows import performance, predictions, suggestions

pytestmark = pytest.mark.unit


@pytest.fixture
def backends():
    return FakeBackends()


@pytest.fixture
def config(gateway_env):
    return load(GatewayConfig, {**gateway_env, "LOUPE_RATE_LIMIT_PER_SECOND": "0"})


def _uri(img, variant):
    return f"/{img.id}/{variant}"


# --- Smart Labeler ---------------------------------------------------------------------------


def test_suggestion_cache_drops_the_least_recently_used():
    cache = suggestions.SuggestionCache(max_entries=2)
    cache.put(("it", "a"), [("t", "n", 0.1)])
    cache.put(("it", "b"), [])
    assert cache.get(("it", "a")) == [("t", "n", 0.1)]  # now the most recent
    cache.put(("it", "c"), [])
    assert cache.get(("it", "b")) is None and cache.get(("it", "a")) is not None
    assert cache.get(("it", "c")) == [] and len(cache) == 2


def test_each_app_has_its_own_suggestion_cache(config, backends):
    first, second = create_app(config, clients=backends), create_app(config, clients=backends)
    assert isinstance(first.extensions["loupe.suggestions"], suggestions.SuggestionCache)
    assert first.extensions["loupe.suggestions"] is not second.extensions["loupe.suggestions"]


def test_an_image_is_classified_once_per_iteration_and_bytes(backends):
    cache = suggestions.SuggestionCache()
    it, img = backends.iteration, backends.images[IMAGES[0]]
    first = suggestions.suggest(backends, cache, it, img)
    assert suggestions.suggest(backends, cache, it, img) == first
    assert backends.classified == 1
    assert [p for _t, _n, p in first] == [0.55, 0.45]  # highest first


@pytest.mark.parametrize("ranked, multilabel, expected", [
    ([], False, 1.0),
    ([("a", "a", 0.9), ("b", "b", 0.1)], False, pytest.approx(0.1)),
    ([("a", "a", 0.9), ("b", "b", 0.45)], True, pytest.approx(0.9)),
    ([("a", "a", 1.0), ("b", "b", 0.0)], True, 0.0),
])
def test_uncertainty(ranked, multilabel, expected):
    assert suggestions.uncertainty(ranked, multilabel) == expected


def test_only_a_trained_iteration_suggests(backends):
    with pytest.raises(BadRequest) as err:
        suggestions.trained_iteration(backends, ACCOUNT, PROJECT, "")
    assert err.value.code == "BadRequestRequiredParamIsNull"
    backends.iteration.artifact_key = ""
    with pytest.raises(Conflict) as err:
        suggestions.trained_iteration(backends, ACCOUNT, PROJECT, ITERATION)
    assert err.value.code == "BadRequestIterationIsNotTrained"


def test_suggestions_for_unknown_images_are_not_found(backends):
    with pytest.raises(NotFound) as err:
        suggestions.suggest_for_images(backends, suggestions.SuggestionCache(), ACCOUNT, PROJECT,
                                       backends.iteration, [IMAGES[0], PREDICTION])
    assert err.value.code == "NotFoundImage" and PREDICTION in err.value.message


def test_suggested_query_defaults_and_refusals():
    query = suggestions.suggested_query({})
    assert (query.sort_by, query.max_count, query.skip) == ("UncertaintyAscending", 50, 0)
    assert query.filter == suggestions.TagFilter(frozenset(), 0.0)
    token = suggestions.continuation(7)
    assert suggestions.suggested_query({"continuation": token}).skip == 7
    for bad in ({"sortBy": "Newest"}, {"maxCount": 257}, {"maxCount": "3"},
                {"continuation": "bm90IGpzb24="}, {"threshold": "high"},
                {"tagIds": ["not-a-guid"]}):
        with pytest.raises(BadRequest):
            suggestions.suggested_query(bad)


def test_suggested_images_page_by_uncertainty(backends):
    backends.cat_probability = {IMAGES[0]: 0.9, IMAGES[1]: 0.6}
    cache, it = suggestions.SuggestionCache(), backends.iteration

    def page(**token):
        query = suggestions.suggested_query(token)
        return suggestions.query_suggested(backends, cache, ACCOUNT, PROJECT, it, query)

    first = page(maxCount=1)
    assert [s.image.id for s in first.suggestions] == [IMAGES[0]]  # the surest first
    assert first.domain == backends.project.domain_id and first.tag_types[TAG_NEG] == "Negative"
    second = page(maxCount=1, continuation=first.continuation)
    assert [s.image.id for s in second.suggestions] == [IMAGES[1]] and second.continuation is None
    descending = page(sortBy="UncertaintyDescending")
    assert [s.image.id for s in descending.suggestions] == [IMAGES[1], IMAGES[0]]
    assert page(tagIds=[TAG_CAT], threshold=0.7).suggestions[0].image.id == IMAGES[0]
    assert len(page(tagIds=[TAG_CAT], threshold=0.7).suggestions) == 1
    assert backends.classified == 2  # the tagged image is never classified, the others once


def test_suggested_image_counts_list_every_asked_tag(backends):
    backends.cat_probability = {IMAGES[0]: 0.9, IMAGES[1]: 0.6}
    cache, it = suggestions.SuggestionCache(), backends.iteration
    flt = suggestions.tag_filter({"tagIds": [TAG_NEG, TAG_CAT], "threshold": 0.65})
    counts = suggestions.count_suggested(backends, cache, ACCOUNT, PROJECT, it, flt)
    assert counts == {TAG_CAT: 1, TAG_NEG: 0}
    assert list(counts) == sorted(counts)
    every = suggestions.count_suggested(backends, cache, ACCOUNT, PROJECT, it,
                                        suggestions.tag_filter({}))
    assert every == {TAG_CAT: 2, TAG_NEG: 2}


def test_suggestions_consider_at_most_the_oldest_max_images_untagged_images(backends):
    cache, it = suggestions.SuggestionCache(), backends.iteration
    every = suggestions.tag_filter({})
    assert suggestions.count_suggested(backends, cache, ACCOUNT, PROJECT, it, every,
                                       max_images=1) == {TAG_CAT: 1, TAG_NEG: 1}
    assert backends.classified == 1  # the newer untagged image was not classified
    listed = [c for c in backends.calls if c[0] == "list_images"]
    assert listed[-1][1][4] == 1  # took no more than the limit
    page = suggestions.query_suggested(backends, cache, ACCOUNT, PROJECT, it,
                                       suggestions.suggested_query({}), max_images=1)
    assert [s.image.id for s in page.suggestions] == [IMAGES[0]]  # the oldest
    assert suggestions.count_suggested(backends, cache, ACCOUNT, PROJECT, it, every,
                                       max_images=0) == {TAG_CAT: 2, TAG_NEG: 2}  # 0: all


# --- stored predictions ----------------------------------------------------------------------


def test_query_request_of_a_token():
    request = predictions.query_request({
        "tags": [{"id": TAG_CAT.upper(), "minThreshold": 0.5}], "iterationId": ITERATION,
        "startTime": "2026-01-02T03:04:05", "endTime": "2026-01-03T00:00:00Z", "maxCount": 10,
        "orderBy": "Oldest", "continuation": "c", "application": "app",
    }, ACCOUNT, PROJECT)
    assert (request.account_id, request.project_id, request.iteration_id) == (
        ACCOUNT, PROJECT, ITERATION)
    assert request.tags[0].tag_id == TAG_CAT and request.tags[0].min_threshold == 0.5
    assert request.start_time.ToJsonString() == "2026-01-02T03:04:05Z"  # no zone: UTC
    assert (request.max_count, request.order_by, request.continuation, request.application) == (
        10, "Oldest", "c", "app")
    assert not predictions.query_request({}, ACCOUNT, PROJECT).HasField("start_time")


@pytest.mark.parametrize("token, code", [
    ({"tags": [{"id": TAG_CAT}] * 21}, "BadRequestPredictionTagsExceededCount"),
    ({"maxCount": -1}, "BadRequestPredictionInvalidQueryParameters"),
    ({"tags": ["x"]}, "BadRequestPredictionInvalidQueryParameters"),
    ({"tags": [{"id": "x"}]}, "BadRequestImageTags"),
    ({"iterationId": "x"}, "BadRequestPredictionInvalidQueryParameters"),
    ({"endTime": "tomorrow"}, "BadRequestPredictionInvalidQueryParameters"),
])
def test_query_request_refusals(token, code):
    with pytest.raises(BadRequest) as err:
        predictions.query_request(token, ACCOUNT, PROJECT)
    assert err.value.code == code


def test_a_prediction_image_of_an_unknown_or_malformed_id_is_not_found(backends):
    assert predictions.image(backends, ACCOUNT, PROJECT, PREDICTION, "resized").data
    for prediction_id in ("nope", IMAGES[0]):
        with pytest.raises(NotFound) as err:
            predictions.image(backends, ACCOUNT, PROJECT, prediction_id, "resized")
        assert err.value.code == "NotFoundImage"


def test_deleting_predictions_survives_storage_failing(backends, caplog):
    def fail(*_args, **_kw):
        raise Unavailable("storage is down")

    backends.delete_image_data = fail
    with caplog.at_level(logging.WARNING):
        predictions.delete(backends, ACCOUNT, PROJECT, [PREDICTION])
    assert PREDICTION not in backends.predictions and "not their bytes" in caplog.text


def test_predictions_become_training_images_without_storing_their_bytes_again(backends,
                                                                             config):
    summary, status = predictions.add_to_training_set(
        backends, config, ACCOUNT, PROJECT, [(PREDICTION, [TAG_CAT]), (IMAGES[1], [])],
        {"k": "v"}, _uri)
    assert status == 207 and not summary["isBatchSuccessful"]
    assert [(r["sourceUrl"], r["status"]) for r in summary["images"]] == [
        (PREDICTION, "OKDuplicate"), (IMAGES[1], "ErrorSource")]
    assert summary["images"][0]["image"]["originalImageUri"] == f"/{IMAGES[0]}/original"
    # FakeBackends has no put_image: the bytes were only read, then added by their hash, and
    # found still stored once the row was in.
    assert [c for c, _ in backends.calls][-3:] == ["get_image", "add_images", "find_image_data"]


def test_a_prediction_with_too_many_tags_is_refused_before_its_bytes_are_read(backends,
                                                                             config):
    tags = [f"00000000-0000-0000-0000-{n:012d}" for n in range(config.max_batch_tags + 1)]
    summary, status = predictions.add_to_training_set(
        backends, config, ACCOUNT, PROJECT, [(PREDICTION, tags)], {}, _uri)
    assert status == 207 and summary["images"][0]["status"] == "ErrorTagLimitExceed"
    assert "get_image" not in [c for c, _ in backends.calls]


def test_a_prediction_whose_image_is_gone_is_an_error_source(backends, config):
    backends.blobs.clear()
    summary, _ = predictions.add_to_training_set(
        backends, config, ACCOUNT, PROJECT, [(PREDICTION, [])], {}, _uri)
    assert summary["images"][0]["status"] == "ErrorSource"


# --- per-image performance -------------------------------------------------------------------


def test_image_performances_follow_the_evaluation(backends):
    images, types = performance.image_performances(
        backends, ACCOUNT, PROJECT, ITERATION, [], order_by="", take=50, skip=0)
    assert {img.id for img, _ in images} == {IMAGES[0], IMAGES[2]}  # the evaluated ones
    by_id = {img.id: ranked for img, ranked in images}
    assert by_id[IMAGES[0]][0] == (TAG_CAT, "cat", 0.8)
    assert types[TAG_NEG] == "Negative"
    negative, _ = performance.image_performances(
        backends, ACCOUNT, PROJECT, ITERATION, [TAG_NEG], order_by="", take=50, skip=0)
    assert [img.id for img, _ in negative] == [IMAGES[2]]
    assert performance.image_performance_count(backends, ACCOUNT, PROJECT, ITERATION,
                                               [TAG_CAT]) == 1
    assert performance.image_performances(
        backends, ACCOUNT, PROJECT, ITERATION, [IMAGES[1]], order_by="", take=50, skip=0
    ) == ([], {})
    assert performance.image_performance_count(backends, ACCOUNT, PROJECT, ITERATION,
                                               [IMAGES[1]]) == 0


def test_an_untrained_iteration_has_no_image_performance(backends):
    backends.iteration.status = "Training"
    with pytest.raises(Conflict) as err:
        performance.image_performance_count(backends, ACCOUNT, PROJECT, ITERATION, [])
    assert err.value.code == "BadRequestIterationIsNotTrained"


# --- through the blueprints ------------------------------------------------------------------


def test_the_suggestion_routes_use_the_apps_cache(config, backends):
    app = create_app(config, clients=backends)
    client = app.test_client()
    path = (f"/customvision/v3.3/training/projects/{PROJECT}/tagsandregions/suggestions"
            f"?iterationId={ITERATION}&imageIds={IMAGES[0]}")
    for _ in range(2):
        response = client.post(path, headers={"Training-Key": TRAINING_KEY})
        assert response.status_code == 200
    body = response.json[0]
    assert list(body) == ["id", "project", "iteration", "created", "predictions",
                          "predictionUncertainty"]
    assert list(body["predictions"][0]) == ["probability", "tagId", "tagName", "boundingBox",
                                            "tagType"]
    assert backends.classified == 1 and len(app.extensions["loupe.suggestions"]) == 1
    create_app(config, clients=backends).test_client().post(
        path, headers={"Training-Key": TRAINING_KEY})
    assert backends.classified == 2  # a fresh app starts with an empty cache
