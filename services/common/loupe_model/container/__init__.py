"""Exporting an iteration as a container (Custom Vision's "DockerFile" export).

The zip holds what Custom Vision's DockerFile export holds, laid out the same way:

    Dockerfile                      python:3.11 slim, pinned; builds for amd64 and arm64
    README.md                       how to build, run and call it
    app/app.py                      the server (this package's app.py)
    app/requirements.txt            its pinned dependencies (numpy, Pillow, onnxruntime)
    app/model.onnx                  the ONNX export: backbone, head and softmax/sigmoid in one graph
    app/labels.txt                  one tag name per output column
    app/metadata_properties.json    tag ids, project and iteration ids, preprocessing
    app/loupe_model/preprocess.py   verbatim copies of Loupe's own preprocessing (and the PNG
    app/loupe_model/pngstrips.py    strip reader it uses), so the server's pixels are the service's

Only onnx is needed to build it (the model is composed by loupe_model.export), no torch.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

from loupe_model.export import export_onnx_classifier, preprocessing
from loupe_model.export import INPUT, PROBABILITIES, EXPORT_FORMAT, EXPORT_FORMAT_VERSION
from loupe_model.head import Head

_HERE = Path(__file__).resolve().parent
_PACKAGE = _HERE.parent
#: The base image: a patch release of the multi-arch official image (bookworm, as Loupe's own
#: cluster images).
PYTHON_TAG = "3.11.14-slim-bookworm"
#: The flavors (Custom Vision's ExportFlavor) and what each pins.
FLAVOR_PLATFORMS = {"Linux": None, "ARM": "linux/arm64"}
#: The files of Loupe's preprocessing that travel with the server, unchanged.
PREPROCESSING_FILES = ("preprocess.py", "pngstrips.py")
_PACKAGE_INIT = '''"""Loupe's image preprocessing, copied unchanged from the Loupe that exported this model."""
'''

_README = """\
# Loupe exported classifier ({flavor})

A container that classifies images with iteration `{iteration}` of project `{project}`
({tags} tags: {tag_list}) and answers like a Custom Vision exported container.

## Build

    docker build -t classifier .{build_note}
    docker buildx build --platform linux/arm64 -t classifier:arm64 --load .   # for arm64 devices

## Run

    docker run --rm -p 127.0.0.1:8080:80 classifier

## Call

    curl http://127.0.0.1:8080/                                   # CustomVision.ai model host harness
    curl -X POST http://127.0.0.1:8080/image -H "Content-Type: application/octet-stream" \\
         --data-binary @photo.jpg
    curl -X POST http://127.0.0.1:8080/image -F imageData=@photo.jpg
    curl -X POST http://127.0.0.1:8080/url -H "Content-Type: application/json" \\
         -d '{{"url": "https://example.com/photo.jpg"}}'

The aliases `/<project>/image[/nostore]`, `/<project>/classify/iterations/<name>/image[/nostore]`
and the same with `url` answer the same. The answer:

    {{"id": "...", "project": "{project}", "iteration": "{iteration}",
     "created": "2026-01-01T12:00:00.000000",
     "predictions": [{{"tagName": "...", "probability": 0.98, "tagId": "...", "boundingBox": null}}]}}

Images over 4 MB are refused (413; MAX_IMAGE_BYTES changes it). Settings by environment:
PORT (80), MAX_IMAGE_BYTES, WORKERS (concurrent predictions, 2), ORT_THREADS (0: one per core).

Without Docker: `python3 -m venv venv && venv/bin/pip install -r app/requirements.txt &&
venv/bin/python app/app.py --port 8080`.

In Azure IoT Edge, name the module `classifier` and post camera frames to
http://classifier/image, as the cameraCapture sample does.
"""


def _source(name: str) -> bytes:
    return (_PACKAGE / name).read_bytes()


def server_files() -> dict[str, bytes]:
    """The server's files as they go into the zip under app/ (model files aside)."""
    files = {
        "app.py": (_HERE / "app.py").read_bytes(),
        "requirements.txt": (_HERE / "requirements.txt").read_bytes(),
        "loupe_model/__init__.py": _PACKAGE_INIT.encode(),
    }
    for name in PREPROCESSING_FILES:
        files[f"loupe_model/{name}"] = _source(name)
    return files


def dockerfile(flavor: str) -> str:
    """The Dockerfile of a flavor ("Linux": the builder's architecture; "ARM": linux/arm64)."""
    if flavor not in FLAVOR_PLATFORMS:
        raise ValueError(f"unknown container flavor {flavor!r}")
    arch = FLAVOR_PLATFORMS[flavor]
    if arch:
        note = (f"Flavor {flavor}: FROM names --platform={arch}, so the image is {arch} wherever it is "
                "built\n# (on an amd64 host that needs QEMU's binfmt handlers, e.g. docker buildx).")
        flag = f"--platform={arch} "
    else:
        note = "Flavor Linux: the image is built for the builder's own (or buildx's --platform) architecture."
        flag = ""
    text = (_HERE / "Dockerfile").read_text(encoding="utf-8")
    # Plain replacement, not str.format: the comments hold braces of their own.
    for key, value in (("{python_tag}", PYTHON_TAG), ("{platform_flag}", flag), ("{flavor_note}", note)):
        text = text.replace(key, value)
    return text


def container_zip(head: Head, backbone_onnx_path: str | os.PathLike[str], flavor: str,
                  project_id: str, iteration_id: str) -> bytes:
    """The downloadable DockerFile export.

    Args:
        head: the iteration's head.
        backbone_onnx_path: its backbone's ONNX (see export.export_onnx_classifier).
        flavor: "Linux" or "ARM".
        project_id, iteration_id: the iteration, reported in every prediction.

    Returns:
        The zip file's bytes.

    Raises:
        ValueError: an unknown flavor, or a backbone that does not match the head.
    """
    docker = dockerfile(flavor)
    model = export_onnx_classifier(head, backbone_onnx_path)
    props = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "backbone": head.backbone,
        "classification_type": head.classification_type,
        "project_id": project_id,
        "iteration_id": iteration_id,
        "tags": [{"id": i, "name": n} for i, n in zip(head.tag_ids, head.tag_names)],
        "input": INPUT,
        "output": PROBABILITIES,
        "preprocessing": preprocessing(head.image_size),
    }
    readme = _README.format(
        flavor=flavor, project=project_id, iteration=iteration_id, tags=len(head.tag_ids),
        tag_list=", ".join(head.tag_names),
        build_note="   # an arm64 image (FROM pins linux/arm64)" if FLAVOR_PLATFORMS[flavor] else "",
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Dockerfile", docker)
        zf.writestr("README.md", readme)
        for name, data in server_files().items():
            zf.writestr(f"app/{name}", data)
        zf.writestr("app/model.onnx", model)
        zf.writestr("app/labels.txt", "".join(f"{name}\n" for name in head.tag_names))
        zf.writestr("app/metadata_properties.json", json.dumps(props, indent=2) + "\n")
    return buf.getvalue()
