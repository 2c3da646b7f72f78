"""Projects without Flask: deleting one with its stored bytes (REST `api/projects.py` and the
public gRPC API call it)."""
from __future__ import annotations

import logging

from loupe_common.errors import LoupeError
from loupe_gateway.clients import Backends

log = logging.getLogger(__name__)


def delete(backends: Backends, account_id: str, project_id: str) -> None:
    """Deletes a project's rows, then everything stored for it, by prefix (image bytes and
    variants, stored predictions' images, artifacts, cached features, exports)."""
    backends.delete_project(account_id, project_id)
    backends.stored_quota.forget(account_id)  # its stored predictions went with it
    # The rows are gone, so the bytes are unreachable through the API: removing them is
    # clean-up, and a storage hiccup must not turn a completed delete into an error.
    try:
        backends.delete_project_data(project_id)
    except LoupeError as err:
        log.warning("project %s deleted, but its stored bytes were not: %r", project_id, err)
