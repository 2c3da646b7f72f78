"""Container images built on this machine, with no registry: a Debian base made by mmdebstrap,
the project's Dockerfiles built by buildah on it, and the results imported into the cluster's
containerd. Each image is tagged with a hash of what went into it, so an unchanged image is
neither rebuilt nor imported again.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("loupe_cluster")

REPO = Path(__file__).resolve().parents[3]
IMAGES = REPO / "deploy" / "images"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: What the base has: the rest comes from each Dockerfile's own apt-get.
BASE_PACKAGES = ("ca-certificates",)
BASE_VERSION = "1"  # bump to rebuild the base
REGISTRY = "loupe.local"
#: Free disk below which older images leave containerd before a new one comes in: the Loupe
#: image takes about 15 GB there (layers and their unpacked snapshots).
IMPORT_ROOM = 24 * 10**9


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log.info("$ %s", " ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


def tree_hash(paths: list[Path], extra: str = "") -> str:
    """A hash of the files under `paths` (names and contents, __pycache__ left out)."""
    h = hashlib.sha256(extra.encode())
    for root in paths:
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for f in files:
            h.update(str(f.relative_to(REPO) if f.is_relative_to(REPO) else f.name).encode())
            h.update(b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    return h.hexdigest()[:12]


class Images:
    """Builds the images and loads them into containerd (namespace k8s.io, the CRI's)."""

    def __init__(self, cache: Path, containerd_sock: Path):
        self.cache = cache
        self.work = cache / "k8s" / "images"
        self.work.mkdir(parents=True, exist_ok=True)
        self.sock = containerd_sock

    # -- containerd ----------------------------------------------------------------------------
    def _ctr(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "--address", str(self.sock), "-n", "k8s.io", *args], **kw)

    def loaded(self, ref: str) -> bool:
        r = self._ctr("images", "ls", "-q", capture_output=True, text=True)
        return ref in r.stdout.split()

    def load(self, ref: str) -> None:
        """Streams a buildah image into containerd through a named pipe.

        No archive is written: the Loupe image is about 7 GB, and a whole copy of it on disk
        between buildah's store and containerd's helped push a full machine into the kubelet's
        DiskPressure (every pod evicted). buildah still spools one layer at a time in /var/tmp
        (it must know a layer's size before writing it into the stream): measured on the Loupe
        image, the free disk fell by 12 GB at the peak, 6 GB of it that spool, instead of 19 GB.
        """
        if self.loaded(ref):
            return
        with tempfile.TemporaryDirectory(prefix="export-", dir=self.work) as tmp:
            pipe = Path(tmp) / "image.tar"
            os.mkfifo(pipe)
            log.info("$ buildah push %s docker-archive:%s | ctr images import", ref, pipe)
            push = subprocess.Popen(["buildah", "push", "--quiet", ref, f"docker-archive:{pipe}:{ref}"])
            imp = subprocess.Popen(["ctr", "--address", str(self.sock), "-n", "k8s.io", "images",
                                    "import", str(pipe)], stdout=subprocess.DEVNULL)
            try:
                # Either side failing leaves the other blocked on the pipe: stop it then.
                while push.poll() is None or imp.poll() is None:
                    if push.poll() not in (None, 0) or imp.poll() not in (None, 0):
                        break
                    time.sleep(0.2)
            finally:
                for proc in (push, imp):
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()
            if push.returncode or imp.returncode:
                raise subprocess.CalledProcessError(push.returncode or imp.returncode,
                                                    f"buildah push {ref} | ctr images import")
        if not self.loaded(ref):
            raise RuntimeError(f"containerd does not list {ref} after the import")

    # -- buildah ---------------------------------------------------------------------------------
    @staticmethod
    def built(ref: str) -> bool:
        return subprocess.run(["buildah", "inspect", "--type", "image", ref],
                              capture_output=True).returncode == 0

    def base(self) -> str:
        """The Debian base every image starts from (mmdebstrap, about 100 s once)."""
        ref = f"{REGISTRY}/debian:{DEBIAN_SUITE}-{BASE_VERSION}"
        if self.built(ref):
            return ref
        tarball = self.work / f"debian-{DEBIAN_SUITE}-{BASE_VERSION}.tar"
        if not tarball.exists():
            log.info("making the Debian %s base with mmdebstrap (first run only)", DEBIAN_SUITE)
            partial = tarball.with_name(tarball.stem + ".partial.tar")
            _run(["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(BASE_PACKAGES)}",
                  "--aptopt=APT::Install-Recommends \"false\"",
                  "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
                  DEBIAN_SUITE, str(partial), DEBIAN_MIRROR])
            partial.rename(tarball)
        ctr = subprocess.run(["buildah", "from", "scratch"], check=True, capture_output=True,
                             text=True).stdout.strip()
        try:
            _run(["buildah", "add", "--quiet", ctr, str(tarball), "/"])
            _run(["buildah", "config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                  "--env", "LANG=C.UTF-8", "--cmd", "/bin/sh", ctr])
            _run(["buildah", "commit", "--quiet", "--rm", ctr, ref])
        except BaseException:
            subprocess.run(["buildah", "rm", ctr], capture_output=True)
            raise
        return ref

    def pause(self, binary: Path) -> str:
        """The pod sandbox image: the static pause binary alone."""
        ref = f"{REGISTRY}/pause:{tree_hash([binary])}"
        if self.built(ref):
            return ref
        ctr = subprocess.run(["buildah", "from", "scratch"], check=True, capture_output=True,
                             text=True).stdout.strip()
        try:
            _run(["buildah", "copy", "--quiet", "--chmod", "0755", ctr, str(binary), "/pause"])
            _run(["buildah", "config", "--entrypoint", '["/pause"]', "--user", "65535:65535", ctr])
            _run(["buildah", "commit", "--quiet", "--rm", ctr, ref])
        except BaseException:
            subprocess.run(["buildah", "rm", ctr], capture_output=True)
            raise
        return ref

    def bud(self, ref: str, dockerfile: Path, context: Path, base: str, volumes: list[str] = (),
            build_args: dict[str, str] | None = None) -> str:
        if self.built(ref):
            return ref
        cmd = ["buildah", "bud", "--quiet", "--layers", "--pull=never", "--network=host",
               "--isolation=chroot", "-f", str(dockerfile), "-t", ref, "--build-arg", f"BASE={base}"]
        for k, v in (build_args or {}).items():
            cmd += ["--build-arg", f"{k}={v}"]
        for v in volumes:
            cmd += ["-v", v]
        _run(cmd + [str(context)], stdout=subprocess.DEVNULL)
        return ref

    def _prune_built(self, stale) -> None:
        listing = subprocess.run(["buildah", "images", "--format", "{{.Name}}:{{.Tag}}"],
                                 capture_output=True, text=True).stdout.split()
        for ref in filter(stale, listing):
            log.info("removing the old image %s", ref)
            subprocess.run(["buildah", "rmi", "--force", ref], capture_output=True)
        subprocess.run(["buildah", "rmi", "--prune", "--force"], capture_output=True)  # layers no image uses

    def prune(self, keep: dict[str, str]) -> None:
        """Removes every other tag of the images in `keep` (role -> reference) from buildah's
        store and from containerd, and the wheel folders of other lock files: each Loupe image
        is about 7 GB, and a machine that builds one per change would fill its disk."""
        names = {ref.rpartition(":")[0] for ref in keep.values()}
        wanted = set(keep.values())

        def stale(ref: str) -> bool:
            return ref.rpartition(":")[0] in names and ref not in wanted

        self._prune_built(stale)
        loaded = self._ctr("images", "ls", "-q", capture_output=True, text=True).stdout.split()
        for ref in filter(stale, loaded):
            self._ctr("images", "rm", ref, capture_output=True)  # containers running keep their snapshots
        # The kubelet also names each image it ran by its id (`sha256:...`): once the tag is
        # gone, that name alone would keep the old image's 7 GB of content.
        rows = [line.split() for line in self._ctr("images", "ls", capture_output=True,
                                                   text=True).stdout.splitlines()[1:] if line.strip()]
        tagged = {row[2] for row in rows if not row[0].startswith("sha256:")}
        for row in rows:
            if row[0].startswith("sha256:") and row[2] not in tagged:
                log.info("removing the untagged image %s", row[0])
                self._ctr("images", "rm", row[0], capture_output=True)
        current = self.work / "wheels" / tree_hash([REPO / "requirements.lock"])
        for folder in (self.work / "wheels").glob("*"):
            if folder != current:
                shutil.rmtree(folder, ignore_errors=True)

    # -- the images the chart runs ---------------------------------------------------------------
    def wheels(self) -> Path:
        """Every file requirements.lock names, in a folder mounted into the Loupe image's build.

        `pip download` keeps the files as the index has them, so their hashes are the lock's.
        """
        req = REPO / "requirements.lock"
        folder = self.work / "wheels" / tree_hash([req])
        if (folder / ".complete").exists():
            return folder
        log.info("collecting wheels for the image (pip's cache makes this quick after make deps)")
        folder.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
              "--no-deps", "--require-hashes", "-d", str(folder), "-r", str(req)])
        (folder / ".complete").write_text("")
        return folder

    def loupe(self, base: str) -> str:
        tag = tree_hash([IMAGES / "Dockerfile", IMAGES / "loupe-torchserve", REPO / "requirements.lock",
                         REPO / "services"])
        ref = f"{REGISTRY}/loupe:{tag}"
        if self.built(ref):
            return ref
        # Running pods use containerd's copy: buildah's older Loupe images can go before the
        # build, so the disk holds two of them at most while it runs.
        self._prune_built(lambda r: r.startswith(f"{REGISTRY}/loupe:"))
        wheels = self.wheels()
        return self.bud(ref, IMAGES / "Dockerfile", REPO, base, volumes=[f"{wheels}:/wheels:ro"],
                        build_args={"PIP_ARGS": "--no-index --find-links /wheels"})

    def _context(self, name: str, files: dict[str, Path]) -> Path:
        ctx = Path(tempfile.mkdtemp(prefix=f"loupe-{name}-", dir=self.work))
        for f in (IMAGES / name).iterdir():
            shutil.copy2(f, ctx / f.name)
        for dest, src in files.items():
            if src.is_dir():
                shutil.copytree(src, ctx / dest)
            else:
                shutil.copy2(src, ctx / dest)
        return ctx

    def infra(self, name: str, base: str, files: dict[str, Path] | None = None) -> str:
        files = files or {}
        tag = tree_hash([IMAGES / name, *files.values()], extra=base)
        ref = f"{REGISTRY}/{name}:{tag}"
        if self.built(ref):
            return ref
        ctx = self._context(name, files)
        try:
            return self.bud(ref, ctx / "Dockerfile", ctx, base)
        finally:
            shutil.rmtree(ctx, ignore_errors=True)


def build_and_load(cache: Path, containerd_sock: Path, pause_binary: Path) -> dict[str, str]:
    """Builds every image (or finds it) and makes sure containerd has it.

    Returns:
        role -> image reference: pause, loupe, postgresql, minio, kafka.
    """
    sys.path.insert(0, str(REPO / "deploy" / "local"))
    from loupe_stack import install  # the pinned MinIO and Kafka the local stack also uses

    images = Images(cache, containerd_sock)
    # Working containers of a build that was killed hold their layers: none is in use now (the
    # caller holds the command lock).
    subprocess.run(["buildah", "rm", "--all"], capture_output=True)
    refs = {"pause": images.pause(pause_binary)}
    base = images.base()
    refs["postgresql"] = images.infra("postgresql", base)
    refs["minio"] = images.infra("minio", base, {"minio": install.ensure_minio()})
    kafka_files = REPO / "deploy/helm/loupe/files/kafka"  # the start script the chart also mounts
    refs["kafka"] = images.infra("kafka", base, {
        "libs": install.ensure_kafka(), "run.sh": kafka_files / "run.sh",
        "log4j2.properties": kafka_files / "log4j2.properties"})
    refs["loupe"] = images.loupe(base)
    free = shutil.disk_usage(images.work).free
    if free < IMPORT_ROOM and not all(images.loaded(ref) for ref in refs.values()):
        # containerd holds an image twice (its layers and their unpacked snapshots): with the
        # old build still there, a new one may not fit. Running pods keep their snapshots.
        log.warning("%.1f GB free: removing the older images from containerd before the import",
                    free / 1e9)
        images.prune(refs)
    for ref in refs.values():
        images.load(ref)
    return refs
