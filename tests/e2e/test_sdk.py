"""The official Custom Vision SDK (3.1.1), unmodified, against Loupe."""
from __future__ import annotations

import uuid

import pytest
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException

from flows import sdk_quickstart

pytestmark = pytest.mark.e2e


def test_quickstart_flow_with_the_sdk(clients):
    """The Custom Vision Python quickstart, step by step."""
    sdk_quickstart(*clients)


def test_sdk_errors_carry_custom_vision_codes(clients):
    trainer, _, _ = clients
    project = trainer.create_project(f"sdk-err-{uuid.uuid4().hex[:6]}")
    trainer.create_tag(project.id, "dup")
    with pytest.raises(CustomVisionErrorException) as info:
        trainer.create_tag(project.id, "dup")
    assert info.value.error.code == "BadRequestTagNameNotUnique"
    with pytest.raises(CustomVisionErrorException) as info:
        trainer.train_project(project.id)
    assert info.value.error.code == "BadRequestTrainingValidationFailed"
    trainer.delete_project(project.id)
