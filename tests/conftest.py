"""Fixtures shared by every tier.

The service and end-to-end tiers run against a real stack started for the test run by the same
code as `make up` (deploy/local/loupe_stack), in a fresh temporary data folder on its own ports,
so the tests never touch the developer's `.loupe/` data.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from loupe_common import internal_auth
from loupe_stack.layout import Layout
from loupe_stack.stack import Stack, read_env

TEST_BASE_PORT = int(os.environ.get("LOUPE_TEST_BASE_PORT", "23500"))

#: The one setting of the test stack that `make up` does not have: image URLs may point at
#: 127.0.0.1, where the tests serve images from a local http.server (everything else private
#: stays refused, which tests/e2e/test_gateway_urls.py checks). Rate limiting is off, as with
#: `make up`; the tests of the limiter turn it on in their own app.
TEST_STACK_ENV = {
    "LOUPE_URL_FETCH_ALLOW": "127.0.0.1/32",
}


#: Where a second, independent stack listens when a test needs another Loupe install (a stack
#: takes 30 ports from its base).
OTHER_STACK_PORT_OFFSET = 50


@contextlib.contextmanager
def _stack_in_temp_folder(base_port: int, prefix: str):
    data = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(data, 0o755)  # PostgreSQL runs as the postgres user and must enter it
    s = Stack(Layout(data=data, base_port=base_port), extra_env=TEST_STACK_ENV)
    try:
        yield s
    finally:
        s.stop()
        pg = (data / "postgres")
        if pg.is_symlink():
            shutil.rmtree(pg.resolve(), ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    """The test run's stack object (processes are started by `infra` / `live`)."""
    with _stack_in_temp_folder(TEST_BASE_PORT, "loupe-test-") as s:
        yield s


class _OtherInstall:
    """A second whole Loupe install, started when a test first asks for it and stopped once the
    tests that follow (in run order) are in modules that never ask for it: the modules that
    need it (tests/e2e/test_import_azure.py, test_import_dataset.py, which sort next to each
    other) share one start, and it does not run beside the rest of the suite."""

    def __init__(self) -> None:
        self._exit: contextlib.ExitStack | None = None
        self.env: dict[str, str] = {}
        self.modules: set[str] = set()  # node ids of the modules whose tests need it

    def start(self) -> dict[str, str]:
        if self._exit is None:
            exit_stack = contextlib.ExitStack()
            s = exit_stack.enter_context(_stack_in_temp_folder(
                TEST_BASE_PORT + OTHER_STACK_PORT_OFFSET, "loupe-test-other-"))
            self._exit = exit_stack
            try:
                s.start(services=True)
            except BaseException:
                self.stop()
                raise
            self.env = read_env(s.layout.env_file)
        return self.env

    def stop(self) -> None:
        if self._exit is not None:
            exit_stack, self._exit = self._exit, None
            exit_stack.close()


_OTHER = _OtherInstall()


@pytest.fixture(scope="module")
def other_live_env(live) -> dict[str, str]:
    """A second whole Loupe install (its own PostgreSQL, MinIO, Kafka, TorchServe, services and
    first account): what another installation (or Azure) is to the first. Its LOUPE_ENDPOINT
    and keys, as `live_env`. Started for the first module that asks for it, kept while the next
    modules ask for it too, then stopped (_OtherInstall); so the data of an earlier module
    may be in it."""
    return _OTHER.start()


def pytest_runtest_teardown(item, nextitem):
    if nextitem is None or _module_id(nextitem) not in _OTHER.modules:
        _OTHER.stop()


def pytest_sessionfinish(session):
    _OTHER.stop()


def _module_id(item) -> str:
    return item.nodeid.split("::")[0]


@pytest.fixture(scope="session")
def internal_secret(stack) -> str:
    """The test stack's LOUPE_INTERNAL_SECRET (in-process servers of the service tier use it too)."""
    return stack.secrets()["INTERNAL_SECRET"]


@pytest.fixture(scope="session")
def credentials(internal_secret) -> dict[str, str]:
    """The internal credential of each role (internal_auth.ROLES): tests call the internal
    servers as the service whose calls they stand for."""
    return {role: internal_auth.credential(internal_secret, role) for role in internal_auth.ROLES}


@pytest.fixture(scope="session")
def infra(stack):
    """PostgreSQL, MinIO, Kafka and TorchServe running, database and topics created."""
    stack.start(services=False)
    return stack


@pytest.fixture(scope="session")
def live(infra):
    """The whole system running (infrastructure + the five services), with an account."""
    infra.start(services=True)
    return infra


@pytest.fixture(scope="session")
def live_env(live) -> dict[str, str]:
    """LOUPE_ENDPOINT, LOUPE_TRAINING_KEY, LOUPE_PREDICTION_KEY, LOUPE_PREDICTION_RESOURCE_ID."""
    return read_env(live.layout.env_file)


@pytest.fixture(scope="session")
def postgres_dsn(request) -> str:
    """DSN of a real PostgreSQL database for service tests.

    LOUPE_TEST_POSTGRES_DSN points at an already running server (developer loop); otherwise
    the test stack's PostgreSQL is used.
    """
    if os.environ.get("LOUPE_TEST_POSTGRES_DSN"):
        return os.environ["LOUPE_TEST_POSTGRES_DSN"]
    return request.getfixturevalue("infra").postgres_dsn()


@pytest.fixture(scope="session")
def s3_config(infra) -> dict[str, str]:
    env = infra.service_env()
    return {k: env[k] for k in env if k.startswith("LOUPE_S3_")}


@pytest.fixture(scope="session")
def kafka_bootstrap(infra) -> str:
    return infra.layout.addr("kafka")


_TIER_BY_FOLDER = {"unit": "unit", "model": "model", "service": "service", "e2e": "e2e"}


def pytest_collection_modifyitems(items):
    """Each test's tier follows its folder (tests/unit, tests/model, tests/service, tests/e2e),
    so `-m unit` never misses a test that forgot its marker. Also notes which modules need
    the second install (other_live_env)."""
    _OTHER.modules = {_module_id(item) for item in items if "other_live_env" in item.fixturenames}
    for item in items:
        folder = item.path.parent.name
        if folder in _TIER_BY_FOLDER:
            item.add_marker(getattr(pytest.mark, _TIER_BY_FOLDER[folder]))
