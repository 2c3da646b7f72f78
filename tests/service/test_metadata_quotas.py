"""Per-account quotas, enforced by the metadata service in the transaction that adds the rows:
Custom Vision's error codes, nothing stored past the quota, and concurrent requests cannot
overshoot it together. Small quotas are set here to test the setting; the defaults are
Custom Vision's S0 limits (tests/unit/test_quota_rules.py)."""
from __future__ import annotations

import threading

import pytest

from loupe.v1 import metadata_pb2 as pb
from loupe.v1.metadata_pb2_grpc import MetadataServiceStub
from loupe_common import internal_auth
from loupe_common.clients import ServiceClient
from loupe_common.config import load
from loupe_common.errors import BadRequest
from loupe_metadata.config import MetadataConfig
from loupe_metadata.migrate import migrate
from loupe_metadata.server import build_server
from test_metadata_service import Project, expect, sha

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def md(postgres_dsn, internal_secret, credentials):
    migrate(postgres_dsn)
    built = build_server(load(MetadataConfig, {
        "LOUPE_POSTGRES_DSN": postgres_dsn, "LOUPE_METADATA_ADDR": "127.0.0.1:0",
        "LOUPE_INTERNAL_SECRET": internal_secret,
        "LOUPE_QUOTA_PROJECTS_PER_ACCOUNT": "3", "LOUPE_QUOTA_TAGS_PER_PROJECT": "2",
        "LOUPE_QUOTA_IMAGES_PER_PROJECT": "5", "LOUPE_QUOTA_STORED_PREDICTIONS_PER_ACCOUNT": "4"}))
    built.start()
    client = ServiceClient(f"127.0.0.1:{built.port}", MetadataServiceStub, timeout=10,
                           credential=credentials[internal_auth.GATEWAY])
    client.recorder = ServiceClient(f"127.0.0.1:{built.port}", MetadataServiceStub, timeout=10,
                                    credential=credentials[internal_auth.PREDICTION])
    yield client
    client.recorder.close()
    client.close()
    built.stop(None)


@pytest.fixture
def account(md) -> pb.Account:
    return md.CreateAccount(pb.CreateAccountRequest(name="quota")).account


def test_projects_per_account(md, account):
    for _ in range(3):
        Project(md, account)
    expect("BadRequestExceedProjectLimit", BadRequest, Project, md, account)
    assert len(md.ListProjects(pb.ListProjectsRequest(account_id=account.id)).projects) == 3
    # Another account has a quota of its own.
    other = md.CreateAccount(pb.CreateAccountRequest(name="other")).account
    Project(md, other)


def test_tags_per_project(md, account):
    project = Project(md, account)
    project.tag("a")
    project.tag("b")
    expect("BadRequestExceedTagPerProjectLimit", BadRequest, project.tag, "c")
    assert len(md.ListTags(pb.ListTagsRequest(**project.ids())).tags) == 2


def test_images_per_project_refuses_the_whole_batch_over_it(md, account):
    project = Project(md, account)
    tag = project.tag("a")
    assert len(project.add_tagged(tag, 4)) == 4
    # 2 more would make 6 > 5: the batch stores nothing.
    expect("BadRequestImageExceededCount", BadRequest, project.add_tagged, tag, 2)
    listed = md.ListImages(pb.ListImagesRequest(**project.ids(), take=100)).images
    assert len(listed) == 4
    # A duplicate adds no row, so it passes at the quota.
    existing = listed[0].sha256
    assert len(project.add_tagged(tag, 1)) == 1
    results = project.add(pb.NewImage(sha256=existing, width=8, height=8, tag_ids=[tag]))
    assert results[0].status == "OKDuplicate"
    expect("BadRequestImageExceededCount", BadRequest, project.add_tagged, tag, 1)


def test_concurrent_batches_cannot_overshoot_the_image_quota(md, account):
    project = Project(md, account)
    tag = project.tag("a")
    outcomes: list[str] = []

    def add():
        try:
            project.add(pb.NewImage(sha256=sha(), width=8, height=8, tag_ids=[tag]),
                        pb.NewImage(sha256=sha(), width=8, height=8, tag_ids=[tag]))
            outcomes.append("ok")
        except BadRequest as err:
            outcomes.append(err.code)

    threads = [threading.Thread(target=add) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["BadRequestImageExceededCount"] * 4 + ["ok"] * 2
    assert len(md.ListImages(pb.ListImagesRequest(**project.ids(), take=100)).images) == 4


def test_stored_predictions_per_account_are_counted_up_to_the_quota(md, account):
    """StoredPredictionQuota: the quota and the account's stored predictions over all its
    projects, counted up to the quota (the gateway refuses a storing classification at it)."""
    def quota(acc=account):
        r = md.StoredPredictionQuota(pb.StoredPredictionQuotaRequest(account_id=acc.id))
        return r.limit, r.stored

    assert quota() == (4, 0)
    projects = [Project(md, account), Project(md, account)]
    for i in range(3):
        md.recorder.RecordPrediction(pb.RecordPredictionRequest(prediction=pb.StoredPrediction(
            project_id=projects[i % 2].id, image_sha256=sha())))
    assert quota() == (4, 3)
    for _ in range(3):  # past the quota (recorded after answers the gateway let through)
        md.recorder.RecordPrediction(pb.RecordPredictionRequest(prediction=pb.StoredPrediction(
            project_id=projects[0].id, image_sha256=sha())))
    assert quota() == (4, 4)  # counted up to the quota only
    other = md.CreateAccount(pb.CreateAccountRequest(name="other-predictions")).account
    assert quota(other) == (4, 0)
    md.DeleteProject(pb.DeleteProjectRequest(account_id=account.id, project_id=projects[0].id))
    assert quota() == (4, 1)
