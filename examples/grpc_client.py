#!/usr/bin/env python3
"""A backend service using Loupe's public gRPC API (docs/grpc.md), start to end: create a
project and its tags, upload the images as a client stream, train with the progress stream,
publish, classify over the bidirectional stream, then query the stored predictions.

    . .loupe/env      # LOUPE_GRPC_ENDPOINT, LOUPE_TRAINING_KEY, LOUPE_PREDICTION_KEY, ...
    python examples/grpc_client.py --images DIR [--classify IMAGE ...]

DIR holds one folder per tag, named after it, with that tag's images (at least 5 each).
Without --classify, the first image of each tag is classified. The stubs are the generated
code of protos/loupe/v1/api.proto (services/common/loupe/v1/api_pb2*.py; any language's
protoc output works the same way).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

try:
    from loupe.v1 import api_pb2 as api, api_pb2_grpc
except ImportError:  # run from a checkout: use its generated code
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "common"))
    from loupe.v1 import api_pb2 as api, api_pb2_grpc

import grpc

#: Bytes per UploadImages message: any size up to the 64 MB message limit works.
CHUNK = 64 * 1024
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def upload_stream(project_id: str, images: list[tuple[str, bytes, str]]):
    """UploadImages messages: per image, a NewImage with its first chunk, then the rest."""
    for name, data, tag_id in images:
        yield api.UploadImagesRequest(project_id=project_id, image=api.NewImage(
            name=name, tag_ids=[tag_id], data=data[:CHUNK]))
        for start in range(CHUNK, len(data), CHUNK):
            yield api.UploadImagesRequest(chunk=data[start:start + CHUNK])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True, help="one folder per tag")
    parser.add_argument("--classify", type=Path, nargs="*", default=[], help="images to classify")
    parser.add_argument("--publish-name", default=f"grpc-{uuid.uuid4().hex[:6]}")
    parser.add_argument("--keep", action="store_true", help="keep the project afterwards")
    args = parser.parse_args(argv)
    env = os.environ
    try:
        endpoint, training_key = env["LOUPE_GRPC_ENDPOINT"], env["LOUPE_TRAINING_KEY"]
        prediction_key = env["LOUPE_PREDICTION_KEY"]
        resource_id = env["LOUPE_PREDICTION_RESOURCE_ID"]
    except KeyError as missing:
        print(f"missing {missing.args[0]}: source .loupe/env first", file=sys.stderr)
        return 2
    # The keys go in every call's metadata, as REST sends them in headers.
    training = [("training-key", training_key)]
    prediction = [("prediction-key", prediction_key)]
    # TLS: grpc.secure_channel(endpoint, grpc.ssl_channel_credentials()) behind a TLS ingress.
    channel = grpc.insecure_channel(endpoint, options=[
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    projects = api_pb2_grpc.ProjectsStub(channel)
    trainer = api_pb2_grpc.TrainingStub(channel)
    predictor = api_pb2_grpc.PredictionStub(channel)

    try:
        project = projects.CreateProject(api.CreateProjectRequest(
            name=f"grpc-example-{uuid.uuid4().hex[:6]}"), metadata=training).project
        print(f"project {project.id} ({project.name})")
        images: list[tuple[str, bytes, str]] = []
        first_of_tag: list[Path] = []
        for folder in sorted(p for p in args.images.iterdir() if p.is_dir()):
            tag = projects.CreateTag(api.CreateTagRequest(project_id=project.id, name=folder.name),
                                     metadata=training).tag
            files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            images += [(f.name, f.read_bytes(), tag.id) for f in files]
            first_of_tag += files[:1]
            print(f"tag {tag.name}: {len(files)} images")

        summary = projects.UploadImages(upload_stream(project.id, images), metadata=training)
        print(f"uploaded {len(summary.images)} images "
              f"(batch successful: {summary.is_batch_successful})")

        iteration = None
        for event in trainer.TrainProject(api.TrainProjectRequest(project_id=project.id),
                                          metadata=training):
            print(f"  training: {event.stage or event.iteration.status} {event.percent:5.1f}%"
                  + (f", about {event.eta_seconds:.0f} s left" if event.eta_seconds else ""))
            iteration = event.iteration
        if iteration is None or iteration.status != "Completed":
            print(f"training failed: {iteration.error_message if iteration else 'no events'}")
            return 1
        perf = trainer.GetIterationPerformance(api.GetIterationPerformanceRequest(
            project_id=project.id, iteration_id=iteration.id), metadata=training)
        print(f"iteration {iteration.name}: precision {perf.precision:.2f}, recall {perf.recall:.2f}")
        for t in perf.per_tag:
            print(f"  {t.tag_name}: precision {t.precision:.2f}, recall {t.recall:.2f}")

        trainer.PublishIteration(api.PublishIterationRequest(
            project_id=project.id, iteration_id=iteration.id, publish_name=args.publish_name,
            prediction_resource_id=resource_id), metadata=training)
        print(f"published as {args.publish_name}")

        to_classify = args.classify or first_of_tag
        requests = (api.ClassifyImageRequest(
            project_id=project.id, publish_name=args.publish_name, image=path.read_bytes(),
            store=True, application="grpc-example", correlation_id=str(path))
            for path in to_classify)
        for answer in predictor.ClassifyStream(requests, metadata=prediction):
            if answer.HasField("error"):
                print(f"{answer.correlation_id}: {answer.error.status} {answer.error.code}")
                continue
            best = answer.prediction.predictions[0]
            print(f"{answer.correlation_id}: {best.tag_name} ({best.probability:.2f})")

        # Stored predictions reach the query a moment later (they are recorded off the
        # request path).
        deadline = time.monotonic() + 30
        while True:
            stored = trainer.QueryPredictions(api.QueryPredictionsRequest(
                project_id=project.id, application="grpc-example"), metadata=training)
            if len(stored.predictions) >= len(to_classify) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        print(f"stored predictions: {len(stored.predictions)}")
        if not args.keep:
            projects.DeleteProject(api.DeleteProjectRequest(project_id=project.id),
                                   metadata=training)
            print("project deleted")
        return 0
    except grpc.RpcError as err:
        code = dict(err.trailing_metadata() or ()).get("loupe-error-code", "")
        print(f"{err.code().name} {code}: {err.details()}", file=sys.stderr)
        return 1
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main())
