"""The metadata service in-process on port 0, over gRPC, against a real PostgreSQL.

Every test creates its own account, so tests share the database without seeing each other.
"""
from __future__ import annotations

import hashlib
import os
import threading
import uuid

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loupe.v1 import metadata_pb2 as pb
from loupe.v1.metadata_pb2_grpc import MetadataServiceStub
from internal_clients import ByRole
from loupe_common.config import load
from loupe_common.errors import AlreadyExists, BadRequest, Conflict, LoupeError, NotFound
from loupe_metadata import access
from loupe_metadata.config import MetadataConfig
from loupe_metadata.migrate import discover, migrate
from loupe_metadata.server import SERVICE_NAME, build_server

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def server(postgres_dsn, internal_secret):
    migrate(postgres_dsn)
    config = load(
        MetadataConfig,
        {"LOUPE_POSTGRES_DSN": postgres_dsn, "LOUPE_METADATA_ADDR": "127.0.0.1:0",
         "LOUPE_INTERNAL_SECRET": internal_secret},
    )
    built = build_server(config)
    built.start()
    yield f"127.0.0.1:{built.port}"
    built.stop(None)


@pytest.fixture(scope="module")
def md(server, credentials):
    """Each RPC called as a role allowed to (the gateway's, a trainer's, the recorder's)."""
    client = ByRole(server, MetadataServiceStub, credentials, access.ALLOW, timeout=10)
    yield client
    client.close()


@pytest.fixture(scope="module")
def db(postgres_dsn):
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def account(md) -> pb.Account:
    return md.CreateAccount(pb.CreateAccountRequest(name="test")).account


def expect(code: str, cls: type[LoupeError], call, *args, **kwargs):
    """Calls `call(*args, **kwargs)` and checks it fails with domain error `cls` and `code`."""
    with pytest.raises(cls) as err:
        call(*args, **kwargs)
    assert err.value.code == code, err.value
    return err.value


def sha() -> str:
    return hashlib.sha256(os.urandom(16)).hexdigest()


class Project:
    """A project of `account` with helpers for tags, images and iterations."""

    def __init__(self, md, account: pb.Account, classification: str = "Multiclass"):
        self.md, self.account = md, account
        self.id = md.CreateProject(
            pb.CreateProjectRequest(
                account_id=account.id, name="p", classification_type=classification
            )
        ).project.id

    def ids(self) -> dict[str, str]:
        return {"account_id": self.account.id, "project_id": self.id}

    def tag(self, name: str, type: str = "") -> str:
        return self.md.CreateTag(pb.CreateTagRequest(**self.ids(), name=name, type=type)).tag.id

    def add(self, *images: pb.NewImage) -> list[pb.AddedImage]:
        return list(self.md.AddImages(pb.AddImagesRequest(**self.ids(), images=images)).results)

    def add_tagged(self, tag_id: str, n: int) -> list[pb.AddedImage]:
        return self.add(
            *(pb.NewImage(sha256=sha(), width=8, height=8, tag_ids=[tag_id]) for _ in range(n))
        )

    def train(self, **kw) -> pb.Iteration:
        return self.md.CreateIteration(pb.CreateIterationRequest(**self.ids(), **kw)).iteration

    def finish(self, iteration_id: str, status: str = "Completed", **kw) -> pb.FinishIterationResponse:
        if status == "Completed":
            kw.setdefault("artifact_key", f"artifacts/{iteration_id}")
        return self.md.FinishIteration(
            pb.FinishIterationRequest(iteration_id=iteration_id, status=status, **kw)
        )

    def images(self, **kw) -> pb.ListImagesResponse:
        return self.md.ListImages(pb.ListImagesRequest(**self.ids(), **kw))


def trainable(md, account) -> tuple[Project, str, str]:
    project = Project(md, account)
    cat, dog = project.tag("cat"), project.tag("dog")
    project.add_tagged(cat, 5)
    project.add_tagged(dog, 5)
    return project, cat, dog


# --- server and accounts ----------------------------------------------------------------------


def test_health_serves(server):
    with grpc.insecure_channel(server) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_keys_resolve_to_their_account_and_kind(md, account, db):
    training = md.ResolveKey(pb.ResolveKeyRequest(key=account.training_key))
    prediction = md.ResolveKey(pb.ResolveKeyRequest(key=account.prediction_key))
    assert training.account_id == prediction.account_id == account.id
    assert (training.kind, prediction.kind) == (pb.KEY_KIND_TRAINING, pb.KEY_KIND_PREDICTION)
    assert prediction.prediction_resource_id == account.prediction_resource_id
    expect("NotFound", NotFound, md.ResolveKey, pb.ResolveKeyRequest(key="0" * 32))
    stored = db.execute(
        "SELECT key_sha256 FROM api_keys WHERE account_id = %s", (account.id,)
    ).fetchall()
    assert len(stored) == 2
    assert account.training_key not in {row[0] for row in stored}


def test_migrations_are_safe_to_run_concurrently(postgres_dsn, db):
    name = f"loupe_migrate_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE DATABASE {name}")
    try:
        dsn = psycopg.conninfo.make_conninfo(postgres_dsn, dbname=name)
        results, errors = [], []

        def run():
            try:
                results.append(migrate(dsn))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        # Every migration is applied exactly once, by whichever runner takes its lock first
        # (each migration is its own transaction, so runners may share the work), in order.
        applied = [v for r in results for v in r]
        assert sorted(applied) == [v for v, _ in discover()]
        assert all(r == sorted(r) for r in results)
        assert migrate(dsn) == []
    finally:
        db.execute(f"DROP DATABASE {name} WITH (FORCE)")


# --- projects and isolation -------------------------------------------------------------------


def test_another_accounts_project_does_not_exist(md, account):
    other = md.CreateAccount(pb.CreateAccountRequest(name="other")).account
    project, cat, _ = trainable(md, account)
    theirs = {"account_id": other.id, "project_id": project.id}
    for call, request in [
        (md.GetProject, pb.GetProjectRequest(**theirs)),
        (md.DeleteProject, pb.DeleteProjectRequest(**theirs)),
        (md.ListTags, pb.ListTagsRequest(**theirs)),
        (md.GetTag, pb.GetTagRequest(**theirs, tag_id=cat)),
        (md.CreateTag, pb.CreateTagRequest(**theirs, name="x")),
        (md.AddImages, pb.AddImagesRequest(**theirs, images=[pb.NewImage(sha256=sha())])),
        (md.ListImages, pb.ListImagesRequest(**theirs)),
        (md.DeleteImages, pb.DeleteImagesRequest(**theirs, all=True)),
        (md.CreateIteration, pb.CreateIterationRequest(**theirs)),
        (md.ListIterations, pb.ListIterationsRequest(**theirs)),
        (md.GetPublishedIteration, pb.GetPublishedIterationRequest(**theirs, publish_name="x")),
        (md.ListPredictions, pb.ListPredictionsRequest(**theirs)),
        (md.UpdateProject, pb.UpdateProjectRequest(**theirs, update_mask=["name"], name="x")),
    ]:
        err = expect("NotFoundProject", NotFound, call, request)
        assert "other" not in err.message
    assert md.ListProjects(pb.ListProjectsRequest(account_id=other.id)).projects == []
    mine = md.ListProjects(pb.ListProjectsRequest(account_id=account.id)).projects
    assert [p.id for p in mine] == [project.id]
    # A malformed id is simply not found.
    expect("NotFoundProject", NotFound, md.GetProject,
           pb.GetProjectRequest(account_id=account.id, project_id="not-a-uuid"))
    # The owner still has everything.
    assert md.GetProject(pb.GetProjectRequest(**project.ids())).project.id == project.id
    assert project.images().total == 10


def test_projects_and_tags_imported_with_their_ids_idempotently(md, account):
    pid, tid = str(uuid.uuid4()), str(uuid.uuid4())
    request = pb.CreateProjectRequest(account_id=account.id, id=pid, name="imported",
                                      description="d", classification_type="Multilabel")
    first = md.CreateProject(request)
    assert (first.project.id, first.existed) == (pid, False)
    assert first.project.classification_type == "Multilabel" and first.project.description == "d"
    again = md.CreateProject(pb.CreateProjectRequest(account_id=account.id, id=pid, name="other"))
    assert again.existed and again.project.name == "imported"  # returned unchanged
    assert [p.id for p in md.ListProjects(pb.ListProjectsRequest(account_id=account.id)).projects] == [pid]
    tag = pb.CreateTagRequest(account_id=account.id, project_id=pid, id=tid, name="neg", type="Negative")
    made = md.CreateTag(tag)
    assert (made.tag.id, made.tag.type, made.existed) == (tid, "Negative", False)
    assert md.CreateTag(tag).existed
    # Ids another account or project holds: ALREADY_EXISTS, Custom Vision's Conflict.
    other = md.CreateAccount(pb.CreateAccountRequest(name="other")).account
    expect("Conflict", AlreadyExists, md.CreateProject,
           pb.CreateProjectRequest(account_id=other.id, id=pid, name="stolen"))
    second = md.CreateProject(pb.CreateProjectRequest(account_id=account.id, name="second")).project
    expect("Conflict", AlreadyExists, md.CreateTag,
           pb.CreateTagRequest(account_id=account.id, project_id=second.id, id=tid, name="neg"))
    expect("BadRequestInvalidIds", BadRequest, md.CreateProject,
           pb.CreateProjectRequest(account_id=account.id, id="not-a-uuid", name="x"))
    # Without an id, creation draws a new one as before.
    assert second.id not in (pid, tid) and uuid.UUID(second.id)


def test_project_validation_listing_and_update(md, account):
    create = md.CreateProject
    for bad in (" ", "n" * 256):
        expect("BadRequestProjectName", BadRequest, create,
               pb.CreateProjectRequest(account_id=account.id, name=bad))
    expect("BadRequestProjectUnknownClassification", BadRequest, create,
           pb.CreateProjectRequest(account_id=account.id, name="p", classification_type="Detection"))
    first = create(pb.CreateProjectRequest(account_id=account.id, name="first", domain_id="d1")).project
    second = create(pb.CreateProjectRequest(
        account_id=account.id, name="second", classification_type="Multilabel",
        target_export_platforms=["ONNX"])).project
    assert first.classification_type == "Multiclass" and first.domain_id == "d1"
    assert list(second.target_export_platforms) == ["ONNX"]
    listed = md.ListProjects(pb.ListProjectsRequest(account_id=account.id)).projects
    assert [p.id for p in listed] == [second.id, first.id]

    ids = {"account_id": account.id, "project_id": first.id}
    updated = md.UpdateProject(pb.UpdateProjectRequest(
        **ids, update_mask=["name", "classification_type"], name="renamed",
        classification_type="Multilabel", description="ignored")).project
    assert (updated.name, updated.classification_type) == ("renamed", "Multilabel")
    assert updated.description == ""  # not in the mask
    assert updated.last_modified.ToDatetime() >= first.last_modified.ToDatetime()
    expect("BadRequestProjectName", BadRequest, md.UpdateProject,
           pb.UpdateProjectRequest(**ids, update_mask=["name"], name=""))
    expect("BadRequest", BadRequest, md.UpdateProject,
           pb.UpdateProjectRequest(**ids, update_mask=["account_id"]))


# --- tags -------------------------------------------------------------------------------------


def test_tags_unique_names_one_negative_and_counts(md, account):
    project = Project(md, account)
    cat = project.tag("Cat")
    create = md.CreateTag
    expect("BadRequestTagNameNotUnique", Conflict, create,
           pb.CreateTagRequest(**project.ids(), name="cat"))
    expect("BadRequestTagName", BadRequest, create, pb.CreateTagRequest(**project.ids(), name=""))
    expect("BadRequestTagType", BadRequest, create,
           pb.CreateTagRequest(**project.ids(), name="x", type="Odd"))
    project.tag("none", "Negative")
    expect("BadRequestMultipleNegativeTag", Conflict, create,
           pb.CreateTagRequest(**project.ids(), name="none2", type="Negative"))
    project.add_tagged(cat, 3)
    tag = md.GetTag(pb.GetTagRequest(**project.ids(), tag_id=cat)).tag
    assert (tag.name, tag.type, tag.image_count) == ("Cat", "Regular", 3)
    tags = md.ListTags(pb.ListTagsRequest(**project.ids())).tags
    assert [(t.name, t.image_count) for t in tags] == [("Cat", 3), ("none", 0)]
    # Another project may reuse the name.
    Project(md, account).tag("cat")

    md.DeleteTag(pb.DeleteTagRequest(**project.ids(), tag_id=cat))
    expect("NotFoundTag", NotFound, md.GetTag, pb.GetTagRequest(**project.ids(), tag_id=cat))
    expect("NotFoundTag", NotFound, md.DeleteTag, pb.DeleteTagRequest(**project.ids(), tag_id=cat))
    assert project.images(tagging_status="Untagged").total == 3


# --- images -----------------------------------------------------------------------------------


def test_duplicate_images_report_okduplicate_and_merge_tags(md, account):
    project = Project(md, account)
    cat, dog = project.tag("cat"), project.tag("dog")
    h = sha()
    first = project.add(pb.NewImage(sha256=h, width=10, height=20, content_type="image/png",
                                    size_bytes=123, tag_ids=[cat], metadata={"k": "v"}))
    assert first[0].status == "OK"
    image = first[0].image
    assert (image.width, image.height) == (10, 20)
    assert (image.content_type, image.size_bytes) == ("image/png", 123)
    assert dict(image.metadata) == {"k": "v"} and [t.tag_name for t in image.tags] == ["cat"]

    again = project.add(pb.NewImage(sha256=h, tag_ids=[dog]), pb.NewImage(sha256=h.upper()))
    assert [r.status for r in again] == ["OKDuplicate", "OKDuplicate"]
    assert again[0].image.id == image.id
    assert sorted(t.tag_name for t in again[1].image.tags) == ["cat", "dog"]

    # A repeat inside one batch is a duplicate of the first occurrence.
    h2 = sha()
    batch = project.add(pb.NewImage(sha256=h2), pb.NewImage(sha256=h2, tag_ids=[cat]))
    assert [r.status for r in batch] == ["OK", "OKDuplicate"]
    assert batch[0].image.id == batch[1].image.id
    assert project.images().total == 2

    # The same bytes in another project are a new image there.
    assert Project(md, account).add(pb.NewImage(sha256=h))[0].status == "OK"


def test_a_bad_image_in_a_batch_stores_nothing(md, account):
    project = Project(md, account)
    cat, negative = project.tag("cat"), project.tag("none", "Negative")
    foreign = Project(md, account).tag("cat")
    good = pb.NewImage(sha256=sha(), tag_ids=[cat])
    for bad, code in [
        (pb.NewImage(sha256=sha(), tag_ids=[str(uuid.uuid4())]), "BadRequestImageTags"),
        (pb.NewImage(sha256=sha(), tag_ids=[foreign]), "BadRequestImageTags"),
        (pb.NewImage(sha256=sha(), tag_ids=["junk"]), "BadRequestImageTags"),
        (pb.NewImage(sha256=sha(), tag_ids=[cat, negative]),
         "BadRequestNegativeAndRegularTagOnSameImage"),
        (pb.NewImage(sha256="nothex"), "BadRequestImageBatch"),
    ]:
        expect(code, BadRequest, project.add, good, bad)
    assert project.images().total == 0
    assert md.GetTag(pb.GetTagRequest(**project.ids(), tag_id=cat)).tag.image_count == 0

    # Merging Negative into an image that has a regular tag is refused as a whole too.
    h = sha()
    project.add(pb.NewImage(sha256=h, tag_ids=[cat]))
    extra = pb.NewImage(sha256=sha(), tag_ids=[cat])
    expect("BadRequestNegativeAndRegularTagOnSameImage", BadRequest, project.add,
           extra, pb.NewImage(sha256=h, tag_ids=[negative]))
    assert project.images().total == 1


def test_list_images_filters_pages_and_orders_stably(md, account):
    project = Project(md, account)
    cat, dog = project.tag("cat"), project.tag("dog")
    added = project.add(*(pb.NewImage(sha256=sha()) for _ in range(3)))
    added += project.add_tagged(cat, 4) + project.add_tagged(dog, 2)
    ids = [r.image.id for r in added]  # upload order

    newest = project.images(take=100)
    assert newest.total == 9 and [i.id for i in newest.images] == ids[::-1]
    oldest = project.images(order_by="Oldest", take=100)
    assert [i.id for i in oldest.images] == ids

    pages = [project.images(order_by="Oldest", take=4, skip=s) for s in (0, 4, 8, 12)]
    assert [len(p.images) for p in pages] == [4, 4, 1, 0]
    assert all(p.total == 9 for p in pages)
    assert [i.id for p in pages for i in p.images] == ids

    assert project.images(tagging_status="Tagged").total == 6
    untagged = project.images(tagging_status="Untagged", order_by="Oldest")
    assert [i.id for i in untagged.images] == ids[:3]
    only_dog = project.images(tag_ids=[dog], order_by="Oldest")
    assert [i.id for i in only_dog.images] == ids[7:]
    assert project.images(tag_ids=[cat, dog]).total == 6
    by_id = project.images(image_ids=[ids[0], ids[5], str(uuid.uuid4())], order_by="Oldest")
    assert [i.id for i in by_id.images] == [ids[0], ids[5]]
    assert [t.tag_id for t in by_id.images[1].tags] == [cat]
    assert len(project.images().images) == 9  # default page of 50

    expect("BadRequest", BadRequest, project.images, order_by="Suggested")
    expect("BadRequest", BadRequest, project.images, tagging_status="Maybe")
    expect("BadRequestInvalidIds", BadRequest, project.images, tag_ids=["junk"])


def test_delete_images_returns_hashes_nothing_needs(md, account):
    project = Project(md, account)
    cat = project.tag("cat")
    added = project.add_tagged(cat, 3)
    a, b, c = (r.image for r in added)
    md.RecordPrediction(pb.RecordPredictionRequest(prediction=pb.StoredPrediction(
        project_id=project.id, image_sha256=b.sha256)))
    expect("NotFoundImage", NotFound, md.DeleteImages,
           pb.DeleteImagesRequest(**project.ids(), image_ids=[a.id, str(uuid.uuid4())]))
    assert project.images().total == 3  # nothing deleted
    expect("BadRequestInvalidIds", BadRequest, md.DeleteImages, pb.DeleteImagesRequest(**project.ids()))

    gone = md.DeleteImages(pb.DeleteImagesRequest(**project.ids(), image_ids=[a.id, b.id]))
    assert list(gone.orphaned_sha256) == [a.sha256]  # b's bytes still back a stored prediction
    assert [i.id for i in project.images().images] == [c.id]
    assert md.GetTag(pb.GetTagRequest(**project.ids(), tag_id=cat)).tag.image_count == 1
    rest = md.DeleteImages(pb.DeleteImagesRequest(**project.ids(), all=True))
    assert list(rest.orphaned_sha256) == [c.sha256]
    assert project.images().total == 0


def test_the_sweep_lists_image_hashes_and_deletes_images_by_hash(md, account):
    project, other = Project(md, account), Project(md, account)
    cat = project.tag("cat")
    added = [r.image for r in project.add_tagged(cat, 3)]
    other_sha = other.add(pb.NewImage(sha256=added[0].sha256, width=8, height=8))[0].image.sha256
    listed = md.ImageHashes(pb.ImageHashesRequest(project_id=project.id)).sha256
    assert list(listed) == sorted(i.sha256 for i in added)
    assert not md.ImageHashes(pb.ImageHashesRequest(project_id="not-a-uuid")).sha256
    expect("BadRequest", BadRequest, md.DeleteImagesByHash, pb.DeleteImagesByHashRequest(
        project_id=project.id, sha256=[sha() for _ in range(1001)]))

    gone = md.DeleteImagesByHash(pb.DeleteImagesByHashRequest(
        project_id=project.id, sha256=[added[0].sha256, sha()]))
    assert gone.deleted == 1
    assert sorted(i.id for i in project.images().images) == sorted(i.id for i in added[1:])
    assert md.GetTag(pb.GetTagRequest(**project.ids(), tag_id=cat)).tag.image_count == 2
    # the same bytes in another project keep their row there
    assert list(md.ImageHashes(pb.ImageHashesRequest(project_id=other.id)).sha256) == [other_sha]


# --- iterations -------------------------------------------------------------------------------


def test_training_validation(md, account):
    project = Project(md, account)
    cat = project.tag("cat")
    negative = project.tag("none", "Negative")
    project.add_tagged(cat, 5)
    project.add_tagged(negative, 5)
    err = expect("BadRequestTrainingValidationFailed", Conflict, project.train)
    assert "2 tags" in err.message  # the Negative tag does not count
    dog = project.tag("dog")
    project.add_tagged(dog, 4)
    err = expect("BadRequestTrainingValidationFailed", Conflict, project.train)
    assert "'dog'" in err.message
    assert project.train(min_images_per_tag=4).status == "Training"

    multilabel = Project(md, account, "Multilabel")
    only = multilabel.tag("only")
    multilabel.add_tagged(only, 5)
    assert multilabel.train().name == "Iteration 1"

    selected = Project(md, account)
    a, b, c = selected.tag("a"), selected.tag("b"), selected.tag("c")
    selected.add_tagged(a, 5)
    selected.add_tagged(b, 5)
    selected.add_tagged(c, 1)
    expect("BadRequestTrainingValidationFailed", Conflict, selected.train)
    assert selected.train(selected_tag_ids=[a, b]).status == "Training"
    expect("NotFoundTag", NotFound, Project(md, account).train, selected_tag_ids=[a])


def test_training_not_needed_and_already_in_progress(md, account):
    project, cat, dog = trainable(md, account)
    first = project.train()
    assert (first.name, first.status, first.training_type) == ("Iteration 1", "Training", "Regular")
    assert first.classification_type == "Multiclass"
    expect("BadRequestTrainingAlreadyInProgress", Conflict, project.train)
    expect("BadRequestTrainingAlreadyInProgress", Conflict, project.train, force_train=True)
    project.finish(first.id)

    expect("BadRequestTrainingNotNeeded", Conflict, project.train)
    forced = project.train(force_train=True)
    assert forced.name == "Iteration 2"
    project.finish(forced.id, "Failed", error_message="boom")
    expect("BadRequestTrainingNotNeeded", Conflict, project.train)  # compared with last Completed

    # A change to the training type, the images or their tags makes training needed again.
    advanced = project.train(training_type="Advanced", reserved_budget_in_hours=1)
    assert (advanced.training_type, advanced.reserved_budget_in_hours) == ("Advanced", 1)
    project.finish(advanced.id)
    expect("BadRequestTrainingNotNeeded", Conflict, project.train, training_type="Advanced")
    project.add_tagged(cat, 1)
    third = project.train(training_type="Advanced")
    project.finish(third.id)
    expect("BadRequestTrainingNotNeeded", Conflict, project.train, training_type="Advanced")
    # An untagged upload does not change the training set.
    project.add(pb.NewImage(sha256=sha()))
    expect("BadRequestTrainingNotNeeded", Conflict, project.train, training_type="Advanced")
    image = project.images(tag_ids=[cat]).images[0]
    project.add(pb.NewImage(sha256=image.sha256, tag_ids=[dog]))
    assert project.train(training_type="Advanced").name == "Iteration 5"

    names = [i.name for i in md.ListIterations(pb.ListIterationsRequest(**project.ids())).iterations]
    assert names == [f"Iteration {n}" for n in (5, 4, 3, 2, 1)]


def test_concurrent_create_iteration_starts_one_training(md, account):
    project, _, _ = trainable(md, account)
    outcomes = []

    def train():
        try:
            outcomes.append(project.train().status)
        except LoupeError as err:
            outcomes.append(err.code)

    threads = [threading.Thread(target=train) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["BadRequestTrainingAlreadyInProgress"] * 5 + ["Training"]


def test_training_set_is_frozen_and_finish_is_idempotent(md, account):
    project, cat, dog = trainable(md, account)
    iteration = project.train()
    project.add_tagged(cat, 2)  # after the snapshot
    training_set = md.GetTrainingSet(pb.GetTrainingSetRequest(iteration_id=iteration.id))
    assert training_set.iteration.id == iteration.id
    assert len(training_set.images) == 10
    assert sorted((t.name, t.image_count) for t in training_set.tags) == [("cat", 5), ("dog", 5)]
    assert all(len(i.tag_ids) == 1 and len(i.sha256) == 64 for i in training_set.images)

    md.ReportProgress(pb.ReportProgressRequest(iteration_id=iteration.id, stage="Embedding", percent=40))
    got = md.GetIteration(pb.GetIterationRequest(**project.ids(), iteration_id=iteration.id)).iteration
    assert (got.progress_stage, got.progress_percent) == ("Embedding", 40)

    performance = pb.Performance(threshold=0.5, precision=0.9, recall=0.8, per_tag=[
        pb.TagPerformance(tag_id=cat, name="cat", precision=1.0, recall=0.75, image_count=5)])
    done = project.finish(iteration.id, evaluation=b'{"x": 1}', performance=performance,
                          training_seconds=61)
    assert not done.already_finished
    it = done.iteration
    assert (it.status, it.training_time_in_minutes) == ("Completed", 2)
    assert it.artifact_key == f"artifacts/{iteration.id}"
    assert it.evaluation == b'{"x": 1}' and it.performance == performance
    assert it.HasField("trained_at") and it.progress_percent == 100

    again = project.finish(iteration.id, "Failed", error_message="late")
    assert again.already_finished and again.iteration.status == "Completed"
    assert again.iteration.performance == performance
    # A late progress report after the end changes nothing.
    md.ReportProgress(pb.ReportProgressRequest(iteration_id=iteration.id, stage="x", percent=1))
    got = md.GetIteration(pb.GetIterationRequest(**project.ids(), iteration_id=iteration.id)).iteration
    assert got.progress_percent == 100

    expect("NotFoundIteration", NotFound, project.finish, str(uuid.uuid4()))
    expect("BadRequest", BadRequest, project.finish, iteration.id, "Training")
    expect("NotFoundIteration", NotFound, md.ReportProgress,
           pb.ReportProgressRequest(iteration_id=str(uuid.uuid4())))

    failed = project.train()
    result = project.finish(failed.id, "Failed", error_message="out of memory")
    assert (result.iteration.status, result.iteration.error_message) == ("Failed", "out of memory")
    assert not result.iteration.HasField("trained_at")


def test_training_attempts_are_counted_while_training(md, account):
    project, _cat, _dog = trainable(md, account)
    iteration = project.train()
    start = lambda iid: md.StartTrainingAttempt(pb.StartTrainingAttemptRequest(iteration_id=iid)).attempts
    assert [start(iteration.id) for _ in range(3)] == [1, 2, 3]
    project.finish(iteration.id, "Failed", error_message="x")
    assert start(iteration.id) == 0  # no longer Training: nothing to start
    expect("NotFoundIteration", NotFound, start, str(uuid.uuid4()))
    # Each iteration counts its own starts.
    assert start(project.train(force_train=True).id) == 1


def test_publish_unpublish_and_delete_published(md, account):
    project, cat, _ = trainable(md, account)
    first = project.train()
    ids = {**project.ids(), "iteration_id": first.id}
    resource = account.prediction_resource_id
    publish = md.PublishIteration
    expect("BadRequestIterationIsNotTrained", Conflict, publish,
           pb.PublishIterationRequest(**ids, publish_name="prod", prediction_resource_id=resource))
    project.finish(first.id)
    expect("BadRequestInvalidPublishName", BadRequest, publish,
           pb.PublishIterationRequest(**ids, publish_name=""))
    expect("BadRequestInvalidPublishTarget", BadRequest, publish,
           pb.PublishIterationRequest(**ids, publish_name="prod", prediction_resource_id="/elsewhere"))
    published = publish(pb.PublishIterationRequest(
        **ids, publish_name="prod", prediction_resource_id=resource)).iteration
    assert (published.publish_name, published.prediction_resource_id) == ("prod", resource)

    found = md.GetPublishedIteration(
        pb.GetPublishedIterationRequest(**project.ids(), publish_name="prod"))
    assert found.iteration.id == first.id
    assert sorted(t.name for t in found.tags) == ["cat", "dog"]
    other = md.CreateAccount(pb.CreateAccountRequest(name="other")).account
    expect("NotFoundProject", NotFound, md.GetPublishedIteration,
           pb.GetPublishedIterationRequest(
               account_id=other.id, project_id=project.id, publish_name="prod"))
    expect("NotFoundIteration", NotFound, md.GetPublishedIteration,
           pb.GetPublishedIterationRequest(**project.ids(), publish_name="nope"))

    expect("BadRequestIterationIsPublished", Conflict, md.DeleteIteration,
           pb.DeleteIterationRequest(**ids))

    project.add_tagged(cat, 1)
    second = project.train()
    project.finish(second.id)
    ids2 = {**project.ids(), "iteration_id": second.id}
    expect("BadRequestInvalidPublishName", Conflict, publish,
           pb.PublishIterationRequest(**ids2, publish_name="prod"))
    moved = publish(pb.PublishIterationRequest(**ids2, publish_name="prod", overwrite=True)).iteration
    assert moved.publish_name == "prod"
    assert md.GetIteration(pb.GetIterationRequest(**ids)).iteration.publish_name == ""
    assert md.GetPublishedIteration(
        pb.GetPublishedIterationRequest(**project.ids(), publish_name="prod")).iteration.id == second.id

    key = md.DeleteIteration(pb.DeleteIterationRequest(**ids)).artifact_key
    assert key == f"artifacts/{first.id}"
    expect("NotFoundIteration", NotFound, md.GetIteration, pb.GetIterationRequest(**ids))

    unpublished = md.UnpublishIteration(pb.UnpublishIterationRequest(**ids2)).iteration
    assert (unpublished.publish_name, unpublished.prediction_resource_id) == ("", "")
    expect("BadRequestIterationNotPublished", Conflict, md.UnpublishIteration,
           pb.UnpublishIterationRequest(**ids2))
    expect("NotFoundIteration", NotFound, md.GetPublishedIteration,
           pb.GetPublishedIterationRequest(**project.ids(), publish_name="prod"))
    md.DeleteIteration(pb.DeleteIterationRequest(**ids2))
    assert md.ListIterations(pb.ListIterationsRequest(**project.ids())).iterations == []
    # Numbers are not reused after deletions.
    project.add_tagged(cat, 1)
    assert project.train().name == "Iteration 3"


def test_predictions_are_stored_newest_first(md, account):
    project, cat, _ = trainable(md, account)
    iteration = project.train()
    h1, h2 = sha(), sha()
    record_id = str(uuid.uuid4())
    for prediction in (
        pb.StoredPrediction(id=record_id, project_id=project.id, iteration_id=iteration.id,
                            image_sha256=h1, width=4, height=3, application="app",
                            predictions=[pb.PredictedTag(tag_id=cat, tag_name="cat", probability=0.9)]),
        pb.StoredPrediction(id=record_id, project_id=project.id, image_sha256=h1),  # replay
        pb.StoredPrediction(project_id=project.id, iteration_id=str(uuid.uuid4()), image_sha256=h2),
    ):
        md.RecordPrediction(pb.RecordPredictionRequest(prediction=prediction))
    expect("NotFoundProject", NotFound, md.RecordPrediction, pb.RecordPredictionRequest(
        prediction=pb.StoredPrediction(project_id=str(uuid.uuid4()), image_sha256=h1)))

    stored = md.ListPredictions(pb.ListPredictionsRequest(**project.ids())).predictions
    assert [p.image_sha256 for p in stored] == [h2, h1]
    assert stored[0].iteration_id == ""  # unknown iteration is not linked
    first = stored[1]
    assert (first.id, first.iteration_id) == (record_id, iteration.id)
    assert (first.application, first.width, first.height) == ("app", 4, 3)
    assert [(p.tag_name, p.probability) for p in first.predictions] == [("cat", 0.9)]
    one = md.ListPredictions(pb.ListPredictionsRequest(**project.ids(), max_count=1))
    assert len(one.predictions) == 1


def test_delete_project_cascades_and_returns_storage_keys(md, account, db):
    project, cat, _ = trainable(md, account)
    iteration = project.train()
    project.finish(iteration.id)
    failed = project.train(force_train=True)
    project.finish(failed.id, "Failed", error_message="x")
    prediction_hash = sha()
    md.RecordPrediction(pb.RecordPredictionRequest(prediction=pb.StoredPrediction(
        project_id=project.id, iteration_id=iteration.id, image_sha256=prediction_hash)))
    image_hashes = {i.sha256 for i in project.images(take=100).images}

    deleted = md.DeleteProject(pb.DeleteProjectRequest(**project.ids()))
    assert set(deleted.image_sha256) == image_hashes | {prediction_hash}
    assert list(deleted.artifact_keys) == [f"artifacts/{iteration.id}"]
    expect("NotFoundProject", NotFound, md.GetProject, pb.GetProjectRequest(**project.ids()))
    expect("NotFoundProject", NotFound, md.DeleteProject, pb.DeleteProjectRequest(**project.ids()))
    for table, column in [("tags", "project_id"), ("images", "project_id"),
                          ("iterations", "project_id"), ("predictions", "project_id")]:
        count = db.execute(f"SELECT count(*) FROM {table} WHERE {column} = %s", (project.id,))
        assert count.fetchone()[0] == 0
    for table in ("iteration_images", "iteration_tags"):
        assert db.execute(f"SELECT count(*) FROM {table} WHERE iteration_id = %s",
                          (iteration.id,)).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM image_tags WHERE tag_id = %s", (cat,)).fetchone()[0] == 0


# --- training operations: updates, image tags, metadata, stored-prediction queries -------------


def test_update_tag_and_tags_as_an_iteration_saw_them(md, account):
    project, cat, dog = trainable(md, account)
    it = project.train()
    project.finish(it.id, evaluation=b"{}", evaluation_image_ids=[])
    project.add_tagged(cat, 2)
    renamed = md.UpdateTag(pb.UpdateTagRequest(
        **project.ids(), tag_id=cat, update_mask=["name", "description"], name="kitten",
        description="small")).tag
    assert (renamed.name, renamed.description, renamed.image_count) == ("kitten", "small", 7)
    expect("BadRequestTagNameNotUnique", Conflict, md.UpdateTag, pb.UpdateTagRequest(
        **project.ids(), tag_id=cat, update_mask=["name"], name="DOG"))
    expect("NotFoundTag", NotFound, md.UpdateTag, pb.UpdateTagRequest(
        **project.ids(), tag_id=str(uuid.uuid4()), update_mask=["name"], name="x"))
    expect("BadRequest", BadRequest, md.UpdateTag, pb.UpdateTagRequest(
        **project.ids(), tag_id=cat, update_mask=["image_count"]))
    then = md.ListTags(pb.ListTagsRequest(**project.ids(), iteration_id=it.id)).tags
    assert {(t.name, t.image_count) for t in then} == {("cat", 5), ("dog", 5)}
    one = md.GetTag(pb.GetTagRequest(**project.ids(), tag_id=cat, iteration_id=it.id)).tag
    assert (one.image_count, one.description) == (5, "small")
    now = md.GetTag(pb.GetTagRequest(**project.ids(), tag_id=cat)).tag
    assert now.image_count == 7
    expect("NotFoundIteration", NotFound, md.ListTags, pb.ListTagsRequest(
        **project.ids(), iteration_id=str(uuid.uuid4())))
    # A tag whose images carry another tag cannot become Negative.
    project.add(pb.NewImage(sha256=sha(), tag_ids=[cat, dog]))
    expect("BadRequestNegativeAndRegularTagOnSameImage", BadRequest, md.UpdateTag,
           pb.UpdateTagRequest(**project.ids(), tag_id=cat, update_mask=["type"], type="Negative"))
    lonely = project.tag("lonely")
    project.add(pb.NewImage(sha256=sha(), tag_ids=[lonely]))
    negative = md.UpdateTag(pb.UpdateTagRequest(
        **project.ids(), tag_id=lonely, update_mask=["type"], type="Negative")).tag
    assert negative.type == "Negative"
    other = project.tag("other")
    expect("BadRequestMultipleNegativeTag", Conflict, md.UpdateTag, pb.UpdateTagRequest(
        **project.ids(), tag_id=other, update_mask=["type"], type="Negative"))


def test_update_iteration_name_and_evaluation_image_order(md, account):
    project, _cat, _dog = trainable(md, account)
    first = project.train()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    project.finish(first.id, evaluation=b'{"x":1}', evaluation_image_ids=ids)
    got = md.GetIteration(pb.GetIterationRequest(**project.ids(), iteration_id=first.id)).iteration
    assert list(got.evaluation_image_ids) == ids
    renamed = md.UpdateIteration(pb.UpdateIterationRequest(
        **project.ids(), iteration_id=first.id, name="baseline")).iteration
    assert renamed.name == "baseline"
    expect("BadRequestIterationName", BadRequest, md.UpdateIteration, pb.UpdateIterationRequest(
        **project.ids(), iteration_id=first.id, name=" "))
    second = project.train(force_train=True)
    # Without reported ids, the order is rebuilt from the training set (by image id).
    project.finish(second.id, evaluation=b'{"x":1}')
    got = md.GetIteration(pb.GetIterationRequest(**project.ids(), iteration_id=second.id)).iteration
    tset = md.GetTrainingSet(pb.GetTrainingSetRequest(iteration_id=second.id))
    assert list(got.evaluation_image_ids) == [i.image_id for i in tset.images]
    expect("BadRequestIterationNameNotUnique", Conflict, md.UpdateIteration,
           pb.UpdateIterationRequest(**project.ids(), iteration_id=second.id, name="BASELINE"))


def test_add_and_delete_image_tags(md, account):
    project = Project(md, account)
    a, b, neg = project.tag("a"), project.tag("b"), project.tag("neg", "Negative")
    img1, img2 = (r.image.id for r in project.add(
        pb.NewImage(sha256=sha(), tag_ids=[a]), pb.NewImage(sha256=sha())))
    result = md.AddImageTags(pb.AddImageTagsRequest(**project.ids(), links=[
        pb.ImageTagLink(image_id=img1, tag_id=a), pb.ImageTagLink(image_id=img1, tag_id=b),
        pb.ImageTagLink(image_id=img2, tag_id=a), pb.ImageTagLink(image_id=img2, tag_id=b),
    ], max_tags_per_image=1))
    pairs = lambda links: [(x.image_id, x.tag_id) for x in links]  # noqa: E731
    assert pairs(result.duplicated) == [(img1, a)]
    assert pairs(result.created) == [(img2, a)]
    assert pairs(result.exceeded) == [(img1, b), (img2, b)]
    expect("NotFoundImage", NotFound, md.AddImageTags, pb.AddImageTagsRequest(
        **project.ids(), links=[pb.ImageTagLink(image_id=str(uuid.uuid4()), tag_id=a)]))
    expect("BadRequestImageTags", BadRequest, md.AddImageTags, pb.AddImageTagsRequest(
        **project.ids(), links=[pb.ImageTagLink(image_id=img1, tag_id=str(uuid.uuid4()))]))
    expect("BadRequestNegativeAndRegularTagOnSameImage", BadRequest, md.AddImageTags,
           pb.AddImageTagsRequest(**project.ids(), links=[pb.ImageTagLink(image_id=img1, tag_id=neg)]))
    md.DeleteImageTags(pb.DeleteImageTagsRequest(**project.ids(), image_ids=[img1, img2], tag_ids=[a]))
    assert project.images(tagging_status="Untagged").total == 2
    # Another account's images are invisible.
    stranger = md.CreateAccount(pb.CreateAccountRequest(name="stranger")).account
    expect("NotFoundProject", NotFound, md.AddImageTags, pb.AddImageTagsRequest(
        account_id=stranger.id, project_id=project.id,
        links=[pb.ImageTagLink(image_id=img1, tag_id=a)]))


def test_update_image_metadata_merges_and_limits(md, account):
    project = Project(md, account)
    img = project.add(pb.NewImage(sha256=sha(), metadata={"k0": "v"}))[0].image.id
    missing = str(uuid.uuid4())
    results = md.UpdateImageMetadata(pb.UpdateImageMetadataRequest(
        **project.ids(), image_ids=[img, missing], metadata={"camera": "a"},
        max_keys_per_image=2)).results
    assert [(r.image_id, r.status) for r in results] == [(img, "OK"), (missing, "ErrorImageNotFound")]
    assert dict(results[0].metadata) == {"k0": "v", "camera": "a"}
    over = md.UpdateImageMetadata(pb.UpdateImageMetadataRequest(
        **project.ids(), image_ids=[img], metadata={"third": "x"}, max_keys_per_image=2)).results
    assert over[0].status == "ErrorLimitExceed"
    assert dict(project.images(image_ids=[img]).images[0].metadata) == {"k0": "v", "camera": "a"}


def test_query_and_delete_stored_predictions(md, account):
    from google.protobuf.timestamp_pb2 import Timestamp

    project, cat, dog = trainable(md, account)
    it = project.train()
    project.finish(it.id)
    shas = [sha() for _ in range(5)]
    stamps = []
    for n, h in enumerate(shas):
        ts = Timestamp(seconds=1_700_000_000 + n)
        stamps.append(ts)
        md.RecordPrediction(pb.RecordPredictionRequest(prediction=pb.StoredPrediction(
            id=str(uuid.uuid4()), project_id=project.id, iteration_id=it.id if n % 2 == 0 else "",
            image_sha256=h, application="app" if n < 2 else "", created=ts,
            predictions=[pb.PredictedTag(tag_id=cat, tag_name="cat", probability=0.5 + n / 10),
                         pb.PredictedTag(tag_id=dog, tag_name="dog", probability=0.5 - n / 10)])))

    def query(**kw):
        return md.QueryPredictions(pb.QueryPredictionsRequest(**project.ids(), **kw))

    newest = query()
    assert [p.image_sha256 for p in newest.predictions] == shas[::-1]
    assert newest.continuation == ""
    first = query(order_by="Oldest", max_count=2)
    second = query(order_by="Oldest", max_count=2, continuation=first.continuation)
    third = query(order_by="Oldest", max_count=2, continuation=second.continuation)
    pages = [p.image_sha256 for r in (first, second, third) for p in r.predictions]
    assert pages == shas and third.continuation == ""
    assert [p.image_sha256 for p in query(iteration_id=it.id).predictions] == shas[::-2]
    assert {p.image_sha256 for p in query(application="app").predictions} == set(shas[:2])
    in_range = query(start_time=stamps[1], end_time=stamps[3]).predictions
    assert {p.image_sha256 for p in in_range} == set(shas[1:4])
    cats = query(tags=[pb.PredictionTagFilter(tag_id=cat, min_threshold=0.75)]).predictions
    assert {p.image_sha256 for p in cats} == set(shas[3:])
    # Suspicious: the least confident first (the lowest top probability).
    assert query(order_by="Suspicious").predictions[0].image_sha256 == shas[0]
    expect("BadRequestPredictionInvalidQueryParameters", BadRequest, query, order_by="Random")
    expect("BadRequestPredictionInvalidQueryParameters", BadRequest, query, continuation="%%%")

    # A prediction whose bytes are also a training image keeps them; the others are orphaned.
    project.add(pb.NewImage(sha256=shas[0], tag_ids=[cat]))
    ids = [p.id for p in newest.predictions]
    by_sha = {p.image_sha256: p.id for p in newest.predictions}
    orphaned = md.DeletePredictions(pb.DeletePredictionsRequest(
        **project.ids(), ids=[by_sha[shas[0]], by_sha[shas[1]]])).orphaned_sha256
    assert list(orphaned) == [shas[1]]
    assert len(query().predictions) == 3
    expect("BadRequestPredictionIdsMissing", BadRequest, md.DeletePredictions,
           pb.DeletePredictionsRequest(**project.ids()))
    assert len(ids) == 5


# --- listing by iteration snapshot and metadata filter ----------------------------------------


def test_list_images_of_an_iteration_is_its_frozen_training_set(md, account):
    project = Project(md, account)
    cat, dog = project.tag("cat"), project.tag("dog")
    cats = [r.image.id for r in project.add_tagged(cat, 5)]
    dogs = [r.image.id for r in project.add_tagged(dog, 5)]
    untagged = [r.image.id for r in project.add(pb.NewImage(sha256=sha()))]
    iteration = project.train()

    # After the snapshot: a new image, a retag, a removed tag, a renamed tag, a deleted image.
    later = [r.image.id for r in project.add_tagged(cat, 2)]
    md.AddImageTags(pb.AddImageTagsRequest(
        **project.ids(), links=[pb.ImageTagLink(image_id=untagged[0], tag_id=dog)]))
    md.DeleteImageTags(pb.DeleteImageTagsRequest(**project.ids(), image_ids=[cats[0]], tag_ids=[cat]))
    md.AddImageTags(pb.AddImageTagsRequest(
        **project.ids(), links=[pb.ImageTagLink(image_id=cats[0], tag_id=dog)]))
    md.UpdateTag(pb.UpdateTagRequest(**project.ids(), tag_id=cat, update_mask=["name"], name="kitty"))
    md.DeleteImages(pb.DeleteImagesRequest(**project.ids(), image_ids=[dogs[4]]))

    workspace = project.images(take=100)
    assert workspace.total == 13 - 1  # 5 + 5 + 1 + 2, less the deleted one

    snap = project.images(iteration_id=iteration.id, take=100, order_by="Oldest")
    assert snap.total == 9 and [i.id for i in snap.images] == cats + dogs[:4]
    tags_of = {i.id: [(t.tag_id, t.tag_name) for t in i.tags] for i in snap.images}
    assert tags_of[cats[0]] == [(cat, "cat")]  # as it was: cat (its old name), not dog
    assert tags_of[dogs[0]] == [(dog, "dog")]
    assert all(i.width == 8 and i.created.seconds for i in snap.images)

    assert project.images(iteration_id=iteration.id, tagging_status="Tagged").total == 9
    assert project.images(iteration_id=iteration.id, tagging_status="Untagged").total == 0
    only_dog = project.images(iteration_id=iteration.id, tag_ids=[dog], order_by="Oldest")
    assert [i.id for i in only_dog.images] == dogs[:4]  # not cats[0], retagged dog later
    by_id = project.images(iteration_id=iteration.id, image_ids=[cats[1], later[0], untagged[0]])
    assert [i.id for i in by_id.images] == [cats[1]]
    page = project.images(iteration_id=iteration.id, take=2, skip=1, order_by="Oldest")
    assert page.total == 9 and [i.id for i in page.images] == cats[1:3]

    expect("NotFoundIteration", NotFound, project.images, iteration_id=str(uuid.uuid4()))
    expect("NotFoundIteration", NotFound, project.images, iteration_id="junk")
    other = Project(md, account)
    expect("NotFoundIteration", NotFound, other.images, iteration_id=iteration.id)


def _cmp(key: str, op: str, value: str) -> pb.MetadataFilter:
    return pb.MetadataFilter(comparison=pb.MetadataComparison(key=key, op=op, value=value))


def _all(*items) -> pb.MetadataFilter:
    return pb.MetadataFilter(all=pb.MetadataFilterList(filters=items))


def _any(*items) -> pb.MetadataFilter:
    return pb.MetadataFilter(any=pb.MetadataFilterList(filters=items))


def test_list_images_metadata_filter(md, account):
    project = Project(md, account)
    cat = project.tag("cat")
    metas = [{"cam": "a", "site": "x"}, {"cam": "a", "site": "y"}, {"cam": "b"}, {}]
    ids = [
        project.add(pb.NewImage(sha256=sha(), tag_ids=[cat], metadata=m))[0].image.id for m in metas
    ]

    def got(f, **kw):
        return sorted(i.id for i in project.images(metadata_filter=f, take=100, **kw).images)

    assert got(_cmp("cam", "eq", "a")) == sorted(ids[:2])
    assert got(_cmp("cam", "ne", "a")) == sorted(ids[2:])  # a missing key is "not equal"
    assert got(_all(_cmp("cam", "eq", "a"), _cmp("site", "ne", "x"))) == [ids[1]]
    assert got(_any(_cmp("site", "eq", "x"), _cmp("cam", "eq", "b"))) == sorted([ids[0], ids[2]])
    assert got(_any(_all(_cmp("cam", "eq", "a"), _cmp("site", "eq", "y")), _cmp("nope", "eq", ""))) == [ids[1]]
    injected = _cmp("cam' OR '1'='1", "eq", "a' OR '1'='1")
    assert got(injected) == []
    assert project.images(metadata_filter=_cmp("cam", "eq", "a"), take=1).total == 2
    assert project.images(metadata_filter=_cmp("cam", "eq", "a"), tagging_status="Untagged").total == 0

    expect("BadRequest", BadRequest, project.images, metadata_filter=_cmp("cam", "gt", "a"))
    expect("BadRequest", BadRequest, project.images, metadata_filter=_all())
