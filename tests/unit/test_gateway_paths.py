"""Case-insensitive routing of Custom Vision paths: which words are rewritten, and which not."""
from __future__ import annotations

import pytest
from werkzeug.routing import Map, Rule

from loupe_gateway.paths import canonical_candidates, route_patterns

pytestmark = pytest.mark.unit


@pytest.fixture
def patterns():
    url_map = Map([
        Rule("/customvision/<version>/prediction/<project>/classify/iterations/<name>/image"),
        Rule("/customvision/<version>/prediction/<project>/classify/iterations/<name>/image/nostore"),
        Rule("/customvision/<version>/training/projects/<project>/tags/<tag>"),
        Rule("/customvision/<version>/training/projects/<project>/tags/count"),
        Rule("/ui/static/<path:filename>"),
        Rule("/metrics"),
    ])
    return route_patterns(url_map)


def test_only_customvision_routes_with_whole_segment_variables(patterns):
    assert len(patterns) == 4
    assert all(p[0] == "customvision" for p in patterns)
    # more fixed words first: "tags/count" is tried before "tags/<tag>"
    assert patterns.index(["customvision", None, "training", "projects", None, "tags", "count"]) < \
        patterns.index(["customvision", None, "training", "projects", None, "tags", None])


def test_fixed_words_take_the_route_case_variables_keep_theirs(patterns):
    path = "/customvision/v3.0/Prediction/P1/Classify/Iterations/MyModel/Image/NoStore"
    assert canonical_candidates(path, patterns) == [
        "/customvision/v3.0/prediction/P1/classify/iterations/MyModel/image/nostore"]
    # a published name that looks like a fixed word is still a variable
    path = "/customvision/v3.0/Prediction/P1/classify/iterations/Image/image"
    assert canonical_candidates(path, patterns) == [
        "/customvision/v3.0/prediction/P1/classify/iterations/Image/image"]


def test_ambiguous_words_give_every_candidate_in_order(patterns):
    path = "/customvision/v3.3/Training/projects/p/tags/COUNT"
    assert canonical_candidates(path, patterns) == [
        "/customvision/v3.3/training/projects/p/tags/count",
        "/customvision/v3.3/training/projects/p/tags/COUNT",
    ]


def test_no_candidate_for_unknown_or_already_canonical_paths(patterns):
    assert canonical_candidates("/customvision/v3.3/training/projects/p/tags/count", patterns) == []
    assert canonical_candidates("/customvision/v3.3/Training/nothing", patterns) == []
    assert canonical_candidates("/customvision/v3.3/Training/projects/p/tags/", patterns) == []
    assert canonical_candidates("/customvision/v3.3/Training/projects/p/tags/c/", patterns) == [
        "/customvision/v3.3/training/projects/p/tags/c/"]
