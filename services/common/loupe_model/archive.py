"""Builds the TorchServe model archive (.mar) of a backbone.

The archive holds the ONNX export (serialized file), the handler, and this `loupe_model`
package as extra files, so the handler preprocesses exactly like training does.

CLI: `python -m loupe_model.archive --out DIR [--backbone lite0] [--cache-dir DIR]` prints the
path of the written .mar.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .backbone import DEFAULT_BACKBONE, BackboneSpec, ensure_onnx, get_backbone

_PACKAGE_DIR = Path(__file__).resolve().parent
# services/common/loupe_model/archive.py -> repository root.
_REPO_ROOT = _PACKAGE_DIR.parents[2]
DEFAULT_HANDLER = _REPO_ROOT / "services" / "prediction" / "torchserve" / "handler.py"
ARCHIVER_TIMEOUT_S = 600


def model_name(spec: BackboneSpec) -> str:
    """The TorchServe model name of a backbone, e.g. "loupe-backbone-lite0-ms1".

    It names the feature definition too: a TorchServe that still has a model registered from
    an older definition is never asked for the new embeddings under the old name.
    """
    return f"loupe-backbone-{spec.feature_id}"


def _archiver_command() -> list[str]:
    # Prefer the executable installed beside this interpreter (the venv's), then PATH.
    beside = Path(sys.executable).parent / "torch-model-archiver"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("torch-model-archiver")
    if found:
        return [found]
    return [sys.executable, "-m", "model_archiver.model_packaging"]


def build_mar(
    spec: BackboneSpec,
    cache_dir: str | os.PathLike[str] | None,
    export_path: str | os.PathLike[str],
    handler: str | os.PathLike[str] | None = None,
    version: str = "1.0",
) -> Path:
    """Exports the backbone (cached) and packs it with the handler into a .mar.

    Args:
        spec: the backbone.
        cache_dir: ONNX export cache (None: `default_cache_dir()`).
        export_path: directory that receives `<model_name(spec)>.mar` (replaced atomically).
        handler: the handler file; default services/prediction/torchserve/handler.py.
        version: model version recorded in the archive.

    Returns:
        Path of the .mar.

    Raises:
        FileNotFoundError: the handler file is missing.
        RuntimeError: torch-model-archiver failed (its output is in the message).
    """
    handler_path = Path(handler) if handler is not None else DEFAULT_HANDLER
    if not handler_path.is_file():
        raise FileNotFoundError(f"handler not found: {handler_path}")
    onnx_path = ensure_onnx(spec, cache_dir)
    name = model_name(spec)
    out_dir = Path(export_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.mar"

    with tempfile.TemporaryDirectory(prefix="loupe-mar-") as tmp:
        tmp_dir = Path(tmp)
        # torch-model-archiver copies the *contents* of a directory given as an extra file
        # into the archive root, so stage the package one level down to keep its name.
        stage = tmp_dir / "extra"
        (stage / "loupe_model").mkdir(parents=True)
        for source in sorted(_PACKAGE_DIR.glob("*.py")):
            shutil.copy2(source, stage / "loupe_model" / source.name)
        build_dir = tmp_dir / "out"
        build_dir.mkdir()
        cmd = _archiver_command() + [
            "--model-name", name,
            "--version", version,
            "--serialized-file", str(onnx_path),
            "--handler", str(handler_path),
            "--extra-files", str(stage),
            "--export-path", str(build_dir),
            "--archive-format", "default",
            "--force",
        ]
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=ARCHIVER_TIMEOUT_S, check=False
        )
        built = build_dir / f"{name}.mar"
        if result.returncode != 0 or not built.is_file():
            raise RuntimeError(
                f"torch-model-archiver failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        # Same filesystem is not guaranteed for a temp dir, so copy next to the target first.
        fd, partial = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=out_dir)
        os.close(fd)
        try:
            shutil.copyfile(built, partial)
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return target


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; prints the .mar path."""
    parser = argparse.ArgumentParser(description="Build the Loupe backbone TorchServe archive.")
    parser.add_argument("--out", required=True, help="directory for the .mar")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--cache-dir", default=None, help="ONNX export cache directory")
    parser.add_argument("--handler", default=None, help="handler file (default: the repo's)")
    args = parser.parse_args(argv)
    path = build_mar(get_backbone(args.backbone), args.cache_dir, args.out, handler=args.handler)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
