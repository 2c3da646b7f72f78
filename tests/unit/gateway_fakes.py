"""An in-process stand-in for the gateway's clients module (`loupe_gateway.clients.Backends`).

The gateway's flows and blueprints call the backends only through `Backends`' methods, so a
unit test substitutes this object (`create_app(config, clients=FakeBackends())`, or passes it to
a flow) and sees what the flow asked for. It keeps a small project in memory and answers with
the loupe.v1 messages the real services return; it stands in for the gRPC clients, not for
PostgreSQL, MinIO or TorchServe.
"""
from __future__ import annotations

import io
import uuid
from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp
from PIL import Image

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import prediction_pb2 as ppb
from loupe.v1 import storage_pb2 as spb
from loupe_common.errors import NotFound
from loupe_model.evaluate import Evaluation

ACCOUNT = "acct-1"
TRAINING_KEY = "training-key"
DOMAIN = "0732100f-1a38-4e49-a514-c9b44c697ab5"


def _id(n: int) -> str:
    return str(uuid.UUID(int=n))


def _ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


PROJECT = _id(1)
TAG_CAT, TAG_NEG = _id(11), _id(12)
IMAGES = [_id(21), _id(22), _id(23)]  # 21 and 22 untagged, 23 tagged cat
ITERATION = _id(31)
PREDICTION = _id(41)


class FakeBackends:
    """A project with two tags, three images, one trained iteration and a stored prediction.

    `calls` records (method, args) of every call, in order; `classified` counts classify calls.
    """

    def __init__(self):
        import numpy as np

        from loupe_gateway.prediction_quota import StoredPredictionQuota

        self.calls: list[tuple[str, tuple]] = []
        self.classified = 0
        #: The real check, over this stand-in's answer (no quota).
        self.stored_quota = StoredPredictionQuota(self.stored_prediction_quota, 10.0)
        self.project = mpb.Project(id=PROJECT, account_id=ACCOUNT, name="p", domain_id=DOMAIN,
                                   classification_type="Multiclass")
        self.tags = {
            TAG_CAT: mpb.Tag(id=TAG_CAT, name="cat", type="Regular", image_count=1),
            TAG_NEG: mpb.Tag(id=TAG_NEG, name="Negative", type="Negative"),
        }
        self.images = {
            image_id: mpb.Image(
                id=image_id, project_id=PROJECT, sha256=f"{n:064x}", width=10 + n, height=20,
                content_type="image/png", size_bytes=100, created=_ts(1_000 + n),
            )
            for n, image_id in enumerate(IMAGES)
        }
        self.images[IMAGES[2]].tags.add(tag_id=TAG_CAT, tag_name="cat", created=_ts(2_000))
        evaluation = Evaluation(
            probabilities=np.array([[0.8, 0.2], [0.4, 0.6]]), labels=np.array([[1, 0], [0, 1]]),
            folds=np.array([0, 1]), num_folds=2, multilabel=False, seed=0,
        )
        self.iteration = mpb.Iteration(
            id=ITERATION, project_id=PROJECT, name="Iteration 1", status="Completed",
            classification_type="Multiclass", artifact_key="artifacts/x", domain_id=DOMAIN,
            evaluation=evaluation.to_json(), evaluation_image_ids=[IMAGES[0], IMAGES[2]],
        )
        self.iteration.performance.per_tag.add(tag_id=TAG_CAT, name="cat")
        self.iteration.performance.per_tag.add(tag_id=TAG_NEG, name="Negative")
        self.predictions = {
            PREDICTION: mpb.StoredPrediction(
                id=PREDICTION, project_id=PROJECT, iteration_id=ITERATION,
                image_sha256=self.images[IMAGES[0]].sha256, created=_ts(3_000),
                predictions=[mpb.PredictedTag(tag_id=TAG_NEG, tag_name="Negative", probability=0.3),
                             mpb.PredictedTag(tag_id=TAG_CAT, tag_name="cat", probability=0.7)],
            ),
        }
        #: sha256 -> bytes in "storage" (each image a different 1x1 PNG).
        self.blobs = {img.sha256: _png(n) for n, img in enumerate(self.images.values())}
        #: image id -> the probability classify gives "cat" for its bytes (0.55 by default).
        self.cat_probability: dict[str, float] = {}

    def _record(self, name: str, *args) -> None:
        self.calls.append((name, args))

    def _project(self, account_id: str, project_id: str) -> None:
        if account_id != ACCOUNT or project_id != PROJECT:
            raise NotFound(f"project {project_id} not found", "NotFoundProject")

    # --- metadata ------------------------------------------------------------------------------

    def resolve_key(self, key: str) -> mpb.ResolveKeyResponse:
        if key != TRAINING_KEY:
            raise NotFound("unknown key", "NotFound")
        return mpb.ResolveKeyResponse(account_id=ACCOUNT, kind=mpb.KEY_KIND_TRAINING)

    def get_project(self, account_id: str, project_id: str) -> mpb.Project:
        self._record("get_project", project_id)
        self._project(account_id, project_id)
        return self.project

    def list_tags(self, account_id: str, project_id: str) -> list[mpb.Tag]:
        self._record("list_tags", project_id)
        self._project(account_id, project_id)
        return list(self.tags.values())

    def get_tag(self, account_id: str, project_id: str, tag_id: str) -> mpb.Tag:
        self._record("get_tag", project_id, tag_id)
        self._project(account_id, project_id)
        if tag_id not in self.tags:
            raise NotFound(f"tag {tag_id} not found", "NotFoundTag")
        return self.tags[tag_id]

    def update_tag(self, account_id: str, project_id: str, tag_id: str,
                   update_mask: Sequence[str], **fields: str) -> mpb.Tag:
        self._record("update_tag", project_id, tag_id, tuple(update_mask))
        tag = mpb.Tag()
        tag.CopyFrom(self.get_tag(account_id, project_id, tag_id))
        for key in update_mask:
            setattr(tag, key, fields[key])
        self.tags[tag_id] = tag
        return tag

    def get_iteration(self, account_id: str, project_id: str, iteration_id: str
                      ) -> mpb.Iteration:
        self._record("get_iteration", project_id, iteration_id)
        self._project(account_id, project_id)
        if iteration_id != self.iteration.id:
            raise NotFound(f"iteration {iteration_id} not found", "NotFoundIteration")
        return self.iteration

    def update_iteration(self, account_id: str, project_id: str, iteration_id: str, name: str
                         ) -> mpb.Iteration:
        self._record("update_iteration", project_id, iteration_id, name)
        self.get_iteration(account_id, project_id, iteration_id).name = name
        return self.iteration

    def add_image_tags(self, account_id: str, project_id: str,
                       links: Sequence[tuple[str, str]], max_tags_per_image: int
                       ) -> mpb.AddImageTagsResponse:
        self._record("add_image_tags", project_id, tuple(links), max_tags_per_image)
        self._project(account_id, project_id)
        out = mpb.AddImageTagsResponse()
        for image_id, tag_id in links:
            known = any(t.tag_id == tag_id for t in self.images[image_id].tags)
            (out.duplicated if known else out.created).add(image_id=image_id, tag_id=tag_id)
        return out

    def delete_image_tags(self, account_id: str, project_id: str, image_ids: Sequence[str],
                          tag_ids: Sequence[str]) -> None:
        self._record("delete_image_tags", project_id, tuple(image_ids), tuple(tag_ids))
        self._project(account_id, project_id)

    def update_image_metadata(self, account_id: str, project_id: str, image_ids: Sequence[str],
                              metadata: dict[str, str], max_keys_per_image: int
                              ) -> list[mpb.ImageMetadataResult]:
        self._record("update_image_metadata", project_id, tuple(image_ids), max_keys_per_image)
        self._project(account_id, project_id)
        return [
            mpb.ImageMetadataResult(image_id=i, status="OK", metadata=metadata)
            if i in self.images else mpb.ImageMetadataResult(image_id=i, status="ErrorImageNotFound")
            for i in image_ids
        ]

    def list_images(self, account_id: str, project_id: str, tagging_status: str = "",
                    tag_ids: Sequence[str] = (), order_by: str = "", take: int = 0,
                    skip: int = 0, image_ids: Sequence[str] = (), iteration_id: str = "",
                    metadata_filter: mpb.MetadataFilter | None = None
                    ) -> mpb.ListImagesResponse:
        self._record("list_images", project_id, tagging_status, tuple(image_ids), order_by,
                     take, skip)
        self._project(account_id, project_id)
        images = [img for img in self.images.values() if not image_ids or img.id in image_ids]
        if tagging_status:
            images = [img for img in images if bool(img.tags) == (tagging_status == "Tagged")]
        images.sort(key=lambda img: img.created.seconds, reverse=order_by != "Oldest")
        return mpb.ListImagesResponse(images=images[skip:skip + (take or len(images))],
                                      total=len(images))

    def add_images(self, account_id: str, project_id: str, images: Sequence[mpb.NewImage]
                   ) -> list[mpb.AddedImage]:
        self._record("add_images", project_id, tuple(img.sha256 for img in images))
        self._project(account_id, project_id)
        by_sha = {img.sha256: img for img in self.images.values()}
        return [mpb.AddedImage(status="OKDuplicate", image=by_sha[new.sha256]) for new in images]

    def query_predictions(self, request: mpb.QueryPredictionsRequest
                          ) -> mpb.QueryPredictionsResponse:
        self._record("query_predictions", request.project_id, tuple(request.ids))
        self._project(request.account_id, request.project_id)
        found = [p for p in self.predictions.values() if not request.ids or p.id in request.ids]
        return mpb.QueryPredictionsResponse(predictions=found, continuation="")

    def stored_prediction_quota(self, account_id: str) -> tuple[int, int]:
        self.calls.append(("stored_prediction_quota", (account_id,)))
        return 0, 0

    def delete_predictions(self, account_id: str, project_id: str, ids: Sequence[str]
                           ) -> list[str]:
        self._record("delete_predictions", project_id, tuple(ids))
        self._project(account_id, project_id)
        return [self.predictions.pop(i).image_sha256 for i in ids if i in self.predictions]

    # --- storage -------------------------------------------------------------------------------

    def get_image(self, project_id: str, sha256: str, variant: str) -> spb.GetImageResponse:
        self._record("get_image", project_id, sha256, variant)
        if sha256 not in self.blobs:
            raise NotFound("no such image", "NotFoundImage")
        return spb.GetImageResponse(data=self.blobs[sha256], content_type="image/png")

    def delete_image_data(self, project_id: str, sha256: Sequence[str] = (), all: bool = False,
                          older_than_seconds: float = 0.0, write_tokens: Sequence[str] = ()
                          ) -> int:
        self._record("delete_image_data", project_id, tuple(sha256), all)
        return len(sha256)

    def find_image_data(self, project_id: str, sha256: Sequence[str]) -> list[str]:
        self._record("find_image_data", project_id, tuple(sha256))
        return [sha for sha in sha256 if sha in self.blobs]

    # --- prediction ----------------------------------------------------------------------------

    def classify(self, project_id: str, iteration_id: str, artifact_key: str, image: bytes,
                 store: bool, application: str) -> ppb.ClassifyResponse:
        self._record("classify", project_id, iteration_id, store)
        self.classified += 1
        image_id = next((img.id for img in self.images.values()
                         if self.blobs.get(img.sha256) == image), "")
        cat = self.cat_probability.get(image_id, 0.55)
        return ppb.ClassifyResponse(
            prediction_id=_id(99), project_id=project_id, iteration_id=iteration_id,
            created=_ts(4_000),
            predictions=[ppb.TagProbability(tag_id=TAG_CAT, tag_name="cat", probability=cat),
                         ppb.TagProbability(tag_id=TAG_NEG, tag_name="Negative",
                                            probability=round(1.0 - cat, 6))],
        )


def _png(grey: int) -> bytes:
    """A 1x1 PNG of one grey level."""
    out = io.BytesIO()
    Image.new("L", (1, 1), grey).save(out, "PNG")
    return out.getvalue()
