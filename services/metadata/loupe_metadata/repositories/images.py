"""Images of a project, their tag links and their metadata."""
from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from loupe.v1 import metadata_pb2 as pb
from loupe_common.errors import BadRequest, NotFound
from loupe_common.timeutil import to_proto
from loupe_metadata import quotas, rules
from loupe_metadata.db import Cursor, Repository
from loupe_metadata.repositories.lookups import iteration_row, project_row
from loupe_metadata.repositories.rows import image_pb

#: Custom Vision's default page size for image lists.
DEFAULT_TAKE = 50


@dataclass(frozen=True)
class ImagePage:
    images: list[pb.Image]
    total: int


#: Bounds on a metadata filter (the gateway's parser keeps well inside them).
MAX_FILTER_COMPARISONS = 100
MAX_FILTER_DEPTH = 32


def _metadata_filter_sql(
    node: pb.MetadataFilter, params: dict[str, Any], depth: int = 0
) -> str:
    """The SQL condition (over `i.metadata`) of a metadata filter.

    Keys and values only ever travel as bound parameters (named mk<n>/mv<n> here, added to
    `params`); the SQL text is built from fixed fragments alone.
    """
    if depth > MAX_FILTER_DEPTH:
        raise BadRequest("the metadata filter is nested too deeply", "BadRequest")
    kind = node.WhichOneof("node")
    if kind == "comparison":
        n = sum(1 for k in params if k.startswith("mk"))
        if n >= MAX_FILTER_COMPARISONS:
            raise BadRequest("the metadata filter has too many comparisons", "BadRequest")
        c = node.comparison
        key, value = f"mk{n}", f"mv{n}"
        params[key], params[value] = c.key, c.value
        if c.op == "eq":
            return f"(i.metadata ->> %({key})s::text) = %({value})s::text"
        if c.op == "ne":
            return f"(i.metadata ->> %({key})s::text) IS DISTINCT FROM %({value})s::text"
        raise BadRequest(f"unsupported metadata filter operator {c.op!r}", "BadRequest")
    if kind in ("all", "any"):
        children = getattr(node, kind).filters
        if not children:
            raise BadRequest("an empty metadata filter group", "BadRequest")
        joiner = " AND " if kind == "all" else " OR "
        return "(" + joiner.join(_metadata_filter_sql(c, params, depth + 1) for c in children) + ")"
    raise BadRequest("an empty metadata filter", "BadRequest")


def _tag_types(cur: Cursor, project_id: Any, tag_ids: Collection[uuid.UUID]) -> dict[Any, str]:
    """The types of the tags `tag_ids`; BadRequestImageTags when one is not the project's."""
    types = {
        r["id"]: r["type"]
        for r in cur.execute(
            "SELECT id, type FROM tags WHERE project_id = %s AND id = ANY(%s)",
            (project_id, list(tag_ids)),
        )
    }
    unknown = set(tag_ids) - types.keys()
    if unknown:
        raise BadRequest(
            f"unknown tag id(s) for this project: {', '.join(sorted(map(str, unknown)))}",
            "BadRequestImageTags",
        )
    return types


def _images_with_tags(cur: Cursor, rows: list[dict[str, Any]]) -> list[pb.Image]:
    """Image rows with their live tags, each image's oldest link first."""
    ids = [r["id"] for r in rows]
    tags: dict[Any, list[pb.ImageTag]] = {i: [] for i in ids}
    if ids:
        for link in cur.execute(
            "SELECT x.image_id, x.tag_id, x.created, t.name FROM image_tags x"
            " JOIN tags t ON t.id = x.tag_id WHERE x.image_id = ANY(%s)"
            " ORDER BY x.created, t.name",
            (ids,),
        ):
            tags[link["image_id"]].append(
                pb.ImageTag(
                    tag_id=str(link["tag_id"]),
                    tag_name=link["name"],
                    created=to_proto(link["created"]),
                )
            )
    return [image_pb(r, tags[r["id"]]) for r in rows]


def _snapshot_images_with_tags(
    cur: Cursor, rows: list[dict[str, Any]], iteration: dict[str, Any]
) -> list[pb.Image]:
    """Images with the tags an iteration's training set gave them (rows carry
    snapshot_tag_ids). Tag names are the iteration's; a link's time is the live link's
    when it still exists, else the iteration's creation."""
    names = {
        r["tag_id"]: r["name"]
        for r in cur.execute(
            "SELECT tag_id, name FROM iteration_tags WHERE iteration_id = %s",
            (iteration["id"],),
        )
    }
    ids = [r["id"] for r in rows]
    live: dict[tuple[Any, Any], Any] = {}
    if ids:
        live = {
            (r["image_id"], r["tag_id"]): r["created"]
            for r in cur.execute(
                "SELECT image_id, tag_id, created FROM image_tags WHERE image_id = ANY(%s)",
                (ids,),
            )
        }
    images = []
    for r in rows:
        links = sorted(
            (
                (live.get((r["id"], t), iteration["created"]), names.get(t, ""), t)
                for t in r["snapshot_tag_ids"] or ()
            ),
            key=lambda link: (link[0], link[1], str(link[2])),
        )
        tags = [
            pb.ImageTag(tag_id=str(t), tag_name=name, created=to_proto(created))
            for created, name, t in links
        ]
        row = {k: v for k, v in r.items() if k != "snapshot_tag_ids"}
        images.append(image_pb(row, tags))
    return images


class ImageRepository(Repository):
    """Adds, lists and deletes a project's images; links and unlinks their tags; merges their
    metadata."""

    def add_images(
        self, account_id: str, project_id: str, images: Sequence[pb.NewImage]
    ) -> list[tuple[str, pb.Image]]:
        """Adds image rows and their tag links in one transaction.

        An image whose hash the project already holds (or that appears earlier in the same
        batch) is reported "OKDuplicate" with the existing row, and the new tags are merged into
        it. Any invalid input (an unknown tag, the Negative tag with a regular one) stores
        nothing at all.

        Returns:
            (status, image) per request image, in request order.
        """
        hashes = [rules.sha256_hex(image.sha256) for image in images]
        tag_lists = [rules.parse_uuids(image.tag_ids, "BadRequestImageTags") for image in images]
        wanted = {t for tags in tag_lists for t in tags}
        with self._db.transaction() as cur:
            # Locked: concurrent batches of one project count against its quota one at a time.
            project = project_row(cur, account_id, project_id, lock=True)
            types = _tag_types(cur, project["id"], wanted)
            for tags in tag_lists:
                rules.check_image_tag_types(tags, types)

            statuses: list[tuple[str, Any]] = []
            for image, sha, tags in zip(images, hashes, tag_lists):
                # clock_timestamp(), not now(): images of one batch keep their order in lists.
                row = cur.execute(
                    "INSERT INTO images (id, project_id, sha256, width, height, content_type,"
                    " size_bytes, metadata, created)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp())"
                    " ON CONFLICT (project_id, sha256) DO NOTHING RETURNING id",
                    (
                        uuid.uuid4(),
                        project["id"],
                        sha,
                        image.width,
                        image.height,
                        image.content_type,
                        image.size_bytes,
                        Jsonb(dict(image.metadata)),
                    ),
                ).fetchone()
                status = "OK"
                if row is None:
                    status = "OKDuplicate"
                    row = cur.execute(
                        "SELECT id FROM images WHERE project_id = %s AND sha256 = %s",
                        (project["id"], sha),
                    ).fetchone()
                if tags:
                    cur.executemany(
                        "INSERT INTO image_tags (image_id, tag_id, created)"
                        " VALUES (%s, %s, clock_timestamp()) ON CONFLICT DO NOTHING",
                        [(row["id"], t) for t in tags],
                    )
                statuses.append((status, row["id"]))

            if any(status == "OK" for status, _ in statuses):
                held = cur.execute(
                    "SELECT count(*) AS n FROM images WHERE project_id = %s", (project["id"],)
                ).fetchone()["n"]
                quotas.check(self._db.quotas, "images", held)
            ids = list({image_id for _, image_id in statuses})
            # Merged tags of a duplicate may mix Negative and regular: refuse the whole batch.
            mixed = cur.execute(
                "SELECT x.image_id FROM image_tags x JOIN tags t ON t.id = x.tag_id"
                " WHERE x.image_id = ANY(%s) GROUP BY x.image_id"
                " HAVING bool_or(t.type = 'Negative') AND bool_or(t.type <> 'Negative')",
                (ids,),
            ).fetchone()
            if mixed:
                raise BadRequest(
                    "an image cannot have the Negative tag and a regular tag",
                    "BadRequestNegativeAndRegularTagOnSameImage",
                )
            rows = cur.execute("SELECT * FROM images WHERE id = ANY(%s)", (ids,)).fetchall()
            by_id = {img.id: img for img in _images_with_tags(cur, rows)}
            if statuses:
                cur.execute(
                    "UPDATE projects SET last_modified = now() WHERE id = %s", (project["id"],)
                )
        return [(status, by_id[str(image_id)]) for status, image_id in statuses]

    def list_images(
        self,
        account_id: str,
        project_id: str,
        tagging_status: str = "",
        tag_ids: Sequence[str] = (),
        order_by: str = "",
        take: int = 0,
        skip: int = 0,
        image_ids: Sequence[str] = (),
        iteration_id: str = "",
        metadata_filter: pb.MetadataFilter | None = None,
    ) -> ImagePage:
        """A page of a project's images in a stable order, (created, id), and the total count.

        Args:
            tagging_status: "" (all), "Tagged" or "Untagged".
            tag_ids: only images carrying any of these tags.
            order_by: "Newest" (default) or "Oldest".
            take: page size (default 50; with image_ids, all of them); skip: offset.
            image_ids: only these images (unknown ids are left out).
            iteration_id: when set, the iteration's training set as snapshotted at
                CreateIteration: its images (those still stored) with the tags they had then;
                tagging status and tag_ids apply to those snapshotted tags. NotFoundIteration
                when the project has no such iteration.
            metadata_filter: only images whose (current) metadata satisfies it.
        """
        status = (tagging_status or "").lower()
        if status not in ("", "tagged", "untagged"):
            raise BadRequest(f"unknown tagging status {tagging_status!r}", "BadRequest")
        order = (order_by or "Newest").lower()
        if order not in ("newest", "oldest"):
            raise BadRequest(f"unknown order {order_by!r}", "BadRequest")
        if take < 0 or skip < 0:
            raise BadRequest("take and skip must not be negative", "BadRequest")
        tags = rules.parse_uuids(tag_ids)
        ids = rules.parse_uuids(image_ids)
        if take == 0:
            take = len(ids) if ids else DEFAULT_TAKE

        params: dict[str, Any] = {"tags": tags, "ids": ids, "take": take, "skip": skip}
        where = ["i.project_id = %(project)s"]
        if iteration_id:
            # The snapshot: iteration_images.tag_ids, not the live image_tags links.
            source = (
                "images i JOIN iteration_images ii"
                " ON ii.image_id = i.id AND ii.iteration_id = %(iteration)s"
            )
            columns = "i.*, ii.tag_ids AS snapshot_tag_ids"
            if status == "tagged":
                where.append("cardinality(ii.tag_ids) > 0")
            elif status == "untagged":
                where.append("cardinality(ii.tag_ids) = 0")
            if tags:
                where.append("ii.tag_ids && %(tags)s::uuid[]")
        else:
            source, columns = "images i", "i.*"
            if status == "tagged":
                where.append("EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id)")
            elif status == "untagged":
                where.append("NOT EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id)")
            if tags:
                where.append(
                    "EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id"
                    " AND x.tag_id = ANY(%(tags)s))"
                )
        if ids:
            where.append("i.id = ANY(%(ids)s)")
        if metadata_filter is not None and metadata_filter.WhichOneof("node") is not None:
            where.append(_metadata_filter_sql(metadata_filter, params))
        direction = "DESC" if order == "newest" else "ASC"
        condition = " AND ".join(where)
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            params["project"] = project["id"]
            iteration = None
            if iteration_id:
                iteration = iteration_row(cur, project["id"], iteration_id)
                params["iteration"] = iteration["id"]
            total = cur.execute(
                f"SELECT count(*) AS n FROM {source} WHERE {condition}", params
            ).fetchone()["n"]
            rows = cur.execute(
                f"SELECT {columns} FROM {source} WHERE {condition}"
                f" ORDER BY i.created {direction}, i.id {direction}"
                " LIMIT %(take)s OFFSET %(skip)s",
                params,
            ).fetchall()
            if iteration is not None:
                images = _snapshot_images_with_tags(cur, rows, iteration)
            else:
                images = _images_with_tags(cur, rows)
            return ImagePage(images, int(total))

    def image_hashes(self, project_id: str) -> list[str]:
        """Every distinct hash of the project's training images (the orphan sweep, any account;
        a malformed id has none)."""
        project = rules.parse_uuid(project_id)
        if project is None:
            return []
        with self._db.transaction() as cur:
            rows = cur.execute("SELECT DISTINCT sha256 FROM images WHERE project_id = %s",
                               (project,)).fetchall()
        return sorted(r["sha256"] for r in rows)

    def delete_images_by_hash(self, project_id: str, hashes: Sequence[str]) -> int:
        """Deletes the project's training images of `hashes` (the orphan sweep: their bytes
        are gone, so they can neither be shown nor trained on); returns how many went."""
        project = rules.parse_uuid(project_id)
        wanted = [rules.sha256_hex(h) for h in hashes]
        if project is None or not wanted:
            return 0
        with self._db.transaction() as cur:
            return len(cur.execute(
                "DELETE FROM images WHERE project_id = %s AND sha256 = ANY(%s) RETURNING id",
                (project, wanted)).fetchall())

    def delete_images(
        self, account_id: str, project_id: str, image_ids: Sequence[str], all: bool = False
    ) -> list[str]:
        """Deletes images (every image of the project when `all` and no ids are given).

        An unknown id refuses the whole call (NotFoundImage) and deletes nothing.

        Returns:
            The deleted images' hashes whose bytes nothing in the project still needs (no stored
            prediction, no running training), so the caller can remove them from storage.
        """
        ids = rules.parse_uuids(image_ids)
        if not ids and not all:
            raise BadRequest("no image ids given", "BadRequestInvalidIds")
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            if ids:
                deleted = cur.execute(
                    "DELETE FROM images WHERE project_id = %s AND id = ANY(%s) RETURNING id, sha256",
                    (project["id"], ids),
                ).fetchall()
                missing = set(ids) - {r["id"] for r in deleted}
                if missing:
                    raise NotFound(
                        f"image(s) not found: {', '.join(sorted(map(str, missing)))}",
                        "NotFoundImage",
                    )
            else:
                deleted = cur.execute(
                    "DELETE FROM images WHERE project_id = %s RETURNING id, sha256",
                    (project["id"],),
                ).fetchall()
            hashes = sorted({r["sha256"] for r in deleted})
            if not hashes:
                return []
            still_used = {
                r["sha"]
                for r in cur.execute(
                    "SELECT image_sha256 AS sha FROM predictions"
                    " WHERE project_id = %(p)s AND image_sha256 = ANY(%(h)s)"
                    " UNION SELECT ii.sha256 FROM iteration_images ii"
                    " JOIN iterations it ON it.id = ii.iteration_id"
                    " WHERE it.project_id = %(p)s AND it.status = 'Training'"
                    " AND ii.sha256 = ANY(%(h)s)",
                    {"p": project["id"], "h": hashes},
                )
            }
            cur.execute("UPDATE projects SET last_modified = now() WHERE id = %s", (project["id"],))
        return [h for h in hashes if h not in still_used]

    def add_image_tags(
        self,
        account_id: str,
        project_id: str,
        links: Sequence[tuple[str, str]],
        max_tags_per_image: int = 0,
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
        """Links tags to images.

        Unknown images or tags refuse the whole call (NotFoundImage / BadRequestImageTags), as
        does a link that would put the Negative tag next to a regular one.

        Returns:
            (created, duplicated, exceeded) links as (image_id, tag_id), in request order.
        """
        parsed = [
            (rules.parse_uuids([i])[0], rules.parse_uuids([t], "BadRequestImageTags")[0])
            for i, t in links
        ]
        created: list[tuple[str, str]] = []
        duplicated: list[tuple[str, str]] = []
        exceeded: list[tuple[str, str]] = []
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id, lock=True)
            image_ids = list({i for i, _ in parsed})
            tag_ids = list({t for _, t in parsed})
            found = {
                r["id"]
                for r in cur.execute(
                    "SELECT id FROM images WHERE project_id = %s AND id = ANY(%s)",
                    (project["id"], image_ids),
                )
            }
            missing = set(image_ids) - found
            if missing:
                raise NotFound(
                    f"image(s) not found: {', '.join(sorted(map(str, missing)))}", "NotFoundImage"
                )
            _tag_types(cur, project["id"], tag_ids)
            have: dict[Any, set[Any]] = {i: set() for i in image_ids}
            for r in cur.execute(
                "SELECT image_id, tag_id FROM image_tags WHERE image_id = ANY(%s)", (image_ids,)
            ):
                have[r["image_id"]].add(r["tag_id"])
            new_links = []
            for image_id, tag_id in parsed:
                link = (str(image_id), str(tag_id))
                if tag_id in have[image_id]:
                    duplicated.append(link)
                elif max_tags_per_image and len(have[image_id]) >= max_tags_per_image:
                    exceeded.append(link)
                else:
                    have[image_id].add(tag_id)
                    created.append(link)
                    new_links.append((image_id, tag_id))
            all_types = {
                r["id"]: r["type"]
                for r in cur.execute(
                    "SELECT id, type FROM tags WHERE project_id = %s", (project["id"],)
                )
            }
            for image_id in {i for i, _ in new_links}:
                rules.check_image_tag_types(have[image_id], all_types)
            if new_links:
                cur.executemany(
                    "INSERT INTO image_tags (image_id, tag_id, created)"
                    " VALUES (%s, %s, clock_timestamp()) ON CONFLICT DO NOTHING",
                    new_links,
                )
                cur.execute(
                    "UPDATE projects SET last_modified = now() WHERE id = %s", (project["id"],)
                )
        return created, duplicated, exceeded

    def delete_image_tags(
        self, account_id: str, project_id: str, image_ids: Sequence[str], tag_ids: Sequence[str]
    ) -> None:
        """Removes every link between the given images and tags; absent links are ignored."""
        images = rules.parse_uuids(image_ids)
        tags = rules.parse_uuids(tag_ids, "BadRequestImageTags")
        if not images or not tags:
            raise BadRequest("imageIds and tagIds are required", "BadRequestInvalidIds")
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            deleted = cur.execute(
                "DELETE FROM image_tags x USING images i WHERE i.id = x.image_id"
                " AND i.project_id = %s AND x.image_id = ANY(%s) AND x.tag_id = ANY(%s)",
                (project["id"], images, tags),
            ).rowcount
            if deleted:
                cur.execute(
                    "UPDATE projects SET last_modified = now() WHERE id = %s", (project["id"],)
                )

    def update_image_metadata(
        self,
        account_id: str,
        project_id: str,
        image_ids: Sequence[str],
        metadata: dict[str, str],
        max_keys_per_image: int = 0,
    ) -> list[tuple[str, str, dict[str, str]]]:
        """Merges `metadata` into each image's metadata.

        Returns:
            (image_id, status, metadata after the call) per requested id, in order; status is
            OK, ErrorImageNotFound or ErrorLimitExceed (more than max_keys_per_image keys).
        """
        ids = rules.parse_uuids(image_ids)
        results: list[tuple[str, str, dict[str, str]]] = []
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            current = {
                r["id"]: dict(r["metadata"] or {})
                for r in cur.execute(
                    "SELECT id, metadata FROM images WHERE project_id = %s AND id = ANY(%s)"
                    " FOR UPDATE",
                    (project["id"], ids),
                )
            }
            for image_id in ids:
                if image_id not in current:
                    results.append((str(image_id), "ErrorImageNotFound", {}))
                    continue
                merged = {**current[image_id], **metadata}
                if max_keys_per_image and len(merged) > max_keys_per_image:
                    results.append((str(image_id), "ErrorLimitExceed", current[image_id]))
                    continue
                cur.execute(
                    "UPDATE images SET metadata = %s WHERE id = %s", (Jsonb(merged), image_id)
                )
                current[image_id] = merged
                results.append((str(image_id), "OK", {str(k): str(v) for k, v in merged.items()}))
        return results
