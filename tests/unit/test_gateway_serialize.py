"""Serializers: loupe.v1 messages -> Custom Vision JSON that the official SDK deserializes."""
from __future__ import annotations

import datetime as dt

import pytest
from azure.cognitiveservices.vision.customvision.prediction import models as pmodels
from azure.cognitiveservices.vision.customvision.training import models as tmodels
from msrest import Deserializer

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import prediction_pb2 as ppb
from loupe_common.timeutil import to_proto
from loupe_gateway import domains, serialize

pytestmark = pytest.mark.unit

T0 = dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.timezone.utc)
TRAINING = Deserializer({k: v for k, v in tmodels.__dict__.items() if isinstance(v, type)})
PREDICTION = Deserializer({k: v for k, v in pmodels.__dict__.items() if isinstance(v, type)})


def test_project():
    p = mpb.Project(id="p1", name="Fruit", description="d", domain_id=domains.GENERAL_COMPACT,
                    classification_type="Multilabel", target_export_platforms=["ONNX"],
                    created=to_proto(T0), last_modified=to_proto(T0))
    out = serialize.project(p)
    assert out["created"] == "2024-05-01T12:30:15.123Z"
    model = TRAINING("Project", out)
    assert model.id == "p1" and model.name == "Fruit"
    assert model.settings.domain_id == domains.GENERAL_COMPACT
    assert model.settings.classification_type == "Multilabel"
    assert model.settings.target_export_platforms == ["ONNX"]
    assert model.created == T0


def test_project_without_domain_reports_the_default():
    assert serialize.project(mpb.Project(id="p"))["settings"]["domainId"] == domains.GENERAL


def test_tag():
    model = TRAINING("Tag", serialize.tag(mpb.Tag(id="t", name="apple", type="Negative",
                                                  image_count=7)))
    assert (model.id, model.name, model.type, model.image_count) == ("t", "apple", "Negative", 7)


def test_image_with_uris_and_tags():
    img = mpb.Image(id="i", project_id="p", width=640, height=480, created=to_proto(T0),
                    tags=[mpb.ImageTag(tag_id="t", tag_name="apple", created=to_proto(T0))])
    out = serialize.image(img, lambda im, variant: f"http://x/{im.id}/{variant}")
    model = TRAINING("Image", out)
    assert model.original_image_uri == "http://x/i/original"
    assert model.thumbnail_uri == "http://x/i/thumbnail"
    assert model.resized_image_uri == "http://x/i/resized"
    assert (model.width, model.height) == (640, 480)
    assert model.tags[0].tag_id == "t" and model.tags[0].tag_name == "apple"


def test_image_create_summary():
    ok = serialize.image_create_result("a.jpg", "OK", serialize.image(mpb.Image(id="i")))
    dup = serialize.image_create_result("b.jpg", "OKDuplicate", serialize.image(mpb.Image(id="j")))
    bad = serialize.image_create_result("c.jpg", "ErrorImageFormat", None)
    assert serialize.image_create_summary([ok])["isBatchSuccessful"] is True
    assert serialize.image_create_summary([ok, dup])["isBatchSuccessful"] is False
    summary = TRAINING("ImageCreateSummary", serialize.image_create_summary([ok, bad]))
    assert not summary.is_batch_successful
    assert [r.status for r in summary.images] == ["OK", "ErrorImageFormat"]
    assert summary.images[0].image.id == "i" and summary.images[1].image is None


def test_iteration_training_and_completed():
    training = mpb.Iteration(id="it", project_id="p", name="Iteration 1", status="Training",
                             created=to_proto(T0), domain_id=domains.GENERAL_COMPACT,
                             classification_type="Multiclass", training_type="Regular",
                             progress_stage="features", progress_percent=40.0)
    out = serialize.iteration(training)
    assert out["progress"] == {"stage": "features", "percent": 40.0, "etaSeconds": None}
    training.progress_eta_seconds = 12.345
    assert serialize.iteration(training)["progress"]["etaSeconds"] == 12.3
    assert out["trainedAt"] is None and out["publishName"] is None and out["exportable"] is False
    model = TRAINING("Iteration", out)
    assert model.status == "Training" and model.project_id == "p"

    done = mpb.Iteration(id="it", status="Completed", domain_id=domains.GENERAL_COMPACT,
                         trained_at=to_proto(T0), publish_name="prod",
                         prediction_resource_id="/subscriptions/x", error_message="")
    out = serialize.iteration(done)
    assert "progress" not in out
    assert out["exportable"] is True and out["exportableTo"] == ["ONNX", "DockerFile"]
    model = TRAINING("Iteration", out)
    assert model.publish_name == "prod" and model.original_publish_resource_id == "/subscriptions/x"
    assert model.trained_at == T0

    failed = serialize.iteration(mpb.Iteration(status="Failed", error_message="boom"))
    assert failed["trainingErrorDetails"] == "boom"
    assert serialize.iteration(mpb.Iteration(status="Completed", domain_id=domains.GENERAL))[
        "exportable"] is False


def test_iteration_performance():
    perf = mpb.Performance(threshold=0.5, precision=0.9, recall=0.8, average_precision=0.95,
                           precision_std_deviation=0.01, recall_std_deviation=0.02,
                           per_tag=[mpb.TagPerformance(tag_id="t", name="apple", precision=1.0,
                                                       recall=0.5, average_precision=0.7)])
    model = TRAINING("IterationPerformance", serialize.iteration_performance(perf))
    assert model.precision == 0.9 and model.recall == 0.8 and model.average_precision == 0.95
    assert model.per_tag_performance[0].id == "t"
    assert model.per_tag_performance[0].recall == 0.5


def test_image_prediction_sorted_with_tag_types():
    result = ppb.ClassifyResponse(
        prediction_id="pr", project_id="p", iteration_id="it", created=to_proto(T0),
        predictions=[ppb.TagProbability(tag_id="a", tag_name="apple", probability=0.1),
                     ppb.TagProbability(tag_id="n", tag_name="Negative", probability=0.7),
                     ppb.TagProbability(tag_id="b", tag_name="banana", probability=0.2)])
    out = serialize.image_prediction(result, {"n": "Negative"})
    model = PREDICTION("ImagePrediction", out)
    assert [p.tag_name for p in model.predictions] == ["Negative", "banana", "apple"]
    assert [p.tag_type for p in model.predictions] == ["Negative", "Regular", "Regular"]
    assert model.id == "pr" and model.project == "p" and model.iteration == "it"
    assert model.created == T0


def test_domains_deserialize():
    models = [TRAINING("Domain", d) for d in domains.DOMAINS.values()]
    assert {m.id for m in models} == {domains.GENERAL, domains.GENERAL_COMPACT}
    compact = next(m for m in models if m.id == domains.GENERAL_COMPACT)
    assert compact.exportable and compact.type == "Classification"
    assert compact.model_information.estimated_model_size_in_megabytes > 0
