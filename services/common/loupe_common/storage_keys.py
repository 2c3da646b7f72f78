"""Every object-store key Loupe writes, built in one place.

Layout of the bucket:
  images/{project}/{sha256}                   original image bytes, content-addressed (storage)
  images/{project}/{sha256}.{variant}         derived JPEG variants, made on first request (storage)
  artifacts/{project}/{iteration}/head.npz    the trained head of an iteration (trainer)
  features/{feature_id}/{project}/{sha256}    cached backbone features of an image (trainer)
  exports/{project}/{iteration}/{platform}.zip  an iteration's export (trainer) ...
  exports/{project}/{iteration}/{platform}.json ... and its status record (loupe_common.exports)
  exports/{project}/project-{id}.json         a project export's manifest (gateway)

A project's keys all sit below `{root}{project}/` (features below `features/{feature_id}/
{project}/`), so deleting a project or an iteration is deleting prefixes.

Export keys check their ids, since the gateway builds them from URL path segments and they name
prefixes that get deleted; the other builders take ids a service has already checked.
"""
from __future__ import annotations

import re

from loupe_common.errors import BadRequest

#: The top-level roots, each with its trailing slash.
IMAGES = "images/"
ARTIFACTS = "artifacts/"
FEATURES = "features/"
EXPORTS = "exports/"

#: Seconds during which image bytes just written are kept by a removal that follows the
#: deletion of their last row (images, stored predictions, retention): an upload of the same
#: bytes rewrote them meanwhile and is about to add its row. What such a removal leaves, the
#: orphan sweep removes later.
RECENT_WRITE_S = 60.0

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _check(*ids: str) -> None:
    for value in ids:
        if not _UUID.match(value or ""):
            raise BadRequest(f"invalid id {value!r}", "BadRequestInvalidIds")


# --- images ---------------------------------------------------------------------------------


def images_prefix(project_id: str) -> str:
    """`images/{project}/`: every image of a project, originals and variants."""
    return f"{IMAGES}{project_id}/"


def image_key(project_id: str, sha256: str) -> str:
    """`images/{project}/{sha256}`: an image's original bytes."""
    return f"{images_prefix(project_id)}{sha256}"


def image_variant_key(project_id: str, sha256: str, variant: str) -> str:
    """`images/{project}/{sha256}.{variant}`: a derived variant ("resized", "thumbnail")."""
    return f"{image_key(project_id, sha256)}.{variant}"


# --- artifacts and features -----------------------------------------------------------------


def artifact_key(project_id: str, path: str) -> str:
    """`artifacts/{project}/{path}`: a project's artifact by its path relative to the project."""
    return f"{ARTIFACTS}{project_id}/{path}"


def iteration_artifacts_prefix(project_id: str, iteration_id: str) -> str:
    """`artifacts/{project}/{iteration}/`: every artifact of an iteration.

    Raises:
        BadRequest: BadRequestInvalidIds when an id is not a lowercase UUID.
    """
    _check(project_id, iteration_id)
    return artifact_key(project_id, f"{iteration_id}/")


def head_key(project_id: str, iteration_id: str) -> str:
    """`artifacts/{project}/{iteration}/head.npz`: an iteration's trained head."""
    return artifact_key(project_id, f"{iteration_id}/head.npz")


def feature_key(feature_id: str, project_id: str, sha256: str) -> str:
    """`features/{feature_id}/{project}/{sha256}`: an image's cached features.

    Keyed by the feature definition (`feature_id`) too, so changing it never reuses stale vectors.
    """
    return f"{FEATURES}{feature_id}/{project_id}/{sha256}"


# --- exports --------------------------------------------------------------------------------


def export_prefix(project_id: str, iteration_id: str = "") -> str:
    """`exports/{project}/` or `exports/{project}/{iteration}/`.

    Raises:
        BadRequest: BadRequestInvalidIds when an id is not a lowercase UUID.
    """
    _check(project_id, *([iteration_id] if iteration_id else []))
    return f"{EXPORTS}{project_id}/" + (f"{iteration_id}/" if iteration_id else "")


def export_zip_key(project_id: str, iteration_id: str, platform: str) -> str:
    """`exports/{project}/{iteration}/{platform}.zip`: an iteration's export."""
    return f"{export_prefix(project_id, iteration_id)}{platform}.zip"


def export_record_key(project_id: str, iteration_id: str, platform: str) -> str:
    """`exports/{project}/{iteration}/{platform}.json`: the status record of that export."""
    return f"{export_prefix(project_id, iteration_id)}{platform}.json"


def project_manifest_key(project_id: str, manifest_id: str) -> str:
    """`exports/{project}/project-{manifest_id}.json`: one project export's manifest."""
    return f"{export_prefix(project_id)}project-{manifest_id}.json"
