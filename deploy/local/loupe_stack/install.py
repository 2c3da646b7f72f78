"""Installs what the local stack needs, once; every step is skipped when already done."""
from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from loupe_stack.layout import REPO, cache_dir

log = logging.getLogger("loupe_stack")

#: Pinned versions. MinIO publishes no semver tags on the module proxy, so a pseudo-version
#: (a commit) is the pin.
MINIO_MODULE = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
KAFKA_VERSION = "4.1.1"  # keep in sync with deploy/local/kafka/pom.xml
DEBIAN_PACKAGES = {
    # package -> a file that proves it is installed
    "postgresql": "/usr/lib/postgresql",
    "dataset-fashion-mnist": "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
    # the browser of the web UI's end-to-end test (driven by playwright, no browser download)
    "chromium": "/usr/bin/chromium",
}


def _run(cmd: list[str], **kw) -> None:
    log.info("$ %s", " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def ensure_debian_packages() -> None:
    missing = [p for p, proof in DEBIAN_PACKAGES.items() if not Path(proof).exists()]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    _run(sudo + ["apt-get", "update", "-qq"], env=env)
    _run(sudo + ["apt-get", "install", "-y", "-qq", *missing], env=env)


def postgres_bin() -> Path:
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not versions:
        raise SystemExit("PostgreSQL server not found under /usr/lib/postgresql (apt-get install postgresql)")
    return Path(versions[-1]).parent


def minio_bin() -> Path:
    return cache_dir() / "go-bin" / "minio"


def ensure_minio() -> Path:
    target = minio_bin()
    stamp = target.with_suffix(".version")
    if target.exists() and stamp.exists() and stamp.read_text().strip() == MINIO_MODULE:
        return target
    if shutil.which("go") is None:
        raise SystemExit("Go is needed to build MinIO (go install)")
    log.info("building MinIO from the Go module proxy (first run only, a few minutes)")
    env = dict(os.environ, GOBIN=str(target.parent), CGO_ENABLED="0")
    _run(["go", "install", MINIO_MODULE], env=env)
    stamp.write_text(MINIO_MODULE + "\n")
    return target


def kafka_libs() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_kafka() -> Path:
    libs = kafka_libs()
    if libs.exists() and any(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        return libs
    log.info("resolving Apache Kafka %s jars from Maven Central", KAFKA_VERSION)
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _run(
        [
            "mvn", "-q", "-B", "-f", str(REPO / "deploy/local/kafka/pom.xml"),
            "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
        ]
    )
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs


def model_cache() -> Path:
    return cache_dir() / "models"


def ensure_model_archive() -> Path:
    """Builds the TorchServe archive of the shared backbone (ONNX inside) once."""
    from loupe_model.archive import build_mar  # imported late: needs the venv's torch
    from loupe_model.backbone import BACKBONES

    out = cache_dir() / "model-store"
    out.mkdir(parents=True, exist_ok=True)
    return build_mar(BACKBONES["lite0"], model_cache(), out)


def install_all() -> None:
    ensure_debian_packages()
    ensure_minio()
    ensure_kafka()
    ensure_model_archive()
    log.info("everything installed (cache: %s)", cache_dir())


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    install_all()
