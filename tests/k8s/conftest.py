"""The k8s tier: Loupe's chart on the single-node Kubernetes that `make k8s-up` builds and runs.

The first run builds the cluster (Kubernetes from the Go module proxy, the images) into the
Loupe cache; later runs reuse it. The tests reach Loupe through 127.0.0.1 only (the gateway's
NodePort on loopback, the API server on 127.0.0.1:6443, which proxies to pods for their
metrics). They run last in `make test`, and use the checkout's cluster (`.loupe/k8s`): what they
change (image tag, replicas) they set back.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluster_client import Cluster
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
    from loupe_cluster.__main__ import layout
    from loupe_cluster.cluster import Cluster as Node

    node = Node(layout())
    was_running = node.running() and node.layout.owner() in (None, node.layout.data.resolve())
    # pytest's pythonpath (pyproject) reaches the child too, whether or not make set PYTHONPATH.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-m", "loupe_cluster", "up"], check=True, cwd=REPO, env=env)
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
