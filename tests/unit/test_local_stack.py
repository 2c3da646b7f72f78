"""Pure parts of the local stack (deploy/local/loupe_stack)."""
from __future__ import annotations

import pytest

from loupe_stack.layout import PORT_OFFSETS
from loupe_stack.stack import _kafka_cluster_id

pytestmark = pytest.mark.unit


def test_kafka_cluster_ids_never_look_like_an_option():
    # A generated id starting with "-" once made the storage tool's argument parser fail.
    ids = {_kafka_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_every_process_has_its_own_port():
    assert len(set(PORT_OFFSETS.values())) == len(PORT_OFFSETS)
