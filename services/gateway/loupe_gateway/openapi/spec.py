"""The per-route part of the OpenAPI document: one `Op` per (endpoint, method) the app serves.

Paths and path parameters come from the app's URL map (loupe_gateway.openapi.build); what the
URL map cannot know (summary, query parameters, body, response) is written here, next to the
schemas of the JSON bodies (field names as in the official SDK's models). A unit test fails
when a route has no entry here or an entry has no route, so the document cannot drift.

To document a new route: add `"<endpoint>": {"<METHOD>": Op(...)}` to OPERATIONS.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"  # a type of the mini-language of SCHEMAS
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Op:
    """One operation.

    Args:
        summary: one line.
        query: query parameters.
        body: None, "image" (raw or multipart image bytes), or a schema name (JSON body).
        response: schema (mini-language) of the success body; None for no body.
        status: success status (204 for no body).
        extra_statuses: other success statuses with the same body (e.g. 207).
        sdk: the official SDK's operation name, where there is one.
    """

    summary: str
    query: tuple[Param, ...] = ()
    body: str | None = None
    response: str | None = None
    status: int = 200
    extra_statuses: tuple[int, ...] = ()
    sdk: str = ""
    content_type: str = "application/json"
    description: str = field(default="")


# --- schemas: {"field": "type"}; types: string, uuid, date-time, integer, number, boolean,
# binary, [T] (array), {T} (map of T), Name (a schema below), "a|b|c" (string enum). ---------

SCHEMAS: dict[str, dict[str, str]] = {
    "CustomVisionError": {"code": "string", "message": "string"},
    "Domain": {
        "id": "uuid", "name": "string", "type": "Classification|ObjectDetection",
        "exportable": "boolean", "enabled": "boolean", "exportableFromVersion": "string",
        "modelInformation": "{string}",
    },
    "ProjectSettings": {
        "domainId": "uuid", "classificationType": "Multiclass|Multilabel",
        "targetExportPlatforms": "[string]", "useNegativeSet": "boolean",
    },
    "Project": {
        "id": "uuid", "name": "string", "description": "string", "settings": "ProjectSettings",
        "created": "date-time", "lastModified": "date-time", "thumbnailUri": "string",
        "drModeEnabled": "boolean", "status": "string",
    },
    "Tag": {
        "id": "uuid", "name": "string", "description": "string",
        "type": "Regular|Negative", "imageCount": "integer",
    },
    "ImageTag": {"tagId": "uuid", "tagName": "string", "created": "date-time"},
    "Image": {
        "id": "uuid", "created": "date-time", "width": "integer", "height": "integer",
        "resizedImageUri": "string", "thumbnailUri": "string", "originalImageUri": "string",
        "tags": "[ImageTag]", "regions": "[{string}]", "metadata": "{string}",
    },
    "ImageCreateResult": {
        "sourceUrl": "string",
        "status": "OK|OKDuplicate|ErrorSource|ErrorImageFormat|ErrorImageSize|ErrorStorage|"
                  "ErrorLimitExceed|ErrorTagLimitExceed|ErrorRegionLimitExceed|ErrorUnknown|"
                  "ErrorNegativeAndRegularTagOnSameImage|ErrorImageDimensions|ErrorInvalidTag",
        "image": "Image",
    },
    "ImageCreateSummary": {"isBatchSuccessful": "boolean", "images": "[ImageCreateResult]"},
    "ImageFileCreateEntry": {"name": "string", "contents": "binary", "tagIds": "[uuid]"},
    "ImageFileCreateBatch": {"images": "[ImageFileCreateEntry]", "tagIds": "[uuid]"},
    "ImageUrlCreateEntry": {"url": "string", "tagIds": "[uuid]", "regions": "[{string}]"},
    "ImageUrlCreateBatch": {"images": "[ImageUrlCreateEntry]", "tagIds": "[uuid]",
                            "metadata": "{string}"},
    "ImageUrl": {"url": "string"},
    "TrainingParameters": {"selectedTags": "[uuid]"},
    "Iteration": {
        "id": "uuid", "name": "string", "status": "Training|Completed|Failed",
        "created": "date-time", "lastModified": "date-time", "trainedAt": "date-time",
        "projectId": "uuid", "exportable": "boolean", "exportableTo": "[string]",
        "domainId": "uuid", "classificationType": "Multiclass|Multilabel",
        "trainingType": "Regular|Advanced", "reservedBudgetInHours": "integer",
        "trainingTimeInMinutes": "integer", "publishName": "string",
        "originalPublishResourceId": "string", "trainingErrorDetails": "string",
        "progress": "TrainingProgress",
    },
    # Loupe extension, present while an iteration trains: the stage, percent done and the
    # trainer's estimate of the seconds left (null until it has one).
    "TrainingProgress": {
        "stage": "queued|loading|features|evaluating|training|saving",
        "percent": "number", "etaSeconds": "number",
    },
    "TagPerformance": {
        "id": "uuid", "name": "string", "precision": "number",
        "precisionStdDeviation": "number", "recall": "number", "recallStdDeviation": "number",
        "averagePrecision": "number",
    },
    "IterationPerformance": {
        "perTagPerformance": "[TagPerformance]", "precision": "number",
        "precisionStdDeviation": "number", "recall": "number", "recallStdDeviation": "number",
        "averagePrecision": "number",
    },
    "Prediction": {
        "probability": "number", "tagId": "uuid", "tagName": "string",
        "tagType": "Regular|Negative", "boundingBox": "{number}",
    },
    "ImagePrediction": {
        "id": "uuid", "project": "uuid", "iteration": "uuid", "created": "date-time",
        "predictions": "[Prediction]",
    },
    "Export": {
        "platform": "CoreML|TensorFlow|DockerFile|ONNX|VAIDK|OpenVino",
        "status": "Exporting|Failed|Done", "downloadUri": "string", "flavor": "string",
        "newerVersionAvailable": "boolean",
    },
    "ProjectExport": {
        "iterationCount": "integer", "imageCount": "integer", "tagCount": "integer",
        "regionCount": "integer", "estimatedImportTimeInMS": "integer", "token": "string",
    },
    # Tagging, metadata, per-image performance, stored predictions, Smart Labeler.
    "ImageTagCreateEntry": {"imageId": "uuid", "tagId": "uuid"},
    "ImageTagCreateBatch": {"tags": "[ImageTagCreateEntry]"},
    "ImageTagCreateSummary": {"created": "[ImageTagCreateEntry]",
                              "duplicated": "[ImageTagCreateEntry]",
                              "exceeded": "[ImageTagCreateEntry]"},
    "ImageMetadataUpdateEntry": {"imageId": "uuid", "status": "OK|ErrorImageNotFound|"
                                 "ErrorLimitExceed|ErrorUnknown", "metadata": "{string}"},
    "ImageMetadataUpdateSummary": {"isBatchSuccessful": "boolean",
                                   "images": "[ImageMetadataUpdateEntry]"},
    "ImagePerformance": {
        "predictions": "[Prediction]", "id": "uuid", "created": "date-time",
        "width": "integer", "height": "integer", "imageUri": "string", "thumbnailUri": "string",
        "tags": "[ImageTag]", "regions": "[{string}]",
    },
    "PredictionQueryTag": {"id": "uuid", "minThreshold": "number", "maxThreshold": "number"},
    "PredictionQueryToken": {
        "session": "string", "continuation": "string", "maxCount": "integer",
        "orderBy": "Newest|Oldest|Suggested", "tags": "[PredictionQueryTag]",
        "iterationId": "uuid", "startTime": "date-time", "endTime": "date-time",
        "application": "string",
    },
    "StoredImagePrediction": {
        "resizedImageUri": "string", "thumbnailUri": "string", "originalImageUri": "string",
        "domain": "uuid", "id": "uuid", "project": "uuid", "iteration": "uuid",
        "created": "date-time", "predictions": "[Prediction]",
    },
    "PredictionQueryResult": {"token": "PredictionQueryToken",
                              "results": "[StoredImagePrediction]"},
    "ImageIdCreateEntry": {"id": "uuid", "tagIds": "[uuid]", "regions": "[{string}]"},
    "ImageIdCreateBatch": {"images": "[ImageIdCreateEntry]", "tagIds": "[uuid]",
                           "metadata": "{string}"},
    "TagFilter": {"tagIds": "[uuid]", "threshold": "number"},
    "SuggestedTagAndRegionQueryToken": {
        "tagIds": "[uuid]", "threshold": "number", "session": "string",
        "continuation": "string", "maxCount": "integer",
        "sortBy": "UncertaintyAscending|UncertaintyDescending",
    },
    "StoredSuggestedTagAndRegion": {
        "width": "integer", "height": "integer", "resizedImageUri": "string",
        "thumbnailUri": "string", "originalImageUri": "string", "domain": "uuid", "id": "uuid",
        "project": "uuid", "iteration": "uuid", "created": "date-time",
        "predictions": "[Prediction]", "predictionUncertainty": "number",
    },
    "SuggestedTagAndRegionQuery": {"token": "SuggestedTagAndRegionQueryToken",
                                   "results": "[StoredSuggestedTagAndRegion]"},
}

# --- parameters used by several operations -------------------------------------------------

TAG_IDS = Param("tagIds", "[uuid]", "tag ids (comma-separated)")
ITERATION_ID = Param("iterationId", "uuid", "the iteration")
TAKE = Param("take", "integer", "page size (default 50, at most 256)")
SKIP = Param("skip", "integer", "items to skip")
ORDER_BY = Param("orderBy", "Newest|Oldest", "sort order")
APPLICATION = Param("application", "string", "application name stored with the prediction")
STORE = Param("store", "boolean", "keep the image and result for the Predictions view "
                                   "(default true)")

T = "training."  # endpoint prefix of the training API's views
P = "prediction."

SNAPSHOT = Param("iterationId", "uuid", "list the images and tags of this iteration's training "
                 "set as it was snapshotted (default: the workspace)")
FILTER = Param("$filter", "string", "image metadata filter, e.g. "
               "metadata=key1 eq 'value1' and key2 ne 'value2' (eq, ne, and, or, parentheses; "
               "keys may be written metadata/key)")

_LIST_IMAGES = (SNAPSHOT, TAG_IDS, ORDER_BY, TAKE, SKIP)

OPERATIONS: dict[str, dict[str, Op]] = {
    # --- service ---
    "health.healthz": {"GET": Op("Liveness (no backend is called)", response="{string}")},
    "metrics": {"GET": Op("Prometheus metrics", response="string", content_type="text/plain")},
    "openapi.document": {"GET": Op("This OpenAPI document", response="{string}")},
    "openapi.docs": {"GET": Op("A page that renders this document", response="string",
                               content_type="text/html")},
    "ui.index": {"GET": Op("The web UI", response="string", content_type="text/html")},
    # --- training: domains, projects, tags ---
    T + "domains.list_domains": {"GET": Op("List domains", response="[Domain]",
                                           sdk="get_domains")},
    T + "domains.get_domain": {"GET": Op("Get a domain", response="Domain", sdk="get_domain")},
    T + "projects.create_project": {"POST": Op(
        "Create a project", response="Project", sdk="create_project",
        query=(Param("name", required=True), Param("description"), Param("domainId", "uuid"),
               Param("classificationType", "Multiclass|Multilabel"),
               Param("targetExportPlatforms", "[string]")))},
    T + "projects.import_project": {"PUT": Op(
        "Loupe extension: create the project with this id (import from Custom Vision; "
        "idempotent: 201 created, 200 already the caller's, 409 Conflict when another account "
        "holds the id)", body="Project", response="Project", status=201,
        extra_statuses=(200,))},
    T + "projects.list_projects": {"GET": Op("List projects", response="[Project]",
                                             sdk="get_projects")},
    T + "projects.get_project": {"GET": Op("Get a project", response="Project",
                                           sdk="get_project")},
    T + "projects.update_project": {"PATCH": Op("Update a project", body="Project",
                                                response="Project", sdk="update_project")},
    T + "projects.delete_project": {"DELETE": Op(
        "Delete a project with its images, iterations and predictions", status=204,
        sdk="delete_project")},
    T + "projects.get_artifact": {"GET": Op(
        "Get a stored artifact of the project by its relative path (e.g. <iterationId>/head.npz)",
        query=(Param("path", required=True),), response="string",
        content_type="application/octet-stream", sdk="get_artifact")},
    T + "tags.list_tags": {"GET": Op("List tags", query=(ITERATION_ID,), response="[Tag]",
                                     sdk="get_tags")},
    T + "tags.create_tag": {"POST": Op(
        "Create a tag", response="Tag", sdk="create_tag",
        query=(Param("name", required=True), Param("description"),
               Param("type", "Regular|Negative")))},
    T + "tags.import_tag": {"PUT": Op(
        "Loupe extension: create the tag with this id (import from Custom Vision; idempotent: "
        "201 created, 200 already the project's, 409 Conflict when another project has the id)",
        body="Tag", response="Tag", status=201, extra_statuses=(200,))},
    T + "tags.get_tag": {"GET": Op("Get a tag", query=(ITERATION_ID,), response="Tag",
                                   sdk="get_tag")},
    T + "tags.update_tag": {"PATCH": Op("Update a tag", body="Tag", response="Tag",
                                        sdk="update_tag")},
    T + "tags.delete_tag": {"DELETE": Op("Delete a tag", status=204, sdk="delete_tag")},
    # --- training: images ---
    T + "images.create_images_from_data": {"POST": Op(
        "Upload images (multipart/form-data or application/octet-stream)", body="image",
        query=(TAG_IDS,), response="ImageCreateSummary", extra_statuses=(207,),
        sdk="create_images_from_data")},
    T + "images.create_images_from_files": {"POST": Op(
        "Upload images as JSON (base64 contents)", body="ImageFileCreateBatch",
        response="ImageCreateSummary", extra_statuses=(207,), sdk="create_images_from_files")},
    T + "image_urls.create_images_from_urls": {"POST": Op(
        "Add images from URLs the server fetches (public addresses only unless allow-listed; "
        "a refused or failed URL is reported per image as ErrorSource)",
        body="ImageUrlCreateBatch", response="ImageCreateSummary", extra_statuses=(207,),
        sdk="create_images_from_urls")},
    T + "images.get_images": {"GET": Op(
        "List images",
        query=(Param("taggingStatus", "All|Tagged|Untagged"), FILTER) + _LIST_IMAGES,
        response="[Image]", sdk="get_images")},
    T + "images.get_tagged_images": {"GET": Op("List tagged images", query=_LIST_IMAGES,
                                               response="[Image]", sdk="get_tagged_images")},
    T + "images.get_untagged_images": {"GET": Op("List untagged images", query=_LIST_IMAGES,
                                                 response="[Image]",
                                                 sdk="get_untagged_images")},
    T + "images.get_image_count": {"GET": Op(
        "Count images",
        query=(SNAPSHOT, Param("taggingStatus", "All|Tagged|Untagged"), FILTER, TAG_IDS),
        response="integer", sdk="get_image_count")},
    T + "images.get_tagged_image_count": {"GET": Op(
        "Count tagged images", query=(SNAPSHOT, TAG_IDS), response="integer",
        sdk="get_tagged_image_count")},
    T + "images.get_untagged_image_count": {"GET": Op(
        "Count untagged images", query=(SNAPSHOT,), response="integer",
        sdk="get_untagged_image_count")},
    T + "images.get_images_by_ids": {"GET": Op(
        "Get images by id", query=(Param("imageIds", "[uuid]"), SNAPSHOT), response="[Image]",
        sdk="get_images_by_ids")},
    T + "images.delete_images": {"DELETE": Op(
        "Delete images", query=(Param("imageIds", "[uuid]"), Param("allImages", "boolean")),
        status=204, sdk="delete_images")},
    T + "images.image_data": {"GET": Op(
        "The bytes of an image (original, resized or thumbnail); the Training-Key header or "
        "the signed query of an image URI", response="binary", content_type="image/*",
        query=(Param("a"), Param("exp", "integer"), Param("sig")))},
    # --- training: iterations ---
    T + "iterations.train_project": {"POST": Op(
        "Queue training. Regular: a linear head on frozen features, in seconds. Advanced: a "
        "hidden-layer head when every tag has at least 20 images (else the linear one), within "
        "reservedBudgetInHours", body="TrainingParameters", response="Iteration", sdk="train_project",
        query=(Param("trainingType", "Regular|Advanced"),
               Param("reservedBudgetInHours", "integer"), Param("forceTrain", "boolean"),
               Param("notificationEmailAddress")))},
    T + "iterations.get_iterations": {"GET": Op("List iterations", response="[Iteration]",
                                                sdk="get_iterations")},
    T + "iterations.get_iteration": {"GET": Op("Get an iteration", response="Iteration",
                                               sdk="get_iteration")},
    T + "iterations.update_iteration": {"PATCH": Op(
        "Rename an iteration", body="Iteration", response="Iteration", sdk="update_iteration")},
    T + "iterations.delete_iteration": {"DELETE": Op("Delete an iteration", status=204,
                                                     sdk="delete_iteration")},
    T + "iterations.get_iteration_performance": {"GET": Op(
        "Precision, recall and average precision, per tag and overall",
        query=(Param("threshold", "number"), Param("overlapThreshold", "number")),
        response="IterationPerformance", sdk="get_iteration_performance")},
    T + "iterations.publish_iteration": {"POST": Op(
        "Publish an iteration", response="boolean", sdk="publish_iteration",
        query=(Param("publishName", required=True), Param("predictionId", required=True),
               Param("overwrite", "boolean")))},
    T + "iterations.unpublish_iteration": {"DELETE": Op("Unpublish an iteration", status=204,
                                                        sdk="unpublish_iteration")},
    # --- training: exports ---
    T + "exports.export_iteration": {"POST": Op(
        "Export a trained compact-domain iteration (ONNX: model, labels, preprocessing; "
        "DockerFile, flavor Linux or ARM: a container answering Custom Vision's exported-container "
        "API; built synchronously, answers Done)", response="Export", sdk="export_iteration",
        query=(Param("platform", "CoreML|TensorFlow|DockerFile|ONNX|VAIDK|OpenVino",
                     required=True),
               Param("flavor", "Linux|Windows|ONNX10|ONNX12|ARM|TensorFlowNormal|"
                               "TensorFlowLite")))},
    T + "exports.get_exports": {"GET": Op("List an iteration's exports", response="[Export]",
                                          sdk="get_exports")},
    T + "exports.download_export": {"GET": Op(
        "The export's zip (the downloadUri of an Export)", response="binary",
        content_type="application/zip",
        query=(Param("a"), Param("exp", "integer"), Param("sig")))},
    T + "exports.export_project": {"GET": Op(
        "Export a project: a token to import it (tags, images, tagging) in the same account",
        response="ProjectExport", sdk="export_project")},
    T + "exports.import_project": {"POST": Op(
        "Import a project from an export token", response="Project", sdk="import_project",
        query=(Param("token", required=True), Param("name")))},
    # --- training: quick test ---
    T + "quicktest.quick_test_image": {"POST": Op(
        "Classify an image with a trained iteration (default: the latest) without publishing",
        body="image", query=(ITERATION_ID, STORE), response="ImagePrediction",
        sdk="quick_test_image")},
    T + "quicktest.quick_test_image_url": {"POST": Op(
        "Classify an image URL with a trained iteration (default: the latest) without "
        "publishing", body="ImageUrl", query=(ITERATION_ID, STORE), response="ImagePrediction",
        sdk="quick_test_image_url")},
    # --- training: tagging, metadata, per-image performance, predictions, Smart Labeler ---
    T + "image_tags.create_image_tags": {"POST": Op(
        "Tag images", body="ImageTagCreateBatch", response="ImageTagCreateSummary",
        sdk="create_image_tags")},
    T + "image_tags.delete_image_tags": {"DELETE": Op(
        "Untag images", query=(Param("imageIds", "[uuid]", required=True),
                               Param("tagIds", "[uuid]", required=True)),
        status=204, sdk="delete_image_tags")},
    T + "image_metadata.update_image_metadata": {"POST": Op(
        "Set image metadata (key/value)", query=(Param("imageIds", "[uuid]", required=True),),
        body="{string}", response="ImageMetadataUpdateSummary",
        sdk="update_image_metadata")},
    T + "performance.get_image_performances": {"GET": Op(
        "Per-image predictions of an iteration's evaluation", query=(TAG_IDS, ORDER_BY, TAKE,
                                                                     SKIP),
        response="[ImagePerformance]", sdk="get_image_performances")},
    T + "performance.get_image_performance_count": {"GET": Op(
        "Count the evaluated images", query=(TAG_IDS,), response="integer",
        sdk="get_image_performance_count")},
    T + "predictions.query_predictions": {"POST": Op(
        "Query stored predictions", body="PredictionQueryToken",
        response="PredictionQueryResult", sdk="query_predictions")},
    T + "predictions.delete_prediction": {"DELETE": Op(
        "Delete stored predictions", query=(Param("ids", "[uuid]", required=True),),
        status=204, sdk="delete_prediction")},
    T + "predictions.prediction_image": {"GET": Op(
        "The bytes of a stored prediction's image (the URIs in query results)",
        response="binary", content_type="image/*",
        query=(Param("a"), Param("exp", "integer"), Param("sig")))},
    T + "predictions.create_images_from_predictions": {"POST": Op(
        "Add stored predictions to the training images", body="ImageIdCreateBatch",
        response="ImageCreateSummary", extra_statuses=(207,),
        sdk="create_images_from_predictions")},
    T + "suggestions.suggest_tags_and_regions": {"POST": Op(
        "Suggested tags for images (Smart Labeler)",
        query=(Param("iterationId", "uuid", required=True),
               Param("imageIds", "[uuid]", required=True)),
        response="[StoredSuggestedTagAndRegion]", sdk="suggest_tags_and_regions")},
    T + "suggestions.query_suggested_images": {"POST": Op(
        "Untagged images with suggested tags", query=(Param("iterationId", "uuid",
                                                            required=True),),
        body="SuggestedTagAndRegionQueryToken", response="SuggestedTagAndRegionQuery",
        sdk="query_suggested_images")},
    T + "suggestions.query_suggested_image_count": {"POST": Op(
        "Count untagged images with suggested tags, per tag",
        query=(Param("iterationId", "uuid", required=True),), body="TagFilter",
        response="{integer}", sdk="query_suggested_image_count")},
    # --- prediction ---
    P + "classify_image": {"POST": Op(
        "Classify an image and store it", body="image", query=(APPLICATION,),
        response="ImagePrediction", sdk="classify_image")},
    P + "classify_image_with_no_store": {"POST": Op(
        "Classify an image without storing it", body="image", query=(APPLICATION,),
        response="ImagePrediction", sdk="classify_image_with_no_store")},
    P + "classify_image_url": {"POST": Op(
        "Classify an image URL (fetched by the server) and store it", body="ImageUrl",
        query=(APPLICATION,), response="ImagePrediction", sdk="classify_image_url")},
    P + "classify_image_url_with_no_store": {"POST": Op(
        "Classify an image URL (fetched by the server) without storing it", body="ImageUrl",
        query=(APPLICATION,), response="ImagePrediction",
        sdk="classify_image_url_with_no_store")},
}
