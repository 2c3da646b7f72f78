"""Builds the cluster's binaries once into the Loupe cache: Kubernetes, CoreDNS, helm, pause.

Kubernetes cannot be `go install`ed (its go.mod replaces every k8s.io/* staging module with a
local path), so a scratch module requires k8s.io/kubernetes at the pinned version and replaces
each `k8s.io/* v0.0.0` staging require with the published v0.X.Y module of the same release.
Every step is skipped while its stamp (the pinned version) is unchanged.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger("loupe_cluster")

#: Pinned: v1.35+ is said to drop containerd 1.x, which is what Debian bookworm ships.
KUBERNETES_VERSION = "v1.34.4"
COREDNS_MODULE = "github.com/coredns/coredns@v1.15.0"
HELM_MODULE = "helm.sh/helm/v3/cmd/helm@v3.22.0"
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")

PAUSE_SOURCE = """// pause: the pod sandbox's process. Sleeps until told to stop and reaps orphans (it is PID 1
// of the pod when the pod shares its PID namespace).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s == syscall.SIGCHLD {
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
"""


def _run(cmd: list[str], **kw) -> None:
    log.info("$ %s", " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def _stamped(path: Path, version: str) -> bool:
    stamp = path.with_name(path.name + ".version")
    return path.exists() and stamp.exists() and stamp.read_text().strip() == version


def _stamp(path: Path, version: str) -> None:
    path.with_name(path.name + ".version").write_text(version + "\n")


def _go_env(**extra: str) -> dict[str, str]:
    if shutil.which("go") is None:
        raise SystemExit("Go is needed to build the cluster's binaries (go build / go install)")
    return dict(os.environ, CGO_ENABLED="0", **extra)


def staging_replaces(kubernetes_gomod: str, version: str) -> dict[str, str]:
    """Maps every `k8s.io/<name> v0.0.0` require of Kubernetes' go.mod to its published version.

    Args:
        kubernetes_gomod: the text of k8s.io/kubernetes' go.mod.
        version: the Kubernetes release, e.g. "v1.34.4".

    Returns:
        module path -> "v0.34.4" for the same release.
    """
    major, minor, patch = version.lstrip("v").split(".")
    staging = f"v0.{minor}.{patch}"
    names = re.findall(r"^\s*(k8s\.io/[A-Za-z0-9._-]+) v0\.0\.0\s*$", kubernetes_gomod, flags=re.M)
    return {name: staging for name in sorted(set(names))}


def build_kubernetes(bin_dir: Path, work: Path) -> None:
    if all(_stamped(bin_dir / c, KUBERNETES_VERSION) for c in KUBE_COMMANDS):
        return
    log.info("building Kubernetes %s from the Go module proxy (first run only, 13-18 min on 2 cores)",
             KUBERNETES_VERSION)
    env = _go_env()
    mod = work / f"kubernetes-{KUBERNETES_VERSION}"
    mod.mkdir(parents=True, exist_ok=True)
    info = json.loads(subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
        check=True, capture_output=True, text=True, env=env, cwd=mod).stdout)
    replaces = staging_replaces(Path(info["GoMod"]).read_text(), KUBERNETES_VERSION)
    lines = ["module loupe.local/kubernetes-build", "", "go 1.24.0", "",
             f"require k8s.io/kubernetes {KUBERNETES_VERSION}", "", "replace ("]
    lines += [f"\t{name} => {name} {v}" for name, v in replaces.items()]
    lines += [")", ""]
    (mod / "go.mod").write_text("\n".join(lines))
    (mod / "go.sum").unlink(missing_ok=True)
    packages = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS]
    _run(["go", "get", *[f"{p}@{KUBERNETES_VERSION}" for p in packages]], env=env, cwd=mod)
    # Without these the binaries report a placeholder version (v0.0.0-master), which kubectl
    # and helm's version checks reject.
    ldflags = " ".join(
        f"-X {pkg}.{k}={v}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for k, v in (("gitVersion", KUBERNETES_VERSION), ("gitMajor", "1"),
                     ("gitMinor", KUBERNETES_VERSION.split(".")[1]), ("gitTreeState", "clean"))
    )
    bin_dir.mkdir(parents=True, exist_ok=True)
    _run(["go", "build", "-trimpath", "-ldflags", f"-s -w {ldflags}", "-o", str(bin_dir) + "/", *packages],
         env=env, cwd=mod)
    for c in KUBE_COMMANDS:
        _stamp(bin_dir / c, KUBERNETES_VERSION)


def go_install(bin_dir: Path, module: str, name: str) -> Path:
    target = bin_dir / name
    if _stamped(target, module):
        return target
    log.info("building %s with go install (first run only)", module)
    bin_dir.mkdir(parents=True, exist_ok=True)
    _run(["go", "install", "-trimpath", "-ldflags", "-s -w", module], env=_go_env(GOBIN=str(bin_dir)))
    _stamp(target, module)
    return target


def build_pause(bin_dir: Path, work: Path) -> Path:
    target = bin_dir / "pause"
    version = __import__("hashlib").sha256(PAUSE_SOURCE.encode()).hexdigest()[:16]
    if _stamped(target, version):
        return target
    src = work / "pause"
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text("module loupe.local/pause\n\ngo 1.24\n")
    (src / "main.go").write_text(PAUSE_SOURCE)
    _run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(target), "."], env=_go_env(), cwd=src)
    _stamp(target, version)
    return target


def build_all(cache: Path) -> Path:
    """Builds (or finds) every binary; returns the folder they are in."""
    bin_dir = cache / "k8s" / "bin"
    work = cache / "k8s" / "src"
    build_pause(bin_dir, work)
    go_install(bin_dir, HELM_MODULE, "helm")
    go_install(bin_dir, COREDNS_MODULE, "coredns")
    build_kubernetes(bin_dir, work)
    return bin_dir


if __name__ == "__main__":  # pragma: no cover
    import sys

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    build_all(Path(os.environ.get("LOUPE_CACHE", Path.home() / ".cache" / "loupe")))
