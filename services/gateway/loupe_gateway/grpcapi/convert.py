"""Internal messages (loupe.v1 metadata/prediction) to the public API's (loupe.v1.api), and the
public error shape of a domain error. Only public identifiers are copied: never account ids,
storage keys or hashes."""
from __future__ import annotations

import uuid

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from loupe.v1 import api_pb2 as api
from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import prediction_pb2 as ppb
from loupe_common.errors import LoupeError
from loupe_gateway import domains, serialize


def canonical_ids(msg: Message) -> Message:
    """Rewrites, in place, every id field of `msg` that holds a GUID (`*_id`, and each value of
    a repeated `*_ids`, in nested messages too) to its canonical form, as REST does with path
    ids: rows, storage keys and caches then see one spelling. Returns `msg`."""
    for field, value in msg.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for sub in (value if _repeated(field) else [value]):
                canonical_ids(sub)
        elif field.type == FieldDescriptor.TYPE_STRING and field.name.endswith(("_id", "_ids")):
            if _repeated(field):
                value[:] = [_guid(v) for v in value]
            else:
                setattr(msg, field.name, _guid(value))
    return msg


def _repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def _guid(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return value


def _ts(target: Timestamp, msg, field: str) -> None:
    if msg.HasField(field):
        target.CopyFrom(getattr(msg, field))


def project(p: mpb.Project) -> api.Project:
    out = api.Project(id=p.id, name=p.name, description=p.description,
                      domain_id=p.domain_id or domains.DEFAULT_DOMAIN,
                      classification_type=p.classification_type)
    _ts(out.created, p, "created")
    _ts(out.last_modified, p, "last_modified")
    return out


def tag(t: mpb.Tag) -> api.Tag:
    return api.Tag(id=t.id, name=t.name, description=t.description, type=t.type or "Regular",
                   image_count=t.image_count)


def image(img: mpb.Image) -> api.Image:
    out = api.Image(id=img.id, width=img.width, height=img.height,
                    tag_ids=[t.tag_id for t in img.tags], metadata=dict(img.metadata))
    _ts(out.created, img, "created")
    return out


def iteration(it: mpb.Iteration) -> api.Iteration:
    out = api.Iteration(id=it.id, name=it.name, status=it.status,
                        training_type=it.training_type or "Regular",
                        publish_name=it.publish_name, error_message=it.error_message)
    _ts(out.created, it, "created")
    _ts(out.trained_at, it, "trained_at")
    return out


def progress(it: mpb.Iteration) -> api.TrainingProgress:
    """One TrainProject event: the last (`finished`) once the iteration is not Training."""
    finished = it.status != "Training"
    return api.TrainingProgress(
        iteration=iteration(it), stage=it.progress_stage if not finished else it.status,
        percent=100.0 if it.status == "Completed" else it.progress_percent,
        eta_seconds=max(it.progress_eta_seconds, 0.0) if not finished else 0.0,
        finished=finished,
    )


def performance(perf: mpb.Performance) -> api.GetIterationPerformanceResponse:
    return api.GetIterationPerformanceResponse(
        precision=perf.precision, precision_std_deviation=perf.precision_std_deviation,
        recall=perf.recall, recall_std_deviation=perf.recall_std_deviation,
        average_precision=perf.average_precision,
        per_tag=[api.TagPerformance(
            tag_id=t.tag_id, tag_name=t.name, precision=t.precision,
            precision_std_deviation=t.precision_std_deviation, recall=t.recall,
            recall_std_deviation=t.recall_std_deviation, average_precision=t.average_precision,
        ) for t in perf.per_tag],
    )


def _ranked(predictions) -> list[api.TagProbability]:
    return [api.TagProbability(tag_id=t, tag_name=n, probability=p)
            for t, n, p in serialize.ranked(predictions)]


def prediction(result: ppb.ClassifyResponse) -> api.ImagePrediction:
    out = api.ImagePrediction(id=result.prediction_id, iteration_id=result.iteration_id,
                              predictions=_ranked(result.predictions))
    _ts(out.created, result, "created")
    return out


def stored_prediction(p: mpb.StoredPrediction) -> api.StoredPrediction:
    out = api.StoredPrediction(id=p.id, iteration_id=p.iteration_id, application=p.application,
                               width=p.width, height=p.height,
                               predictions=_ranked(p.predictions))
    _ts(out.created, p, "created")
    return out


def classify_error(err: LoupeError) -> api.ClassifyError:
    """The in-stream error of one ClassifyStream request: what ClassifyImage would fail with."""
    return api.ClassifyError(status=err.grpc_status.name, code=err.code, message=err.message)
