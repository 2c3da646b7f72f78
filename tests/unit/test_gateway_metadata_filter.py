"""The `$filter` parser: Custom Vision's documented image metadata expressions, refusals."""
from __future__ import annotations

import pytest
from google.protobuf import json_format

from loupe_common.errors import BadRequest
from loupe_gateway import metadata_filter

pytestmark = pytest.mark.unit


def tree(text: str):
    """The parsed filter as nested tuples: ("eq", key, value), ("all", [...]), ("any", [...])."""

    def walk(node):
        kind = node.WhichOneof("node")
        if kind == "comparison":
            c = node.comparison
            return (c.op, c.key, c.value)
        return (kind, [walk(c) for c in getattr(node, kind).filters])

    return walk(metadata_filter.parse(text))


def test_absent_or_blank_filter_is_none():
    assert metadata_filter.parse(None) is None
    assert metadata_filter.parse("") is None
    assert metadata_filter.parse("   ") is None


def test_the_documented_example():
    assert tree("metadata=key1 eq 'value1' and key2 ne 'value2'") == (
        "all", [("eq", "key1", "value1"), ("ne", "key2", "value2")]
    )


@pytest.mark.parametrize("text", [
    "key1 eq 'v'", "metadata/key1 eq 'v'", "metadata = key1 EQ 'v'", "  key1   eq   'v'  ",
    "(key1 eq 'v')", "((metadata/key1 eq 'v'))",
])
def test_spellings_of_one_comparison(text):
    assert tree(text) == ("eq", "key1", "v")


def test_and_binds_tighter_than_or_and_groups_flatten():
    assert tree("a eq '1' or b eq '2' and c ne '3'") == (
        "any", [("eq", "a", "1"), ("all", [("eq", "b", "2"), ("ne", "c", "3")])]
    )
    assert tree("(a eq '1' or b eq '2') and c eq '3'") == (
        "all", [("any", [("eq", "a", "1"), ("eq", "b", "2")]), ("eq", "c", "3")]
    )
    assert tree("a eq '1' and (b eq '2' and c eq '3') AND d eq '4'") == (
        "all", [("eq", k, v) for k, v in zip("abcd", "1234")]
    )


def test_string_values_keep_spaces_and_doubled_quotes():
    assert tree("name eq 'O''Brien and sons'") == ("eq", "name", "O'Brien and sons")
    assert tree("k eq ''") == ("eq", "k", "")
    assert tree("camera.model-x:y eq 'Ω ünïcode'") == ("eq", "camera.model-x:y", "Ω ünïcode")


def test_injection_attempts_are_only_data():
    parsed = metadata_filter.parse("k eq 'x'' OR 1=1; DROP TABLE images; --'")
    assert json_format.MessageToDict(parsed) == {
        "comparison": {"key": "k", "op": "eq", "value": "x' OR 1=1; DROP TABLE images; --"}
    }


@pytest.mark.parametrize("text, fragment", [
    ("k gt '1'", "unsupported operator 'gt'"),
    ("k eq 1", "expected a quoted string"),
    ("k eq 'unterminated", "unterminated string"),
    ("k eq 'a' and", "expected a metadata key"),
    ("k eq 'a' xor j eq 'b'", "unexpected 'xor'"),
    ("(k eq 'a'", "expected ')'"),
    ("k eq 'a')", "unexpected ')'"),
    ("not k eq 'a'", "unsupported operator 'k'"),
    ("startswith(k, 'a')", "unexpected character ','"),
    ("k eq \"a\"", "unexpected character"),
    ("eq eq 'a'", "expected a metadata key"),
    ("metadata/'a' eq 'b'", "expected a key after 'metadata/'"),
    ("()", "expected a metadata key"),
])
def test_unsupported_expressions_are_bad_requests(text, fragment):
    with pytest.raises(BadRequest) as err:
        metadata_filter.parse(text)
    assert fragment in str(err.value) and "$filter" in str(err.value)
    assert err.value.code == "BadRequest"


def test_size_limits():
    many = " or ".join(f"k{i} eq 'v'" for i in range(metadata_filter.MAX_COMPARISONS + 1))
    with pytest.raises(BadRequest, match="comparisons"):
        metadata_filter.parse(many)
    deep = "(" * (metadata_filter.MAX_DEPTH + 1) + "k eq 'v'" + ")" * (metadata_filter.MAX_DEPTH + 1)
    with pytest.raises(BadRequest, match="nested"):
        metadata_filter.parse(deep)
    with pytest.raises(BadRequest, match="longer"):
        metadata_filter.parse("k eq '" + "x" * metadata_filter.MAX_FILTER_LENGTH + "'")
