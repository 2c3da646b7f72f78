"""Custom Vision's classification domains that Loupe serves, with Custom Vision's own ids.

Both are backed by EfficientNet-Lite0 for now (docs/design-notes.md, Quick training); only the
compact domain is exportable, as in Custom Vision.
"""
from __future__ import annotations

from loupe_common import exports
from loupe_common.errors import BadRequest, NotFound

GENERAL = "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31"
GENERAL_COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"
DEFAULT_DOMAIN = GENERAL

EXPORT_PLATFORMS = list(exports.PLATFORMS)

DOMAINS = {
    GENERAL: {
        "id": GENERAL,
        "name": "General",
        "type": "Classification",
        "exportable": False,
        "enabled": True,
        "exportablePlatforms": [],
        "modelInformation": {
            "estimatedModelSizeInMegabytes": 14,
            "description": "Optimized for a broad range of image classification tasks "
            "(EfficientNet-Lite0 backbone, ImageNet-pretrained).",
        },
    },
    GENERAL_COMPACT: {
        "id": GENERAL_COMPACT,
        "name": "General (compact)",
        "type": "Classification",
        "exportable": True,
        "enabled": True,
        "exportablePlatforms": EXPORT_PLATFORMS,
        "modelInformation": {
            "estimatedModelSizeInMegabytes": 14,
            "description": "Optimized for the constraints of real-time classification on edge "
            "devices (EfficientNet-Lite0 backbone, exportable to ONNX).",
        },
    },
}


def get(domain_id: str) -> dict:
    domain = DOMAINS.get((domain_id or "").lower())
    if domain is None:
        raise NotFound(f"domain {domain_id!r} not found", "NotFoundDomain")
    return domain


def resolve(domain_id: str | None) -> str:
    """The domain a project is created or updated with; unknown ids are refused."""
    if not domain_id:
        return DEFAULT_DOMAIN
    if domain_id.lower() not in DOMAINS:
        raise BadRequest(f"unknown domain {domain_id!r}", "BadRequestProjectUnknownDomain")
    return domain_id.lower()


def exportable(domain_id: str) -> bool:
    return bool(DOMAINS.get(domain_id, {}).get("exportable"))
