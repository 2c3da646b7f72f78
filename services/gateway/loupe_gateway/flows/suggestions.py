"""The Smart Labeler: tags a trained iteration suggests for images, and the untagged images
whose suggestions match a filter, ranked by how unsure the model is about them."""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass

from loupe.v1 import metadata_pb2 as mpb
from loupe_common import limits, paging
from loupe_common.errors import BadRequest, Conflict, NotFound
from loupe_gateway import serialize, validation
from loupe_gateway.clients import Backends
from loupe_gateway.flows import tag_types
from loupe_gateway.serialize import Ranked

SORT_ORDERS = ("UncertaintyAscending", "UncertaintyDescending")


class SuggestionCache:
    """(iteration id, image sha256) -> the iteration's ranked predictions for those bytes,
    least recently used first out. An iteration's model never changes, so its suggestion for
    the same bytes never goes stale. One per app (create_app), shared by its threads.

    Args:
        max_entries: how many suggestions are kept.
    """

    def __init__(self, max_entries: int = 20000):
        self._entries: OrderedDict[tuple[str, str], Ranked] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: tuple[str, str]) -> Ranked | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: tuple[str, str], ranked: Ranked) -> None:
        with self._lock:
            self._entries[key] = ranked
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


#: The gateway's classifications for the Smart Labeler run here: at most this many at once
#: for all requests together, which TorchServe batches; a big project's query cannot take
#: every thread of the gateway or the prediction service.
_CLASSIFY = ThreadPoolExecutor(max_workers=8, thread_name_prefix="suggest")


def suggest_all(backends: Backends, cache: SuggestionCache, it: mpb.Iteration,
                images: Sequence[mpb.Image]) -> list[Ranked]:
    """`suggest` for every image, in order; the uncached ones classified concurrently."""
    return list(_CLASSIFY.map(lambda img: suggest(backends, cache, it, img), images))


def suggest(backends: Backends, cache: SuggestionCache, it: mpb.Iteration, img: mpb.Image
            ) -> Ranked:
    """The iteration's predictions for an image, highest first (classified once per bytes)."""
    key = (it.id, img.sha256)
    ranked = cache.get(key)
    if ranked is not None:
        return ranked
    data = backends.get_image(it.project_id, img.sha256, "original").data
    result = backends.classify(
        project_id=it.project_id, iteration_id=it.id, artifact_key=it.artifact_key, image=data,
        store=False, application="",
    )
    ranked = serialize.ranked(result.predictions)
    cache.put(key, ranked)
    return ranked


def uncertainty(ranked: Ranked, multilabel: bool) -> float:
    """How unsure the model is about an image, in [0, 1]: 1 - the top probability for a
    multiclass model; for a multilabel one, 1 - |2p - 1| of the tag closest to 0.5."""
    if not ranked:
        return 1.0
    if multilabel:
        return max(1.0 - abs(2.0 * p - 1.0) for _t, _n, p in ranked)
    return 1.0 - ranked[0][2]


def trained_iteration(backends: Backends, account_id: str, project_id: str,
                      iteration_id: str | None) -> mpb.Iteration:
    """The iteration that suggests (`iterationId`), which must be trained.

    Raises:
        BadRequest: no or a malformed iterationId.
        Conflict (BadRequestIterationIsNotTrained): the iteration has no model.
    """
    if not iteration_id:
        raise BadRequest("iterationId is required", "BadRequestRequiredParamIsNull")
    it = backends.get_iteration(account_id, project_id, validation.parse_guid(iteration_id))
    if it.status != "Completed" or not it.artifact_key:
        raise Conflict(f"{it.name} is {it.status}", "BadRequestIterationIsNotTrained")
    return it


@dataclass(frozen=True)
class Suggestion:
    image: mpb.Image
    predictions: Ranked
    uncertainty: float


def suggest_for_images(backends: Backends, cache: SuggestionCache, account_id: str,
                       project_id: str, it: mpb.Iteration, image_ids: Sequence[str]
                       ) -> tuple[list[Suggestion], dict[str, str]]:
    """The suggestions for `image_ids`, in their order, with the project's tag types.

    Raises:
        NotFound (NotFoundImage): some image is not in the project.
    """
    page = backends.list_images(account_id, project_id, image_ids=image_ids,
                                take=len(image_ids))
    found = {img.id: img for img in page.images}
    missing = [i for i in image_ids if i not in found]
    if missing:
        raise NotFound(f"image(s) not found: {', '.join(missing)}", "NotFoundImage")
    types = tag_types(backends, account_id, project_id)
    multilabel = it.classification_type == "Multilabel"
    images = [found[i] for i in image_ids]
    return [Suggestion(img, ranked, uncertainty(ranked, multilabel))
            for img, ranked in zip(images, suggest_all(backends, cache, it, images))], types


@dataclass(frozen=True)
class TagFilter:
    """Suggestions that match: some tag (of `tag_ids`, or any when empty) at `threshold` or
    above."""

    tag_ids: frozenset[str]
    threshold: float

    def matching(self, ranked: Ranked) -> list[str]:
        """The tags of `ranked` that match, in its order."""
        return [t for t, _n, p in ranked
                if p >= self.threshold and (not self.tag_ids or t in self.tag_ids)]


def tag_filter(body: dict) -> TagFilter:
    """The TagFilter of a request body (`tagIds`, `threshold`)."""
    tag_ids = frozenset(
        validation.parse_guid_list(body.get("tagIds") or [], "BadRequestImageTags"))
    try:
        threshold = float(body.get("threshold") or 0.0)
    except (TypeError, ValueError):
        raise BadRequest("threshold must be a number", "BadRequest") from None
    return TagFilter(tag_ids, threshold)


@dataclass(frozen=True)
class SuggestedQuery:
    """A SuggestedTagAndRegionQueryToken, parsed."""

    filter: TagFilter
    sort_by: str
    max_count: int
    skip: int


def suggested_query(token: dict) -> SuggestedQuery:
    """Parses a SuggestedTagAndRegionQueryToken; its `continuation` is one this flow wrote.

    Raises:
        BadRequest: an unknown sortBy, a maxCount outside 1 to MAX_TAKE, a malformed filter or
            continuation.
    """
    flt = tag_filter(token)
    sort_by = str(token.get("sortBy") or SORT_ORDERS[0])
    if sort_by not in SORT_ORDERS:
        raise BadRequest(f"unknown sortBy {sort_by!r}", "BadRequest")
    max_count = token.get("maxCount") or validation.DEFAULT_TAKE
    if not isinstance(max_count, int) or not 0 < max_count <= validation.MAX_TAKE:
        raise BadRequest(f"maxCount must be 1 to {validation.MAX_TAKE}", "BadRequest")
    skip = paging.decode_skip(str(token["continuation"])) if token.get("continuation") else 0
    return SuggestedQuery(flt, sort_by, max_count, skip)


def continuation(skip: int) -> str:
    """The continuation token of the page that starts at `skip`."""
    return paging.encode_skip(skip)


#: The untagged images a query or count considers: the oldest this many (LOUPE_SUGGESTION_MAX_IMAGES).
MAX_IMAGES = limits.MAX_SUGGESTED_IMAGES


def _untagged(backends: Backends, account_id: str, project_id: str, limit: int) -> list[mpb.Image]:
    """The project's untagged images, oldest first, at most `limit` (0: all)."""
    images: list[mpb.Image] = []
    while not limit or len(images) < limit:
        take = validation.MAX_TAKE if not limit else min(validation.MAX_TAKE, limit - len(images))
        page = backends.list_images(account_id, project_id, tagging_status="Untagged",
                                    order_by="Oldest", take=take, skip=len(images))
        images.extend(page.images)
        if not page.images or len(images) >= page.total:
            break
    return images


@dataclass(frozen=True)
class SuggestedPage:
    suggestions: list[Suggestion]
    #: The next page's continuation token, None on the last page.
    continuation: str | None
    domain: str
    tag_types: dict[str, str]


def query_suggested(backends: Backends, cache: SuggestionCache, account_id: str,
                    project_id: str, it: mpb.Iteration, query: SuggestedQuery,
                    max_images: int = MAX_IMAGES) -> SuggestedPage:
    """A page of the project's untagged images (the oldest `max_images`) whose suggestions
    match the query's filter, sorted by uncertainty; ties keep upload order (oldest first), so
    paging is stable."""
    types = tag_types(backends, account_id, project_id)
    project = backends.get_project(account_id, project_id)
    multilabel = it.classification_type == "Multilabel"
    matching = []
    untagged = _untagged(backends, account_id, project_id, max_images)
    for img, ranked in zip(untagged, suggest_all(backends, cache, it, untagged)):
        if query.filter.matching(ranked):
            matching.append(Suggestion(img, ranked, uncertainty(ranked, multilabel)))
    matching.sort(key=lambda s: s.uncertainty, reverse=query.sort_by == "UncertaintyDescending")
    end = query.skip + query.max_count
    return SuggestedPage(matching[query.skip:end],
                         continuation(end) if end < len(matching) else None,
                         project.domain_id, types)


def count_suggested(backends: Backends, cache: SuggestionCache, account_id: str,
                    project_id: str, it: mpb.Iteration, flt: TagFilter,
                    max_images: int = MAX_IMAGES) -> dict[str, int]:
    """Per tag, how many untagged images (of the oldest `max_images`) it is suggested for (the
    filter's tags, in sorted order, always present)."""
    counts = {t: 0 for t in sorted(flt.tag_ids)}
    untagged = _untagged(backends, account_id, project_id, max_images)
    for ranked in suggest_all(backends, cache, it, untagged):
        for t in flt.matching(ranked):
            counts[t] = counts.get(t, 0) + 1
    return counts
