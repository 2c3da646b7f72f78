"""The `loupe` command line against the running system: upload, train with progress, predict."""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from loupe_cli.__main__ import main
from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CLASSES = {0: "tshirt", 1: "trouser", 7: "sneaker"}


def _cli(live_env, capsys, *args: str) -> tuple[int, str, str]:
    flags = ["--endpoint", live_env["LOUPE_ENDPOINT"], "--training-key", live_env["LOUPE_TRAINING_KEY"],
             "--prediction-key", live_env["LOUPE_PREDICTION_KEY"]]
    code = main(flags + list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_uploads_trains_with_progress_publishes_and_predicts(live_env, api, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LOUPE_PREDICTION_RESOURCE_ID", live_env["LOUPE_PREDICTION_RESOURCE_ID"])
    images = load_fashion_mnist("train", tuple(CLASSES), 13, seed=11)
    for position, name in enumerate(CLASSES.values()):  # labels are positions in the classes given
        (tmp_path / name).mkdir()
        for i, (data, _) in enumerate(img for img in images if img[1] == position):
            (tmp_path / name / f"{i}.png").write_bytes(data)
    held_out = {name: tmp_path / name / "12.png" for name in CLASSES.values()}
    for path in held_out.values():
        path.rename(tmp_path / f"test-{path.parent.name}.png")
    (tmp_path / "trouser" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")

    code, out, _ = _cli(live_env, capsys, "domains")
    assert code == 0 and "General (compact)" in out
    name = f"cli-{uuid.uuid4().hex[:6]}"
    code, out, _ = _cli(live_env, capsys, "create-project", name, "--domain", "General (compact)")
    assert code == 0
    pid = out.strip()
    assert api.train("GET", f"/projects/{pid}")["settings"]["domainId"] == next(
        d["id"] for d in api.train("GET", "/domains") if d["name"] == "General (compact)")

    for tag in CLASSES.values():
        code, out, err = _cli(live_env, capsys, "upload", name, str(tmp_path / tag), "--tag", tag)
        if tag == "trouser":
            # The corrupt file is refused by name; the others are stored; the exit status says so.
            assert code == 1 and "12 OK" in out and "1 ErrorImageFormat" in out
            assert "broken.png: ErrorImageFormat" in err
        else:
            assert code == 0 and out.strip() == "uploaded: 12 OK"
        assert "uploaded 12/" in err or "uploaded 13/13" in err
    assert api.train("GET", f"/projects/{pid}/images/tagged/count") == 36

    code, out, _ = _cli(live_env, capsys, "tags", name)
    assert code == 0 and all(f" {tag} " in out for tag in CLASSES.values())

    code, out, err = _cli(live_env, capsys, "train", name)
    assert code == 0, err
    # Not a terminal here: one progress line per stage change or 10 points, ending at 100%.
    progress = [line for line in err.splitlines() if line.startswith("[")]
    assert progress and progress[-1].startswith("[" + "#" * 30 + "] 100.0% completed"), err
    stages = {line.split("%", 1)[1].split()[0] for line in progress[:-1]}
    assert stages and stages <= {"queued", "loading", "features", "evaluating", "training", "saving"}, err
    assert "Completed" in out and "held-out performance at threshold 0.5: precision" in out
    assert all(f"\n{tag} " in out for tag in CLASSES.values())
    iteration_id = out.split("iteration ", 1)[1].split(":", 1)[0]

    code, out, err = _cli(live_env, capsys, "train", pid)
    assert code == 1 and "BadRequestTrainingNotNeeded" in err

    code, out, _ = _cli(live_env, capsys, "publish", name, iteration_id, "cli-live")
    assert code == 0
    code, out, _ = _cli(live_env, capsys, "predict", name, "cli-live", "--no-store", "--json", "--top", "1",
                        *(str(tmp_path / f"test-{tag}.png") for tag in CLASSES.values()))
    assert code == 0
    results = json.loads(out)
    assert [r["predictions"][0]["tagName"] for r in results] == list(CLASSES.values())
    assert api.train("GET", f"/projects/{pid}/images/untagged/count") == 0  # --no-store stored nothing

    code, out, _ = _cli(live_env, capsys, "iterations", name)
    assert code == 0 and "Completed" in out and "cli-live" in out

    # Improve from what it predicted: a kept prediction, listed, then added with its true tag.
    code, out, _ = _cli(live_env, capsys, "predict", name, "cli-live", str(tmp_path / "test-sneaker.png"))
    assert code == 0 and out.startswith(str(tmp_path / "test-sneaker.png") + ": sneaker ")
    deadline = time.monotonic() + 30
    while True:  # predictions are recorded asynchronously (Kafka)
        code, out, _ = _cli(live_env, capsys, "predictions", name, "--iteration", iteration_id)
        listed = [line.split() for line in out.splitlines()[1:]]
        if listed or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert code == 0 and len(listed) == 1 and listed[0][2] == "sneaker", out
    code, out, _ = _cli(live_env, capsys, "add-predictions", name, listed[0][0], "--tag", "sneaker")
    assert code == 0 and out.strip() == f"{listed[0][0]}: OK"
    assert api.train("GET", f"/projects/{pid}/images/tagged/count") == 37
    code, _, err = _cli(live_env, capsys, "add-predictions", name, str(uuid.uuid4()), "--tag", "sneaker")
    assert code == 1 and "ErrorSource" in err

    model = tmp_path / "model.zip"
    code, out, err = _cli(live_env, capsys, "export", name, iteration_id, "-o", str(model))
    assert code == 0, err
    with zipfile.ZipFile(model) as archive:
        assert any(n.endswith(".onnx") for n in archive.namelist()), archive.namelist()

    code, _, err = _cli(live_env, capsys, "tags", f"no-such-{uuid.uuid4().hex[:6]}")
    assert code == 1 and "NotFound" in err
    code, _, err = _cli(live_env, capsys, "create-project", "x", "--domain", "no such domain")
    assert code == 1 and "General (compact)" in err


def test_bin_loupe_runs_the_cli_from_the_checkout(live_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(LOUPE_ENDPOINT=live_env["LOUPE_ENDPOINT"], LOUPE_TRAINING_KEY=live_env["LOUPE_TRAINING_KEY"])
    done = subprocess.run([str(REPO / "bin" / "loupe"), "projects"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == ["ID", "NAME", "TYPE"]
