"""JSON request bodies read with property names matched without regard to case, as Azure does.

Custom Vision is an ASP.NET service: `{"Url": "…"}` (what the Azure portal's prediction dialog
shows), `{"url": "…"}` (what the SDKs send) and `{"URL": "…"}` all reach the same property, and
so do `TagIds`, `tagIds` and `tagids`. Every JSON object the gateway parses is a `JsonObject`: a
dict whose look-ups (`[]`, `get`, `in`, `pop`) fall back to a case-insensitive match when the
exact name is absent. The keys themselves are kept as sent, so user data such as image metadata
keys keep their case.
"""
from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

_MISSING = object()


class JsonObject(dict):
    """A JSON object whose string keys are also found ignoring case (exact match first)."""

    def _key(self, key: Any) -> Any:
        if not isinstance(key, str) or dict.__contains__(self, key):
            return key
        folded = key.casefold()
        for candidate in self:
            if isinstance(candidate, str) and candidate.casefold() == folded:
                return candidate
        return key

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
