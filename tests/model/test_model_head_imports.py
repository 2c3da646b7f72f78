"""A head is applied in a fresh interpreter that never imports the heavy model stack."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from loupe_model.head import LINEAR, MLP, train_head

pytestmark = pytest.mark.model


@pytest.mark.parametrize("kind", [LINEAR, MLP])
def test_applying_a_head_needs_neither_torch_nor_sklearn(tmp_path, kind):
    rng = np.random.default_rng(12)
    centres = np.random.default_rng(1234).normal(size=(2, 64)) * 3
    x = np.concatenate([c + rng.normal(size=(4, 64)) for c in centres]).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[np.repeat(np.arange(2), 4)]
    head = train_head(x, y, False, 0, ["id-0", "id-1"], ["tag 0", "tag 1"], "lite0", kind=kind)
    (tmp_path / "head.npz").write_bytes(head.to_bytes())
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", head.predict_proba(x))
    code = (
        "import sys, numpy as np\n"
        "from loupe_model.head import Head\n"
        f"h = Head.from_bytes(open({str(tmp_path / 'head.npz')!r}, 'rb').read())\n"
        f"p = h.predict_proba(np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"assert h.kind == {kind!r} and np.array_equal(p, np.load({str(tmp_path / 'want.npy')!r}))\n"
        "heavy = [m for m in ('torch', 'sklearn', 'onnxruntime') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
