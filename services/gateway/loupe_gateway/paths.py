"""Custom Vision's paths are matched without regard to case, as Azure does.

Azure's portal shows prediction URLs as `…/customvision/v3.0/Prediction/{project}/classify/…`
and its REST reference writes `…/customvision/v3.3/Training/projects`, while the SDKs send
`prediction` and `training`. Azure answers both; Flask's router is case-sensitive. This WSGI
wrapper leaves every path that routes as it is, and only when a `/customvision/` path matches
no route does it look for a route whose fixed words equal the path's words ignoring case, and
rewrite those words (only those: ids, published names and other variables keep their case).
The rewritten path must then route, or the request goes on unchanged (to the JSON 404).
"""
from __future__ import annotations

from typing import Callable, Iterable

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect

PREFIX = "/customvision/"

# A route as a list of its path segments: the fixed word, or None for a variable.
Pattern = list


def route_patterns(url_map: Map, prefix: str = PREFIX) -> list[Pattern]:
    """The routes under `prefix` as segment patterns, those with more fixed words first.

    Only routes whose variables fill whole segments are kept (all of Custom Vision's do).
    """
    patterns = []
    for rule in url_map.iter_rules():
        if not rule.rule.startswith(prefix):
            continue
        segments = rule.rule.strip("/").split("/")
        pattern: Pattern = []
        for segment in segments:
            if "<" not in segment:
                pattern.append(segment)
            elif segment.startswith("<") and segment.endswith(">") and segment.count("<") == 1 \
                    and not segment.startswith("<path:"):
                pattern.append(None)
            else:
                break
        else:
            if pattern not in patterns:
                patterns.append(pattern)
    patterns.sort(key=lambda p: -sum(s is not None for s in p))
    return patterns


def canonical_candidates(path: str, patterns: Iterable[Pattern]) -> list[str]:
    """Paths equal to `path` but for the case of fixed words, one per pattern that fits.

    Args:
        path: a request path (PATH_INFO).
        patterns: from `route_patterns`.

    Returns:
        Rewritten paths that differ from `path`, in the patterns' order (no duplicates).
    """
    trailing = path.endswith("/") and len(path) > 1
    segments = path.strip("/").split("/")
    out: list[str] = []
    for pattern in patterns:
        if len(pattern) != len(segments):
            continue
        if all(word is None or word.lower() == segment.lower()
               for word, segment in zip(pattern, segments)):
            fixed = [segment if word is None else word for word, segment in zip(pattern, segments)]
            candidate = "/" + "/".join(fixed) + ("/" if trailing else "")
            if candidate != path and candidate not in out:
                out.append(candidate)
    return out


class CaseInsensitivePaths:
    """WSGI middleware: routes `/customvision/` paths whatever the case of their fixed words.

    Install it once every route is registered. Paths whose fixed words are already in the
    routes' case (every SDK request) cost only the string comparison of `canonical_candidates`;
    the router is asked again only for the others.
    """

    def __init__(self, url_map: Map, wsgi_app: Callable) -> None:
        self.url_map = url_map
        self.wsgi_app = wsgi_app
        self.patterns = route_patterns(url_map)

    def _routes(self, environ: dict, path: str) -> bool:
        try:
            self.url_map.bind_to_environ(environ).match(path_info=path)
        except (NotFound, UnicodeError):
            return False
        except (MethodNotAllowed, RequestRedirect):
            pass  # the path routes; the method or the trailing slash is answered there
        return True

    def canonical_path(self, environ: dict) -> str:
        """The path the request of `environ` routes by (its PATH_INFO, or the rewritten one)."""
        path = environ.get("PATH_INFO", "")
        if path[: len(PREFIX)].lower() == PREFIX:
            candidates = canonical_candidates(path, self.patterns)
            if candidates and not self._routes(environ, path):
                for candidate in candidates:
                    if self._routes(environ, candidate):
                        return candidate
        return path

    def __call__(self, environ: dict, start_response: Callable):
        path = self.canonical_path(environ)
        if path != environ.get("PATH_INFO", ""):
            environ["PATH_INFO"] = path
        return self.wsgi_app(environ, start_response)
