"""Pure rules of the metadata domain: validation, key hashing, change detection. No I/O.

Every error carries the Custom Vision error code the official SDK enumerates
(`CustomVisionErrorCodes` in azure-cognitiveservices-vision-customvision).
"""
from __future__ import annotations

import hashlib
import math
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from loupe_common.errors import BadRequest, Conflict

MULTICLASS, MULTILABEL = "Multiclass", "Multilabel"
CLASSIFICATION_TYPES = (MULTICLASS, MULTILABEL)
REGULAR, NEGATIVE = "Regular", "Negative"
TAG_TYPES = (REGULAR, NEGATIVE)
TRAINING_TYPES = ("Regular", "Advanced")
TRAINING, COMPLETED, FAILED = "Training", "Completed", "Failed"
KEY_TRAINING, KEY_PREDICTION = "training", "prediction"

#: Longest project / tag / publish name accepted.
MAX_NAME_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 4096
#: Custom Vision needs at least 5 images per tag to train.
DEFAULT_MIN_IMAGES_PER_TAG = 5
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PUBLISH_NAME = re.compile(r"^[\w.-]+$")


def new_key() -> str:
    """A fresh API key: 32 lowercase hex characters, the shape of a Custom Vision key."""
    return secrets.token_hex(16)


def hash_key(key: str) -> str:
    """The SHA-256 (hex) under which a key is stored; plain keys are never stored."""
    return hashlib.sha256(key.strip().encode("utf-8")).hexdigest()


def prediction_resource_id(account_id: str) -> str:
    """An Azure-shaped resource id for the account's prediction resource (publish target)."""
    return (
        f"/subscriptions/{account_id}/resourceGroups/loupe/providers/"
        "Microsoft.CognitiveServices/accounts/loupe-prediction"
    )


def parse_uuid(value: str) -> uuid.UUID | None:
    """The UUID in `value`, or None when it is not one (treated as an id that matches nothing)."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


def parse_uuids(values: Iterable[str], code: str = "BadRequestInvalidIds") -> list[uuid.UUID]:
    """Parses a list of ids, refusing malformed ones with `code`; keeps order, drops repeats."""
    out: dict[uuid.UUID, None] = {}
    for value in values:
        parsed = parse_uuid(value)
        if parsed is None:
            raise BadRequest(f"invalid id {value!r}", code)
        out[parsed] = None
    return list(out)


def masked_changes(
    update_mask: Iterable[str], fields: Mapping[str, Callable[[], object]]
) -> dict[str, object]:
    """The column values an update names in its mask.

    Args:
        update_mask: the fields to change, in request order.
        fields: per updatable field, a function giving its checked new value (called only for
            the fields the mask names, so an unnamed field's value is never validated).
    Returns:
        {field: new value}, in mask order.
    Raises:
        BadRequest: a field that cannot be updated, or whatever a field's check raises.
    """
    changes: dict[str, object] = {}
    for field in update_mask:
        if field not in fields:
            raise BadRequest(f"field {field!r} cannot be updated", "BadRequest")
        changes[field] = fields[field]()
    return changes


def account_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise BadRequest("account name must be 1 to 255 characters", "BadRequest")
    return name


def project_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise BadRequest(
            f"project name must be 1 to {MAX_NAME_LENGTH} characters", "BadRequestProjectName"
        )
    return name


def project_description(description: str) -> str:
    if len(description or "") > MAX_DESCRIPTION_LENGTH:
        raise BadRequest(
            f"project description is longer than {MAX_DESCRIPTION_LENGTH} characters",
            "BadRequestProjectDescription",
        )
    return description or ""


def classification_type(value: str) -> str:
    """Multiclass (the default when empty) or Multilabel."""
    if not value:
        return MULTICLASS
    for known in CLASSIFICATION_TYPES:
        if value.lower() == known.lower():
            return known
    raise BadRequest(
        f"unknown classification type {value!r}", "BadRequestProjectUnknownClassification"
    )


def tag_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"tag name must be 1 to {MAX_NAME_LENGTH} characters", "BadRequestTagName")
    return name


def tag_description(description: str) -> str:
    if len(description or "") > MAX_DESCRIPTION_LENGTH:
        raise BadRequest(
            f"tag description is longer than {MAX_DESCRIPTION_LENGTH} characters",
            "BadRequestTagDescription",
        )
    return description or ""


def tag_type(value: str) -> str:
    """Regular (the default when empty) or Negative."""
    if not value:
        return REGULAR
    for known in TAG_TYPES:
        if value.lower() == known.lower():
            return known
    raise BadRequest(f"unknown tag type {value!r}", "BadRequestTagType")


def training_type(value: str) -> str:
    if not value:
        return "Regular"
    for known in TRAINING_TYPES:
        if value.lower() == known.lower():
            return known
    raise BadRequest(f"unknown training type {value!r}", "BadRequest")


def publish_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH or not _PUBLISH_NAME.match(name):
        raise BadRequest(
            "publish name must be 1 to 255 letters, digits, '.', '_' or '-'",
            "BadRequestInvalidPublishName",
        )
    return name


def sha256_hex(value: str) -> str:
    value = (value or "").lower()
    if not _SHA256.match(value):
        raise BadRequest(f"invalid image hash {value!r}", "BadRequestImageBatch")
    return value


def minutes(seconds: float) -> int:
    """Training time as Custom Vision reports it: whole minutes, rounded up."""
    return max(0, math.ceil(seconds / 60.0)) if seconds > 0 else 0


def check_image_tag_types(tag_ids: Iterable[uuid.UUID], types: Mapping[uuid.UUID, str]) -> None:
    """An image cannot carry the Negative tag together with a regular tag."""
    kinds = {types[t] for t in tag_ids}
    if NEGATIVE in kinds and REGULAR in kinds:
        raise BadRequest(
            "an image cannot have the Negative tag and a regular tag",
            "BadRequestNegativeAndRegularTagOnSameImage",
        )


@dataclass(frozen=True)
class TagCount:
    """A tag considered for training with the number of images it has in the training set."""

    id: str
    name: str
    type: str
    image_count: int


def check_training_set(
    tags: Sequence[TagCount], classification: str, min_images_per_tag: int
) -> None:
    """Refuses a training Custom Vision would refuse (BadRequestTrainingValidationFailed).

    A multiclass project needs 2 regular tags (the Negative tag does not count), a multilabel
    one needs 1; every regular tag, and the Negative tag when it is used at all, needs
    `min_images_per_tag` images.
    """
    minimum = min_images_per_tag if min_images_per_tag > 0 else DEFAULT_MIN_IMAGES_PER_TAG
    regular = [t for t in tags if t.type == REGULAR]
    needed = 2 if classification == MULTICLASS else 1
    if len(regular) < needed:
        raise Conflict(
            f"Not enough tags for training: a {classification.lower()} project needs at least "
            f"{needed} tag{'s' if needed > 1 else ''} besides the Negative tag",
            "BadRequestTrainingValidationFailed",
        )
    for tag in tags:
        if tag.type == NEGATIVE and tag.image_count == 0:
            continue
        if tag.image_count < minimum:
            raise Conflict(
                f"Not enough images for tag {tag.name!r}: it has {tag.image_count}, "
                f"training needs at least {minimum} per tag",
                "BadRequestTrainingValidationFailed",
            )


def training_fingerprint(
    links: Iterable[tuple[str, Iterable[str]]],
    training: str,
    classification: str,
    domain_id: str,
) -> str:
    """A digest of everything a training depends on.

    Two trainings with equal fingerprints would learn from the same images, tags and settings,
    so the second is not needed (BadRequestTrainingNotNeeded). Order does not matter.

    Args:
        links: (image id, tag ids of that image in the training set) pairs.
        training: Regular or Advanced.
        classification: Multiclass or Multilabel.
        domain_id: the project's domain.
    Returns:
        A hex SHA-256.
    """
    digest = hashlib.sha256()
    digest.update(f"{training}\n{classification}\n{domain_id}\n".encode())
    rows = sorted(
        f"{image_id}:{','.join(sorted(str(t) for t in tag_ids))}"
        for image_id, tag_ids in links
        if tag_ids
    )
    for row in rows:
        digest.update(row.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def duration_text(seconds: float) -> str:
    """A duration as a person reads it: "45 s", "5 min", "2.5 h", "3 days"."""
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


def untouched_message(untouched_seconds: float) -> str:
    """The error recorded on an iteration that waited `untouched_seconds` in Training without
    any trainer starting its job."""
    return (f"no trainer started this training within {duration_text(untouched_seconds)} (its"
            " job was lost or no trainer is running); the iteration is failed so that the project"
            " can be trained again")
