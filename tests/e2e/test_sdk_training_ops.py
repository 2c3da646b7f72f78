"""The official Custom Vision SDK (3.1.1), unmodified, against Loupe: updates, image tagging and
metadata, performance at a threshold and per image, stored predictions, the Smart Labeler, and
two-account isolation."""
from __future__ import annotations

import time
import uuid

import pytest
import requests
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageIdCreateBatch,
    ImageIdCreateEntry,
    ImageTagCreateEntry,
    PredictionQueryTag,
    PredictionQueryToken,
    SuggestedTagAndRegionQueryToken,
    Tag,
)
from azure.cognitiveservices.vision.customvision.prediction.models import (
    CustomVisionErrorException as PredictionError,
)
from msrest.authentication import ApiKeyCredentials

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1.metadata_pb2_grpc import MetadataServiceStub
from loupe_common.clients import ServiceClient
from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e

PUBLISH_NAME = "opsprod"


def _trainer(endpoint: str, key: str) -> CustomVisionTrainingClient:
    return CustomVisionTrainingClient(
        endpoint, ApiKeyCredentials(in_headers={"Training-key": key}))


def _predictor(endpoint: str, key: str) -> CustomVisionPredictionClient:
    return CustomVisionPredictionClient(
        endpoint, ApiKeyCredentials(in_headers={"Prediction-key": key}))


def _code(call, *args, **kwargs) -> str:
    with pytest.raises((CustomVisionErrorException, PredictionError)) as info:
        call(*args, **kwargs)
    return info.value.error.code


@pytest.fixture(scope="module")
def clients(live_env):
    endpoint = live_env["LOUPE_ENDPOINT"]
    return (_trainer(endpoint, live_env["LOUPE_TRAINING_KEY"]),
            _predictor(endpoint, live_env["LOUPE_PREDICTION_KEY"]),
            live_env["LOUPE_PREDICTION_RESOURCE_ID"])


@pytest.fixture(scope="module")
def trained(clients):
    """A trained, published two-tag project with three untagged images."""
    trainer, _predictor_client, resource_id = clients
    project = trainer.create_project(f"ops-{uuid.uuid4().hex[:6]}")
    tags = [trainer.create_tag(project.id, name) for name in ("top", "trouser")]
    data = load_fashion_mnist("train", (0, 1), 9, seed=31)
    tagged = [(img, label) for i, (img, label) in enumerate(data) if i % 9 < 7]
    untagged = [img for i, (img, _label) in enumerate(data) if i % 9 >= 7][:3]
    summary = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=[
        ImageFileCreateEntry(name=f"{i}.png", contents=img, tag_ids=[tags[label].id])
        for i, (img, label) in enumerate(tagged)
    ]))
    assert summary.is_batch_successful
    loose = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=[
        ImageFileCreateEntry(name=f"u{i}.png", contents=img) for i, img in enumerate(untagged)
    ]))
    untagged_ids = [i.image.id for i in loose.images]
    iteration = trainer.train_project(project.id)
    deadline = time.monotonic() + 240
    while iteration.status == "Training":
        assert time.monotonic() < deadline, "training took too long"
        time.sleep(0.5)
        iteration = trainer.get_iteration(project.id, iteration.id)
    assert iteration.status == "Completed", iteration.training_error_details
    trainer.publish_iteration(project.id, iteration.id, PUBLISH_NAME, resource_id)
    yield {"project": project, "tags": tags, "iteration": iteration, "untagged": untagged_ids,
           "tagged_count": len(tagged)}
    trainer.unpublish_iteration(project.id, iteration.id)
    trainer.delete_project(project.id)


def test_update_project_tag_and_iteration(clients, trained):
    trainer = clients[0]
    project, iteration = trained["project"], trained["iteration"]
    current = trainer.get_project(project.id)
    current.name = current.name + "-renamed"
    current.description = "shirts and trousers"
    updated = trainer.update_project(project.id, current)
    assert (updated.name, updated.description) == (current.name, "shirts and trousers")
    assert trainer.get_project(project.id).description == "shirts and trousers"

    scratch = trainer.create_project(f"ops-scratch-{uuid.uuid4().hex[:6]}")
    scratch.settings.classification_type = "Multilabel"
    assert trainer.update_project(scratch.id, scratch).settings.classification_type == "Multilabel"
    trainer.delete_project(scratch.id)

    top = trained["tags"][0]
    renamed = trainer.update_tag(project.id, top.id, Tag(name="shirt", description="upper body", type="Regular"))
    assert (renamed.name, renamed.description, renamed.image_count) == ("shirt", "upper body", 7)
    assert _code(trainer.update_tag, project.id, top.id, Tag(name="TROUSER", description="", type="Regular")) \
        == "BadRequestTagNameNotUnique"
    assert _code(trainer.update_tag, project.id, str(uuid.uuid4()), Tag(name="x", description="", type="Regular")) == "NotFoundTag"
    trainer.update_tag(project.id, top.id, Tag(name="top", description="", type="Regular"))

    it = trainer.update_iteration(project.id, iteration.id, "first model")
    assert it.name == "first model"
    assert trainer.get_iteration(project.id, iteration.id).name == "first model"
    assert _code(trainer.update_iteration, project.id, str(uuid.uuid4()), "x") == "NotFoundIteration"


def test_tags_as_of_an_iteration(clients, trained):
    trainer = clients[0]
    project, iteration = trained["project"], trained["iteration"]
    top = trained["tags"][0]
    extra = load_fashion_mnist("test", (0,), 1, seed=77)[0][0]
    added = trainer.create_images_from_data(project.id, extra, tag_ids=[top.id]).images[0].image
    try:
        assert trainer.get_tag(project.id, top.id).image_count == 8
        assert trainer.get_tag(project.id, top.id, iteration_id=iteration.id).image_count == 7
        then = trainer.get_tags(project.id, iteration_id=iteration.id)
        assert sorted(t.image_count for t in then) == [7, 7]
        assert _code(trainer.get_tags, project.id, iteration_id=str(uuid.uuid4())) \
            == "NotFoundIteration"
    finally:
        trainer.delete_images(project.id, image_ids=[added.id])


def test_image_tags_metadata_and_get_by_ids(clients, trained):
    trainer = clients[0]
    project = trained["project"]
    top, trouser = trained["tags"]
    image_id = trained["untagged"][0]
    summary = trainer.create_image_tags(project.id, tags=[
        ImageTagCreateEntry(image_id=image_id, tag_id=top.id)])
    assert [(e.image_id, e.tag_id) for e in summary.created] == [(image_id, top.id)]
    again = trainer.create_image_tags(project.id, tags=[
        ImageTagCreateEntry(image_id=image_id, tag_id=top.id)])
    assert [(e.image_id, e.tag_id) for e in again.duplicated] == [(image_id, top.id)]
    assert not again.created and not again.exceeded
    got = trainer.get_images_by_ids(project.id, image_ids=[image_id])
    assert [t.tag_id for t in got[0].tags] == [top.id]
    assert _code(trainer.create_image_tags, project.id, tags=[
        ImageTagCreateEntry(image_id=str(uuid.uuid4()), tag_id=top.id)]) == "NotFoundImage"

    trainer.delete_image_tags(project.id, image_ids=[image_id], tag_ids=[top.id, trouser.id])
    assert trainer.get_images_by_ids(project.id, image_ids=[image_id])[0].tags in (None, [])

    missing = str(uuid.uuid4())
    result = trainer.update_image_metadata(project.id, [image_id, missing], {"camera": "front"})
    assert not result.is_batch_successful
    statuses = {e.image_id: e.status for e in result.images}
    assert statuses == {image_id: "OK", missing: "ErrorImageNotFound"}
    ok = trainer.update_image_metadata(project.id, [image_id], {"shelf": "3"})
    assert ok.is_batch_successful
    assert ok.images[0].metadata == {"camera": "front", "shelf": "3"}
    assert trainer.get_images_by_ids(project.id, image_ids=[image_id])[0].metadata \
        == {"camera": "front", "shelf": "3"}
    assert _code(trainer.update_image_metadata, project.id, [image_id], {"k" * 129: "v"}) \
        == "BadRequestImageMetadataKey"
    assert _code(trainer.update_image_metadata, project.id, [image_id], {"k": "v" * 257}) \
        == "BadRequestImageMetadataValue"


def test_performance_at_a_threshold_and_per_image(clients, trained):
    trainer = clients[0]
    project, iteration = trained["project"], trained["iteration"]
    default = trainer.get_iteration_performance(project.id, iteration.id)
    half = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.5)
    assert (default.precision, default.recall) == (half.precision, half.recall)
    everything = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.0)
    # At threshold 0 every tag is predicted for every image: all found, half of them wrong.
    assert everything.recall == 1.0
    assert everything.precision == pytest.approx(0.5)
    nothing = trainer.get_iteration_performance(project.id, iteration.id, threshold=1.0)
    assert nothing.recall <= half.recall
    assert everything.average_precision == half.average_precision  # AP ignores the threshold
    assert _code(trainer.get_iteration_performance, project.id, iteration.id, threshold=2.0) \
        == "BadRequest"

    total = trained["tagged_count"]
    assert trainer.get_image_performance_count(project.id, iteration.id) == total
    top = trained["tags"][0]
    assert trainer.get_image_performance_count(project.id, iteration.id, tag_ids=[top.id]) == 7
    page = trainer.get_image_performances(project.id, iteration.id, take=5)
    rest = trainer.get_image_performances(project.id, iteration.id, take=50, skip=5)
    assert len(page) == 5 and len(page) + len(rest) == total
    assert not {p.id for p in page} & {p.id for p in rest}
    first = page[0]
    assert len(first.predictions) == 2
    assert {p.tag_id for p in first.predictions} == {t.id for t in trained["tags"]}
    assert first.image_uri and first.thumbnail_uri and first.tags
    assert requests.get(first.thumbnail_uri, timeout=30).status_code == 200
    only_top = trainer.get_image_performances(project.id, iteration.id, tag_ids=[top.id])
    assert len(only_top) == 7 and all(p.tags[0].tag_id == top.id for p in only_top)
    oldest = trainer.get_image_performances(project.id, iteration.id, order_by="Oldest", take=256)
    newest = trainer.get_image_performances(project.id, iteration.id, order_by="Newest", take=256)
    assert [p.id for p in oldest] == [p.id for p in newest][::-1]


def _wait_predictions(trainer, project_id: str, query: PredictionQueryToken, n: int,
                      timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        result = trainer.query_predictions(project_id, query)
        if len(result.results) >= n:
            return result
        assert time.monotonic() < deadline, f"{len(result.results)} of {n} predictions stored"
        time.sleep(0.5)


def test_stored_predictions_query_add_and_delete(clients, trained):
    trainer, predictor, _resource = clients
    project, iteration = trained["project"], trained["iteration"]
    top, trouser = trained["tags"]
    test = load_fashion_mnist("test", (0, 1), 2, seed=41)
    app = f"app{uuid.uuid4().hex[:6]}"
    for img, _label in test:
        predictor.classify_image(project.id, PUBLISH_NAME, img, application=app)
    predictor.classify_image_with_no_store(project.id, PUBLISH_NAME, test[0][0], application=app)

    query = PredictionQueryToken(application=app, order_by="Oldest")
    stored = _wait_predictions(trainer, project.id, query, len(test)).results
    assert len(stored) == len(test)  # the nostore call stored nothing
    first = stored[0]
    assert first.iteration == iteration.id and first.project == project.id
    assert {p.tag_id for p in first.predictions} == {top.id, trouser.id}
    assert requests.get(first.original_image_uri, timeout=30).content == test[0][0]
    assert requests.get(first.thumbnail_uri, timeout=30).status_code == 200

    paged = trainer.query_predictions(project.id, PredictionQueryToken(
        application=app, order_by="Oldest", max_count=1))
    assert [r.id for r in paged.results] == [stored[0].id]
    assert paged.token.continuation
    following = trainer.query_predictions(project.id, paged.token)
    assert [r.id for r in following.results] == [stored[1].id]
    sure_top = trainer.query_predictions(project.id, PredictionQueryToken(
        application=app, tags=[PredictionQueryTag(id=top.id, min_threshold=0.5, max_threshold=1.0)]))
    assert all(next(p.probability for p in r.predictions if p.tag_id == top.id) >= 0.5
               for r in sure_top.results)
    by_iteration = trainer.query_predictions(project.id, PredictionQueryToken(
        application=app, iteration_id=iteration.id))
    assert len(by_iteration.results) == len(test)
    assert len(trainer.query_predictions(project.id, PredictionQueryToken(
        application=app, order_by="Suspicious")).results) == len(test)

    # A stored prediction becomes a training image (the same bytes: a second time is a duplicate).
    batch = ImageIdCreateBatch(images=[ImageIdCreateEntry(id=first.id, tag_ids=[top.id])])
    created = trainer.create_images_from_predictions(project.id, batch)
    assert created.images[0].status == "OK", created.images[0].status
    new_image = created.images[0].image
    assert [t.tag_id for t in new_image.tags] == [top.id]
    assert requests.get(new_image.original_image_uri, timeout=30).content == test[0][0]
    again = trainer.create_images_from_predictions(project.id, batch)
    assert again.images[0].status == "OKDuplicate"
    unknown = trainer.create_images_from_predictions(project.id, ImageIdCreateBatch(
        images=[ImageIdCreateEntry(id=str(uuid.uuid4()))], tag_ids=[top.id]))
    assert unknown.images[0].status == "ErrorSource"

    trainer.delete_prediction(project.id, [r.id for r in stored])
    assert trainer.query_predictions(project.id, query).results == []
    # The training image made from a deleted prediction keeps its bytes.
    assert requests.get(new_image.original_image_uri, timeout=30).content == test[0][0]
    trainer.delete_images(project.id, image_ids=[new_image.id])


def test_smart_labeler_suggests_tags_for_untagged_images(clients, trained):
    trainer = clients[0]
    project, iteration = trained["project"], trained["iteration"]
    top, trouser = trained["tags"]
    untagged = [i for i in trained["untagged"]
                if not trainer.get_images_by_ids(project.id, image_ids=[i])[0].tags]
    assert untagged
    suggestions = trainer.suggest_tags_and_regions(project.id, iteration.id, untagged)
    assert [s.id for s in suggestions] == untagged
    for s in suggestions:
        assert s.iteration == iteration.id
        assert {p.tag_id for p in s.predictions} == {top.id, trouser.id}
        assert 0.0 <= s.prediction_uncertainty <= 1.0
        assert s.prediction_uncertainty == pytest.approx(
            1 - max(p.probability for p in s.predictions))

    everything = trainer.query_suggested_images(project.id, iteration.id,
                                                SuggestedTagAndRegionQueryToken(threshold=0.0))
    assert {r.id for r in everything.results} == set(untagged)
    assert all(r.original_image_uri and r.thumbnail_uri for r in everything.results)
    ascending = [r.prediction_uncertainty for r in everything.results]
    assert ascending == sorted(ascending)
    descending = trainer.query_suggested_images(
        project.id, iteration.id,
        SuggestedTagAndRegionQueryToken(threshold=0.0, sort_by="UncertaintyDescending"))
    assert [r.prediction_uncertainty for r in descending.results] == sorted(ascending, reverse=True)

    counts = trainer.query_suggested_image_count(
        project.id, iteration.id, tag_ids=[top.id, trouser.id], threshold=0.5)
    expected = {top.id: 0, trouser.id: 0}
    for s in suggestions:
        for p in s.predictions:
            if p.probability >= 0.5:
                expected[p.tag_id] += 1
    assert counts == expected
    sure = trainer.query_suggested_images(project.id, iteration.id,
                                          SuggestedTagAndRegionQueryToken(tag_ids=[top.id],
                                                                          threshold=0.5))
    assert len(sure.results) == expected[top.id]
    assert _code(trainer.suggest_tags_and_regions, project.id, iteration.id,
                 [str(uuid.uuid4())]) == "NotFoundImage"
    assert _code(trainer.query_suggested_image_count, project.id, str(uuid.uuid4()),
                 tag_ids=[top.id], threshold=0.5) == "NotFoundIteration"


def test_another_account_sees_nothing_of_the_first(live, live_env, clients, trained, credentials):
    trainer, predictor, resource_id = clients
    project, iteration = trained["project"], trained["iteration"]
    metadata = ServiceClient(live.layout.addr("metadata"), MetadataServiceStub, timeout=10,
                             credential=credentials["gateway"])
    try:
        other = metadata.CreateAccount(mpb.CreateAccountRequest(name="other")).account
    finally:
        metadata.close()
    endpoint = live_env["LOUPE_ENDPOINT"]
    intruder = _trainer(endpoint, other.training_key)
    intruder_predictor = _predictor(endpoint, other.prediction_key)

    assert project.id not in {p.id for p in intruder.get_projects()}
    pid, iid = project.id, iteration.id
    tag_id = trained["tags"][0].id
    image_id = trained["untagged"][0]
    calls = [
        (intruder.get_project, (pid,)),
        (intruder.delete_project, (pid,)),
        (intruder.get_tags, (pid,)),
        (intruder.get_tag, (pid, tag_id)),
        (intruder.update_tag, (pid, tag_id, Tag(name="stolen", description="", type="Regular"))),
        (intruder.delete_tag, (pid, tag_id)),
        (intruder.get_tagged_images, (pid,)),
        (intruder.get_images_by_ids, (pid, [image_id])),
        (intruder.delete_images, (pid, [image_id])),
        (intruder.create_image_tags, (pid, [ImageTagCreateEntry(image_id=image_id, tag_id=tag_id)])),
        (intruder.update_image_metadata, (pid, [image_id], {"k": "v"})),
        (intruder.get_iterations, (pid,)),
        (intruder.get_iteration, (pid, iid)),
        (intruder.update_iteration, (pid, iid, "stolen")),
        (intruder.get_iteration_performance, (pid, iid)),
        (intruder.get_image_performances, (pid, iid)),
        (intruder.train_project, (pid,)),
        (intruder.publish_iteration, (pid, iid, "stolen", other.prediction_resource_id)),
        (intruder.unpublish_iteration, (pid, iid)),
        (intruder.query_predictions, (pid, PredictionQueryToken())),
        (intruder.suggest_tags_and_regions, (pid, iid, [image_id])),
    ]
    for call, args in calls:
        assert _code(call, *args) == "NotFoundProject", call.__name__

    # The other account's own project cannot be published to the first account's resource.
    own = intruder.create_project(f"other-{uuid.uuid4().hex[:6]}")
    try:
        assert _code(intruder.publish_iteration, own.id, str(uuid.uuid4()), "x", resource_id) in (
            "BadRequestInvalidPublishTarget", "NotFoundIteration")
    finally:
        intruder.delete_project(own.id)

    image = load_fashion_mnist("test", (0,), 1, seed=5)[0][0]
    assert _code(intruder_predictor.classify_image, pid, PUBLISH_NAME, image) == "NotFoundProject"
    assert _code(intruder_predictor.classify_image_with_no_store, pid, PUBLISH_NAME, image) \
        == "NotFoundProject"
    # The first account's project is untouched.
    assert trainer.get_tag(pid, tag_id).name != "stolen"
    assert trainer.get_iteration(pid, iid).publish_name == PUBLISH_NAME
    assert len(predictor.classify_image_with_no_store(pid, PUBLISH_NAME, image).predictions) == 2
