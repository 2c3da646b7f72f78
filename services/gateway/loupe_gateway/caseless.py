"""Query parameters and JSON properties named without regard to case, as Azure does.

Custom Vision is an ASP.NET service: `{"Url": "…"}` (what the Azure portal's prediction dialog
shows), `{"url": "…"}` (what the SDKs send) and `{"URL": "…"}` all reach the same property, and
so do `TagIds`, `tagIds` and `tagids`; query parameters too (`?publishName=` and
`?PublishName=`). Every JSON object the gateway parses is a `JsonObject` and its query
parameters are `QueryArgs`: look-ups (`[]`, `get`, `in`, and `pop` / `getlist`) fall back to a
case-insensitive match when the exact name is absent. Keys themselves are kept as sent, so user
data such as image metadata keys keep their case.
"""
from __future__ import annotations

from typing import Any

from flask import Request
from flask.json.provider import DefaultJSONProvider
from werkzeug.datastructures import ImmutableMultiDict

_MISSING = object()


def _key(mapping: dict, key: Any) -> Any:
    """`key` if `mapping` has it, else the first key equal to it ignoring case, else `key`."""
    if not isinstance(key, str) or dict.__contains__(mapping, key):
        return key
    folded = key.casefold()
    for candidate in mapping:
        if isinstance(candidate, str) and candidate.casefold() == folded:
            return candidate
    return key


class JsonObject(dict):
    """A JSON object whose string keys are also found ignoring case (exact match first)."""

    _key = _key

    def __getitem__(self, key: Any) -> Any:
        return dict.__getitem__(self, self._key(key))

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._key(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return dict.get(self, self._key(key), default)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        if default is _MISSING:
            return dict.pop(self, self._key(key))
        return dict.pop(self, self._key(key), default)


class CaseInsensitiveJSON(DefaultJSONProvider):
    """Flask's JSON provider, parsing objects into `JsonObject`s (output is unchanged)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("object_hook", JsonObject)
        return super().loads(s, **kwargs)


class QueryArgs(ImmutableMultiDict):
    """Query parameters also found ignoring case (exact name first); `get` goes through `[]`."""

    _key = _key

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(self._key(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(self._key(key))

    def getlist(self, key: Any, type: Any = None) -> list:  # noqa: A002 - werkzeug's name
        return super().getlist(self._key(key), type=type)


class CaselessRequest(Request):
    """Flask's request with `QueryArgs` for `args` (and `form`)."""

    parameter_storage_class = QueryArgs
