"""Exporting an iteration as one self-contained ONNX classifier (Custom Vision's "ONNX" export).

The exported graph is the backbone ONNX (`backbone.ensure_onnx`) with the head's exact math
appended as ONNX nodes: L2 normalisation of the embedding (norm clamped at 1e-12, as
`head.l2_normalize`), the hidden ReLU layer of an Advanced head when it has one, the output
layer (the logit scale is already folded into the stored weights, see `head.train_head`), then
softmax over tags (Multiclass) or a per-tag sigmoid
(Multilabel). Only onnx is needed here, no torch: the graphs are composed, not re-traced.

What the graph does not contain is the image decoding and resizing (no ONNX operator reproduces
Pillow's antialiased bilinear resize); that part is written down, in the model's
`metadata_props` and in `metadata_properties.json` next to it in the zip, precisely enough to
reproduce `preprocess.preprocess_bytes`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from . import preprocess
from .backbone import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME
from .head import Head

#: Output of the exported graph: (N, T) tag probabilities, columns in `labels.txt` order.
PROBABILITIES = "probabilities"
#: Input of the exported graph: (N, 3, S, S) float32, preprocessed as `preprocessing()` says.
INPUT = "data"
EXPORT_FORMAT = "loupe-onnx-classifier"
EXPORT_FORMAT_VERSION = 1
#: Same floor as head.l2_normalize: an all-zero embedding stays zero instead of NaN.
_NORM_FLOOR = 1e-12


def preprocessing(image_size: int) -> dict:
    """How an image becomes the exported model's input (mirrors preprocess.preprocess_bytes).

    Args:
        image_size: the square input side.

    Returns:
        A JSON-ready description.
    """
    return {
        "input_name": INPUT,
        "input_shape": ["N", 3, image_size, image_size],
        "input_dtype": "float32",
        "layout": "NCHW",
        "color_order": "RGB",
        "decode": "first frame; EXIF orientation applied; grey, palette, 16-bit and CMYK "
        "converted to RGB; transparency composited onto white (255, 255, 255)",
        "resize": {
            "width": image_size,
            "height": image_size,
            "mode": "squash (whole image, aspect ratio not kept, no crop)",
            "filter": "bilinear, antialiased when downscaling (Pillow Image.resize "
            "Resampling.BILINEAR)",
        },
        "normalization": {
            "formula": "(pixel - mean) / std, pixel in 0..255",
            "mean": [preprocess.MEAN] * 3,
            "std": [preprocess.STD] * 3,
        },
        "reference": "loupe_model.preprocess.preprocess_bytes(data, size)",
    }


def _head_nodes(head: Head, embedding: str, output: str):
    """Nodes and initializers computing head.predict_proba from the embedding tensor."""
    from onnx import helper, numpy_helper

    weights_t = np.ascontiguousarray(np.asarray(head.weights, dtype=np.float32).T)
    bias = np.asarray(head.bias, dtype=np.float32)
    initializers = [
        numpy_helper.from_array(weights_t, "loupe_head_weights_t"),
        numpy_helper.from_array(bias, "loupe_head_bias"),
        numpy_helper.from_array(np.array(_NORM_FLOOR, dtype=np.float32), "loupe_head_norm_floor"),
    ]
    nodes = [
        helper.make_node("ReduceL2", [embedding], ["loupe_head_norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["loupe_head_norm", "loupe_head_norm_floor"], ["loupe_head_denom"]),
        helper.make_node("Div", [embedding, "loupe_head_denom"], ["loupe_head_unit"]),
    ]
    features = "loupe_head_unit"
    if head.hidden_weights is not None:
        hidden_t = np.ascontiguousarray(np.asarray(head.hidden_weights, dtype=np.float32).T)
        initializers += [
            numpy_helper.from_array(hidden_t, "loupe_head_hidden_weights_t"),
            numpy_helper.from_array(np.asarray(head.hidden_bias, dtype=np.float32), "loupe_head_hidden_bias"),
        ]
        nodes += [
            helper.make_node("MatMul", [features, "loupe_head_hidden_weights_t"], ["loupe_head_hidden_mm"]),
            helper.make_node("Add", ["loupe_head_hidden_mm", "loupe_head_hidden_bias"], ["loupe_head_hidden_pre"]),
            helper.make_node("Relu", ["loupe_head_hidden_pre"], ["loupe_head_hidden"]),
        ]
        features = "loupe_head_hidden"
    nodes += [
        helper.make_node("MatMul", [features, "loupe_head_weights_t"], ["loupe_head_mm"]),
        helper.make_node("Add", ["loupe_head_mm", "loupe_head_bias"], ["loupe_head_logits"]),
    ]
    if head.multilabel:
        nodes.append(helper.make_node("Sigmoid", ["loupe_head_logits"], [output]))
    else:
        nodes.append(helper.make_node("Softmax", ["loupe_head_logits"], [output], axis=1))
    return nodes, initializers


def metadata(head: Head) -> dict[str, str]:
    """The model's metadata_props (string values; structured ones as JSON)."""
    return {
        "loupe.format": EXPORT_FORMAT,
        "loupe.format_version": str(EXPORT_FORMAT_VERSION),
        "loupe.backbone": head.backbone,
        "loupe.classification_type": head.classification_type,
        "loupe.tags": json.dumps(list(head.tag_names)),
        "loupe.tag_ids": json.dumps(list(head.tag_ids)),
        "loupe.preprocessing": json.dumps(preprocessing(head.image_size)),
        "loupe.output": json.dumps({
            "name": PROBABILITIES,
            "shape": ["N", len(head.tag_ids)],
            "activation": "sigmoid per tag" if head.multilabel else "softmax over tags",
        }),
    }


def export_onnx_classifier(head: Head, backbone_onnx_path: str | os.PathLike[str]) -> bytes:
    """Builds the ONNX classifier of an iteration: backbone and head in one graph.

    Args:
        head: the iteration's head (`Head.from_bytes` of its artifact).
        backbone_onnx_path: the backbone the head was trained on (`ensure_onnx` of
            `get_backbone(head.backbone)`); its input must be (N, 3, S, S) with
            S == head.image_size and its output as long as the head's embedding.

    Returns:
        The serialised model: input "data" float32 (N, 3, S, S), output "probabilities"
        float32 (N, T); tags and preprocessing in metadata_props (see `metadata`).

    Raises:
        ValueError: the backbone does not match the head.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(backbone_onnx_path))
    graph = model.graph
    inputs = [i for i in graph.input if i.name == INPUT_NAME]
    outputs = [o for o in graph.output if o.name == OUTPUT_NAME]
    if not inputs or not outputs:
        raise ValueError(f"{backbone_onnx_path}: not a Loupe backbone ({INPUT_NAME} -> {OUTPUT_NAME})")
    dims = inputs[0].type.tensor_type.shape.dim
    side = dims[2].dim_value if len(dims) == 4 else 0
    if side != head.image_size:
        raise ValueError(f"backbone input side {side} != head image size {head.image_size}")
    dim = outputs[0].type.tensor_type.shape.dim
    if len(dim) == 2 and dim[1].dim_value and dim[1].dim_value != head.input_dim:
        raise ValueError(
            f"backbone embedding length {dim[1].dim_value} != head's {head.input_dim}"
        )

    # Rename the input to Custom Vision's "data" everywhere it is consumed.
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == INPUT_NAME:
                node.input[k] = INPUT
    inputs[0].name = INPUT

    nodes, initializers = _head_nodes(head, OUTPUT_NAME, PROBABILITIES)
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info(
            PROBABILITIES, onnx.TensorProto.FLOAT, ["batch", len(head.tag_ids)]
        )
    )
    graph.name = "loupe_classifier"
    model.producer_name = "loupe"
    model.doc_string = (
        f"Loupe {head.classification_type} classifier over {len(head.tag_ids)} tags "
        f"({head.backbone} backbone). Input '{INPUT}': RGB float32 (N, 3, {head.image_size}, "
        f"{head.image_size}), (pixel - {preprocess.MEAN:g}) / {preprocess.STD:g}; output "
        f"'{PROBABILITIES}' (N, T) in the order of metadata 'loupe.tags'."
    )
    del model.metadata_props[:]
    for key, value in metadata(head).items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    if not any(o.domain in ("", "ai.onnx") and o.version >= ONNX_OPSET for o in model.opset_import):
        raise ValueError(f"backbone opset is older than {ONNX_OPSET}")
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


_README = """\
# Loupe ONNX export

`model.onnx` is the whole classifier: backbone and head in one graph.

- Input `data`: float32 (N, 3, {size}, {size}), RGB, NCHW.
- Output `probabilities`: float32 (N, {tags}), one column per line of `labels.txt`
  ({activation}).

Preprocessing (also in `metadata_properties.json` and the model's metadata_props):
decode to RGB (EXIF orientation applied, transparency on white), resize the whole image to
{size}x{size} with a bilinear (antialiased) filter without cropping, then
(pixel - {mean:g}) / {std:g}.

```python
import numpy as np, onnxruntime as ort
from PIL import Image
img = Image.open("photo.jpg").convert("RGB").resize(({size}, {size}), Image.BILINEAR)
x = ((np.asarray(img, np.float32) - {mean:g}) / {std:g}).transpose(2, 0, 1)[None]
session = ort.InferenceSession("model.onnx")
probabilities = session.run(["probabilities"], {{"data": x}})[0][0]
labels = open("labels.txt").read().splitlines()
print(sorted(zip(probabilities, labels), reverse=True)[:3])
```
"""


def export_zip(head: Head, backbone_onnx_path: str | os.PathLike[str]) -> bytes:
    """The downloadable ONNX export: model.onnx, labels.txt, metadata_properties.json, README.md.

    Args:
        head: the iteration's head.
        backbone_onnx_path: see `export_onnx_classifier`.

    Returns:
        The zip file's bytes.
    """
    model = export_onnx_classifier(head, backbone_onnx_path)
    props = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "backbone": head.backbone,
        "classification_type": head.classification_type,
        "tags": [{"id": i, "name": n} for i, n in zip(head.tag_ids, head.tag_names)],
        "input": INPUT,
        "output": PROBABILITIES,
        "preprocessing": preprocessing(head.image_size),
    }
    readme = _README.format(
        size=head.image_size, tags=len(head.tag_ids), mean=preprocess.MEAN, std=preprocess.STD,
        activation="independent sigmoids" if head.multilabel else "softmax, rows sum to 1",
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.onnx", model)
        zf.writestr("labels.txt", "".join(f"{name}\n" for name in head.tag_names))
        zf.writestr("metadata_properties.json", json.dumps(props, indent=2) + "\n")
        zf.writestr("README.md", readme)
    return buf.getvalue()
