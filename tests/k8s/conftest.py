"""The k8s tier: Loupe's chart on the single-node Kubernetes that `make k8s-up` builds and runs.

The first run builds the cluster (Kubernetes from the Go module proxy, the images) into the
Loupe cache; later runs reuse it. The tests reach Loupe through 127.0.0.1 only (the gateway's
NodePort on loopback, the API server on 127.0.0.1:6443, which proxies to pods for their
metrics). They run last in `make test`, and use the checkout's cluster (`.loupe/k8s`): what they
change (image tag, replicas) they set back.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from cluster_client import Cluster, cluster_node, cluster_up
from loupe_stack.stack import read_env
from rest_api import Api, sdk_clients

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(session, config, items):
    """Marks this folder's tests `k8s` and runs them after every other tier."""
    here = Path(__file__).parent
    mine = [i for i in items if here in i.path.parents]
    for item in mine:
        item.add_marker(pytest.mark.k8s)
    items[:] = [i for i in items if here not in i.path.parents] + mine


@pytest.fixture(scope="session")
def k8s_env():
    """Brings the cluster up (idempotent: builds on the first run) and reads .loupe/k8s/env.

    A cluster this run started is stopped at the end (its data stays): `make test` leaves
    running what ran before it, `make k8s-up`'s cluster included, and nothing else."""
    node = cluster_node()
    was_running = node.running() and node.layout.owner() in (None, node.layout.data.resolve())
    cluster_up()
    yield read_env(node.layout.env_file)
    if not was_running:
        node.stop()


@pytest.fixture(scope="session")
def cluster(k8s_env) -> Cluster:
    return Cluster(k8s_env)


@pytest.fixture(scope="session")
def k8s_api(k8s_env) -> Api:
    return Api(k8s_env["LOUPE_ENDPOINT"], k8s_env["LOUPE_TRAINING_KEY"], k8s_env["LOUPE_PREDICTION_KEY"],
               k8s_env["LOUPE_PREDICTION_RESOURCE_ID"])


@pytest.fixture(scope="session")
def k8s_clients(k8s_env):
    return sdk_clients(k8s_env)
