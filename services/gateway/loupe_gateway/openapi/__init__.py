"""The OpenAPI 3.0 document of the REST API (`GET /openapi.json`) and a page that renders it
(`GET /docs`, self-contained: no CDN, nothing fetched but the document).

The document is generated from the running app: every rule of `app.url_map` becomes a path (its
parameters, versions and methods from the rule), described by its entry in
`loupe_gateway.openapi.spec.OPERATIONS`. `undocumented(app)` and `unrouted(app)` name the drift
either way; a unit test keeps both empty.
"""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template

from loupe_gateway import versions
from loupe_gateway.openapi.spec import OPERATIONS, SCHEMAS, Op, Param

bp = Blueprint("openapi", __name__, static_folder="static", template_folder="templates",
               static_url_path="/docs/static")

_IGNORED_METHODS = {"HEAD", "OPTIONS"}
_PARAM = re.compile(r"<(?:(?P<conv>[a-zA-Z_]+)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_]+)>")
_ERROR = {"$ref": "#/components/schemas/CustomVisionError"}
_KEYS = {"training.": "Training-Key", "prediction.": "Prediction-Key"}
_VERSIONS = {"tver": versions.TRAINING_VERSIONS, "pver": versions.PREDICTION_VERSIONS}
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "img-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _documented(endpoint: str) -> bool:
    """Static file routes are not API operations."""
    return not (endpoint == "static" or endpoint.endswith(".static"))


def routes(app: Flask) -> dict[tuple[str, str], str]:
    """(endpoint, METHOD) -> rule, for every documented route of `app`."""
    out: dict[tuple[str, str], str] = {}
    for rule in app.url_map.iter_rules():
        if not _documented(rule.endpoint):
            continue
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            out[(rule.endpoint, method)] = rule.rule
    return out


def undocumented(app: Flask) -> list[str]:
    """Routes without an OPERATIONS entry."""
    return sorted(f"{m} {e}" for (e, m) in routes(app) if m not in OPERATIONS.get(e, {}))


def unrouted(app: Flask) -> list[str]:
    """OPERATIONS entries without a route."""
    have = routes(app)
    return sorted(f"{m} {e}" for e, ops in OPERATIONS.items() for m in ops if (e, m) not in have)


def schema(typ: str) -> dict[str, Any]:
    """A JSON schema from the mini-language of spec.SCHEMAS."""
    if typ.startswith("[") and typ.endswith("]"):
        return {"type": "array", "items": schema(typ[1:-1])}
    if typ.startswith("{") and typ.endswith("}"):
        return {"type": "object", "additionalProperties": schema(typ[1:-1])}
    if "|" in typ:
        return {"type": "string", "enum": typ.split("|")}
    simple = {
        "string": {"type": "string"},
        "uuid": {"type": "string", "format": "uuid"},
        "date-time": {"type": "string", "format": "date-time"},
        "integer": {"type": "integer"},
        "number": {"type": "number"},
        "boolean": {"type": "boolean"},
        "binary": {"type": "string", "format": "binary"},
    }
    if typ in simple:
        return dict(simple[typ])
    if typ not in SCHEMAS:
        raise KeyError(f"unknown schema {typ!r}")
    return {"$ref": f"#/components/schemas/{typ}"}


def _parameter(param: Param, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": param.name, "in": where, "required": param.required,
                           "schema": schema(param.type)}
    if param.type.startswith("["):
        out.update(style="form", explode=False)
    if param.description:
        out["description"] = param.description
    return out


def _operation(endpoint: str, method: str, rule: str, op: Op) -> dict[str, Any]:
    params: list[dict[str, Any]] = []
    for match in _PARAM.finditer(rule):
        conv, name = match.group("conv"), match.group("name")
        p: dict[str, Any] = {"name": _camel(name), "in": "path", "required": True,
                             "schema": {"type": "string"}}
        if conv in _VERSIONS:
            p["schema"] = {"type": "string", "enum": list(_VERSIONS[conv]),
                           "default": _VERSIONS[conv][-1]}
        params.append(p)
    params += [_parameter(q, "query") for q in op.query]
    out: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_") + ("" if method in ("GET", "POST")
                                                     else "_" + method.lower()),
        "summary": op.summary,
        "tags": [endpoint.split(".")[0] if "." in endpoint else "service"],
        "parameters": params,
    }
    if op.sdk:
        out["x-sdk-operation"] = op.sdk
    if op.body == "image":
        out["requestBody"] = {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "imageData": {"type": "string", "format": "binary"}}}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        }}
    elif op.body:
        out["requestBody"] = {"required": True,
                              "content": {"application/json": {"schema": schema(op.body)}}}
    responses: dict[str, Any] = {}
    for status in (op.status, *op.extra_statuses):
        if op.response is None:
            responses[str(status)] = {"description": "No content"}
        else:
            responses[str(status)] = {"description": "Success" if status == 200
                                      else "Some images failed (Multi-Status)",
                                      "content": {op.content_type: {"schema": schema(op.response)}}}
    key = next((h for prefix, h in _KEYS.items() if endpoint.startswith(prefix)), None)
    if key:
        out["security"] = [{key: []}]
        responses["401"] = {"description": "Missing or wrong key",
                            "content": {"application/json": {"schema": _ERROR}}}
        responses["429"] = {
            "description": "Rate limit of the key exceeded",
            "headers": {"Retry-After": {"schema": {"type": "integer"},
                                        "description": "seconds to wait"}},
            "content": {"application/json": {"schema": _ERROR}},
        }
    responses["default"] = {"description": "Error (Custom Vision error code and message)",
                            "content": {"application/json": {"schema": _ERROR}}}
    out["responses"] = responses
    return out


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of `app`.

    A route without an OPERATIONS entry is listed with a placeholder summary (see
    `undocumented`, which a unit test keeps empty).
    """
    paths: dict[str, dict[str, Any]] = {}
    for (endpoint, method), rule in sorted(routes(app).items(), key=lambda kv: (kv[1], kv[0])):
        op = OPERATIONS.get(endpoint, {}).get(method)
        if op is None:  # served anyway, marked; the unit test on `undocumented` fails
            op = Op("(not documented yet)", response="{string}")
        path = _PARAM.sub(lambda m: "{" + _camel(m.group("name")) + "}", rule)
        paths.setdefault(path, {})[method.lower()] = _operation(endpoint, method, rule, op)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Loupe REST API",
            "version": "3.4-preview",
            "description": (
                "Wire-compatible with Azure Custom Vision: Training v3.0-v3.4-preview "
                "(`/customvision/{version}/training`), Prediction v3.0-v3.1 "
                "(`/customvision/{version}/prediction`). Errors are "
                "`{\"code\", \"message\"}` with Custom Vision error codes."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {
                name: {"type": "object",
                       "properties": {f: schema(t) for f, t in fields.items()}}
                for name, fields in SCHEMAS.items()
            },
            "securitySchemes": {
                "Training-Key": {"type": "apiKey", "in": "header", "name": "Training-Key"},
                "Prediction-Key": {"type": "apiKey", "in": "header", "name": "Prediction-Key"},
            },
        },
    }


@bp.get("/openapi.json")
def document():
    doc = current_app.extensions.get("loupe.openapi")
    if doc is None:
        doc = current_app.extensions["loupe.openapi"] = build(current_app)
    return jsonify(doc)


@bp.get("/docs")
def docs():
    return render_template("openapi_docs.html"), 200, _HEADERS
