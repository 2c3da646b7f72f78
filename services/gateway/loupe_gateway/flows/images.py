"""Deleting training images: their rows, then the bytes no row references any more.

Bytes are shared by content (uploads.py), so an upload of the same bytes can rewrite them
between the rows' deletion and the removal of the bytes, and add its row right after: the
removal keeps bytes written in the last `storage_keys.RECENT_WRITE_S` seconds. The orphan sweep
removes what that leaves once no row came.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from loupe_common import storage_keys
from loupe_common.errors import LoupeError
from loupe_gateway.clients import Backends

log = logging.getLogger(__name__)


def delete(backends: Backends, account_id: str, project_id: str, image_ids: Sequence[str],
           all_images: bool) -> None:
    """Deletes images (every image of the project with `all_images`), then their unshared
    bytes. A failure to remove the bytes is logged: the images are gone either way."""
    orphaned = backends.delete_images(account_id, project_id, image_ids, all_images)
    if orphaned:
        try:
            backends.delete_image_data(project_id, orphaned,
                                       older_than_seconds=storage_keys.RECENT_WRITE_S)
        except LoupeError as err:
            log.warning("images of %s deleted, but not their bytes: %r", project_id, err)
