"""Query parameters and JSON properties are found ignoring case (exact names first); keys
are kept as sent."""
from __future__ import annotations

import pytest

from loupe_common.config import load
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig
from loupe_gateway.caseless import JsonObject, QueryArgs

pytestmark = pytest.mark.unit


def test_lookups_ignore_case_and_prefer_the_exact_name():
    body = JsonObject({"Url": "a", "tagIds": [1], "TAGIDS": [2]})
    assert body["url"] == body.get("URL") == "a" and "uRl" in body
    assert body["tagIds"] == [1] and body.get("tagids") in ([1], [2])
    assert body.get("missing") is None and body.get("missing", 3) == 3 and "missing" not in body
    with pytest.raises(KeyError):
        body["missing"]
    assert body.pop("url") == "a" and "Url" not in body
    assert body.pop("gone", None) is None
    assert list(body) == ["tagIds", "TAGIDS"]  # keys as sent


def test_the_app_parses_request_bodies_into_json_objects(gateway_env):
    app = create_app(load(GatewayConfig, gateway_env))
    raw = '{"Images": [{"Url": "http://x/a.png", "Metadata": {"CamelKey": "v"}}], "TagIds": []}'
    with app.test_request_context(data=raw, content_type="application/json"):
        from flask import request

        body = request.get_json()
        entry = body["images"][0]
        assert entry["url"] == "http://x/a.png"
        assert dict(entry["metadata"]) == {"CamelKey": "v"}  # user keys keep their case
        assert body.get("tagIds") == []
    # responses are unchanged JSON
    with app.app_context():
        assert app.json.dumps({"b": 1, "a": 2}) == '{"b": 1, "a": 2}'


def test_query_args_ignore_case():
    args = QueryArgs([("PublishName", "prod"), ("tagIds", "a"), ("TagIds", "b")])
    assert args.get("publishName") == "prod" and "PUBLISHNAME" in args
    assert args["tagIds"] == "a" and args.getlist("tagIds") == ["a"]
    assert args.getlist("TAGIDS") in (["a"], ["b"]) and args.getlist("nothing") == []
    assert args.get("nothing", "d") == "d" and "nothing" not in args
    assert args.get("publishname", type=str.upper) == "PROD"


def test_the_app_reads_query_parameters_ignoring_case(gateway_env):
    app = create_app(load(GatewayConfig, gateway_env))
    with app.test_request_context("/x?PublishName=prod&TAKE=5"):
        from flask import request

        assert request.args.get("publishName") == "prod" and request.args.get("take") == "5"
