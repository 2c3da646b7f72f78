"""`loupe import-azure`: copy Custom Vision classification projects into Loupe.

The source is read only through Custom Vision's Training REST API (v3.3: projects, tags,
images/tagged and images/untagged paged by 256, each image's originalImageUri), so the source
may be Azure or another Loupe. The destination is Loupe: projects and tags are created with
their source ids through Loupe's import routes (`PUT …/projects/{id}`, `PUT
…/projects/{id}/tags/{id}`, idempotent), images are uploaded through the ordinary upload API,
where identical bytes in a project are one image (OKDuplicate). So a rerun never copies anything
twice; the state file only spares it downloading again what was already copied.

The pure parts (domain mapping, what is skipped, batching, the state and the report) are
separate from `Importer`, which makes the calls.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loupe_cli.api import MAX_BATCH_BYTES, MAX_BATCH_IMAGES, ApiError, Client
from loupe_cli.progress import Progress

#: Custom Vision's largest page of image lists.
PAGE = 256
STATE_VERSION = 1
OBJECT_DETECTION = "ObjectDetection"
OD_MESSAGE = ("object detection is not supported by Loupe (classification only): the project, "
              "its images and their regions were not copied")
POLL_SECONDS = 1.0


# --- pure: what is copied, and how -------------------------------------------------------

def skip_reason(project: dict, source_domains: dict[str, dict]) -> str | None:
    """Why a source project is not imported (None: it is).

    Args:
        project: the source's Project JSON.
        source_domains: the source's domains by id (GET /domains).
    """
    settings = project.get("settings") or {}
    domain = source_domains.get(str(settings.get("domainId") or "").lower())
    if domain is not None and domain.get("type") == OBJECT_DETECTION:
        return OD_MESSAGE
    if domain is None and settings.get("classificationType") is None \
            and settings.get("domainId"):
        # Custom Vision leaves classificationType null on object-detection projects.
        return OD_MESSAGE
    return None


def map_domain(source_domain: dict | None, domain_id: str,
               dest_domains: list[dict]) -> tuple[str, str]:
    """The destination's classification domain for a source project's domain, and a note
    ("" when it is the same domain).

    A compact (exportable) source domain maps to the destination's exportable domain, any
    other to its non-exportable one ("General"): Food, Landmarks, Retail and General [A1]/[A2]
    become General, their compact variants General (compact).
    """
    classification = [d for d in dest_domains if d.get("type", "Classification") == "Classification"]
    if not classification:
        raise ValueError("the destination lists no classification domain")
    for d in classification:
        if d["id"].lower() == (domain_id or "").lower():
            return d["id"], ""
    if source_domain is None:
        pick = next((d for d in classification if not d.get("exportable")), classification[0])
        return pick["id"], f"unknown source domain {domain_id!r} mapped to {pick['name']!r}"
    compact = bool(source_domain.get("exportable")) or "compact" in source_domain.get("name", "").lower()
    pick = next((d for d in classification if bool(d.get("exportable")) == compact), classification[0])
    return pick["id"], f"domain {source_domain.get('name', domain_id)!r} mapped to {pick['name']!r}"


def export_platforms(platforms: Iterable[str], dest_domain: dict | None) -> tuple[list[str], str]:
    """The source's target export platforms the destination domain can export to, and a note
    naming those dropped."""
    offered = {p.upper() for p in (dest_domain or {}).get("exportablePlatforms") or []}
    kept = [p for p in platforms if p.upper() in offered]
    dropped = [p for p in platforms if p.upper() not in offered]
    return [p.upper() for p in kept], (f"export platforms not offered: {', '.join(dropped)}" if dropped else "")


@dataclass(frozen=True)
class SourceImage:
    """One source image: its id, the URI of its original bytes, tags and metadata."""

    id: str
    uri: str
    tag_ids: tuple[str, ...]
    metadata: tuple[tuple[str, str], ...]
    regions: int = 0

    @classmethod
    def from_json(cls, image: dict) -> SourceImage:
        return cls(
            id=str(image["id"]),
            uri=str(image.get("originalImageUri") or image.get("resizedImageUri") or ""),
            tag_ids=tuple(str(t["tagId"]) for t in image.get("tags") or ()),
            metadata=tuple(sorted((str(k), str(v)) for k, v in (image.get("metadata") or {}).items())),
            regions=len(image.get("regions") or ()),
        )


def upload_groups(images: list[tuple[SourceImage, bytes]], max_images: int = MAX_BATCH_IMAGES,
                  max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[tuple[SourceImage, bytes]]]:
    """Upload calls for downloaded images: one metadata per call (the upload API carries
    metadata per batch), within the image-count and byte limits, in source order otherwise."""
    by_metadata: dict[tuple, list[tuple[SourceImage, bytes]]] = {}
    for item in images:
        by_metadata.setdefault(item[0].metadata, []).append(item)
    for group in by_metadata.values():
        batch: list[tuple[SourceImage, bytes]] = []
        size = 0
        for item in group:
            n = len(item[1]) * 4 // 3  # base64
            if batch and (len(batch) >= max_images or size + n > max_bytes):
                yield batch
                batch, size = [], 0
            batch.append(item)
            size += n
        if batch:
            yield batch


def default_state_path(source_endpoint: str, source_key: str, dest_endpoint: str,
                       dest_key: str, env: dict[str, str] | None = None) -> Path:
    """Where the state of one (source, destination) pair lives: the Loupe cache
    ($LOUPE_CACHE, else ~/.cache/loupe) under import/, named by a hash of the endpoints and keys
    (the keys themselves are never written)."""
    env = os.environ if env is None else env
    cache = Path(env["LOUPE_CACHE"]) if env.get("LOUPE_CACHE") else Path.home() / ".cache" / "loupe"
    digest = hashlib.sha256("\n".join(
        (source_endpoint.rstrip("/"), source_key, dest_endpoint.rstrip("/"), dest_key)).encode()
    ).hexdigest()[:20]
    return cache / "import" / f"{digest}.json"


class ImportState:
    """What earlier runs copied: per source project, the ids of the source images the
    destination holds, and the iteration trained and published. Saved after every upload call
    (written to a temporary file, then renamed, so a kill never leaves half a file)."""

    def __init__(self, path: Path | None, data: dict | None = None):
        self.path = path
        self.data = data or {"version": STATE_VERSION, "projects": {}}

    @classmethod
    def load(cls, path: Path | None) -> ImportState:
        if path is None or not path.is_file():
            return cls(path)
        data = json.loads(path.read_text())
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: an import state of another version; remove it to start over")
        return cls(path, data)

    def project(self, project_id: str) -> dict:
        entry = self.data["projects"].setdefault(project_id, {})
        entry.setdefault("images", [])
        return entry

    def copied(self, project_id: str) -> set[str]:
        return set(self.data["projects"].get(project_id, {}).get("images", ()))

    def add_copied(self, project_id: str, image_ids: Iterable[str]) -> None:
        entry = self.project(project_id)
        known = set(entry["images"])
        entry["images"] += [i for i in image_ids if i not in known]

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)


@dataclass
class ProjectReport:
    """What happened to one source project."""

    id: str
    name: str
    status: str = ""  # imported, incomplete, skipped, failed, would import
    message: str = ""
    project_created: bool = False
    tags_created: int = 0
    tags_present: int = 0
    images_total: int = 0
    images_copied: int = 0
    images_duplicate: int = 0
    images_earlier: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"{self.status:<10} {self.id}  {self.name!r}"
        if self.message:
            head += f": {self.message}"
        out = [head]
        touched = (self.project_created or self.tags_created or self.tags_present
                   or self.images_copied or self.images_duplicate or self.images_earlier or self.refused)
        if self.status == "skipped" or (self.status == "failed" and not touched):
            return out + [f"    note: {n}" for n in self.notes]
        if self.status == "would import":
            out.append(f"    project {'exists already' if not self.project_created else 'would be created'}; "
                       f"{self.tags_created} tags to create, {self.tags_present} present; "
                       f"{self.images_total} images, {self.images_earlier} copied by earlier runs")
        else:
            out.append(f"    project {'created' if self.project_created else 'already present'}; "
                       f"tags: {self.tags_created} created, {self.tags_present} already present")
            out.append(f"    images: {self.images_total} in the source; {self.images_copied} copied, "
                       f"{self.images_duplicate} already there (same bytes), "
                       f"{self.images_earlier} copied by earlier runs, {len(self.refused)} refused")
        out += [f"    refused image {i}: {status}" for i, status in self.refused[:20]]
        if len(self.refused) > 20:
            out.append(f"    … and {len(self.refused) - 20} more refused")
        return out + [f"    note: {n}" for n in self.notes]


@dataclass
class Report:
    projects: list[ProjectReport] = field(default_factory=list)
    stopped: bool = False

    def render(self) -> str:
        out = []
        for p in self.projects:
            out += p.lines()
        counts: dict[str, int] = {}
        for p in self.projects:
            counts[p.status] = counts.get(p.status, 0) + 1
        out.append("projects: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))
        if self.stopped:
            out.append("stopped before the end (--stop-after): run the same command again to continue")
        return "\n".join(out)

    @property
    def failed(self) -> bool:
        return any(p.status == "failed" or p.refused for p in self.projects)


# --- the calls, shared with `loupe export-dataset` / `import-dataset` (dataset.py) -----------

def list_images(source: Client, pid: str) -> Iterator[dict]:
    """A source project's images (Custom Vision's Image JSON): the tagged, then the untagged,
    each oldest first, listed PAGE at a time."""
    for kind in ("tagged", "untagged"):
        skip = 0
        while True:
            page = source.train("GET", f"/projects/{pid}/images/{kind}",
                                params={"take": PAGE, "skip": skip, "orderBy": "Oldest"})
            yield from page
            if len(page) < PAGE:
                break
            skip += len(page)


def count_images(source: Client, pid: str) -> int:
    """A source project's tagged plus untagged images."""
    return int(sum(source.train("GET", f"/projects/{pid}/images/{kind}/count")
                   for kind in ("tagged", "untagged")))


def put_project(dest: Client, pid: str, name: str, description: str, domain_id: str,
                classification_type: str, platforms: list[str]) -> bool:
    """Creates project `pid` in Loupe through its import route (idempotent); True when it was
    created now, False when the caller's account held it already.

    Raises:
        ApiError: 409 Conflict when another account holds the id.
    """
    status, _ = dest.train_status("PUT", f"/projects/{pid}", json={
        "name": name, "description": description or "",
        "settings": {"domainId": domain_id, "classificationType": classification_type or "Multiclass",
                     "targetExportPlatforms": platforms}})
    return status == 201


def put_tag(dest: Client, pid: str, tag: dict) -> bool:
    """Creates `tag` (Tag JSON: id, name, description, type) in Loupe's project `pid` with its
    id (idempotent); True when it was created now."""
    status, _ = dest.train_status(
        "PUT", f"/projects/{pid}/tags/{tag['id']}",
        json={"name": tag["name"], "description": tag.get("description") or "",
              "type": tag.get("type") or "Regular"})
    return status == 201


def upload_batch(dest: Client, pid: str, batch: list[tuple[SourceImage, bytes]]) -> list[tuple[str, str]]:
    """One upload call of `batch` (one upload_groups group: a single metadata), each image
    named by its source id; (source image id, status) per image ("OK", "OKDuplicate", or why
    it was refused)."""
    body = {"images": [{"name": img.id, "contents": base64.b64encode(data).decode(),
                        "tagIds": list(img.tag_ids)} for img, data in batch]}
    metadata = dict(batch[0][0].metadata)
    if metadata:
        body["metadata"] = metadata
    try:
        summary = dest.train("POST", f"/projects/{pid}/images/files", json=body)
        return [(img.id, r["status"]) for (img, _), r in zip(batch, summary["images"])]
    except ApiError as err:
        return [(img.id, err.code or str(err.status)) for img, _ in batch]


class StopImport(Exception):
    """--stop-after reached."""


class Importer:
    """Copies projects from `source` (a Custom Vision training API) into `dest` (Loupe).

    Args:
        source, dest: clients of the two endpoints.
        state: what earlier runs copied (updated and saved as this one goes).
        dry_run: read everything, change nothing (neither the destination nor the state).
        stop_after: stop after this many images were uploaded (None: never).
        train: train each imported project; publish: then publish it under the source's
            publish name, with `prediction_resource`.
        progress: the progress display (None: none).
    """

    def __init__(self, source: Client, dest: Client, state: ImportState, dry_run: bool = False,
                 stop_after: int | None = None, train: bool = False, publish: bool = False,
                 prediction_resource: str = "", progress: Progress | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.source, self.dest, self.state = source, dest, state
        self.dry_run, self.stop_after = dry_run, stop_after
        self.train, self.publish = train or publish, publish
        self.prediction_resource = prediction_resource
        self.progress = progress
        self.clock = clock
        self.uploaded = 0

    def run(self, project_ids: list[str] | None = None) -> Report:
        report = Report()
        projects = self.source.train("GET", "/projects")
        if project_ids:
            wanted = {p.lower() for p in project_ids}
            found = {p["id"].lower() for p in projects}
            for missing in sorted(wanted - found):
                report.projects.append(ProjectReport(missing, "", "failed", "no such project in the source"))
            projects = [p for p in projects if p["id"].lower() in wanted]
        source_domains = {d["id"].lower(): d for d in self.source.train("GET", "/domains")}
        dest_domains = self.dest.train("GET", "/domains")
        for project in sorted(projects, key=lambda p: p.get("created") or ""):
            entry = ProjectReport(project["id"], project.get("name", ""))
            report.projects.append(entry)
            reason = skip_reason(project, source_domains)
            if reason:
                entry.status, entry.message = "skipped", reason
                continue
            try:
                self._project(project, source_domains, dest_domains, entry)
            except StopImport:
                entry.status = "incomplete"
                report.stopped = True
                break
            except ApiError as err:
                entry.status, entry.message = "failed", str(err)
        return report

    def _project(self, project: dict, source_domains: dict[str, dict], dest_domains: list[dict],
                 entry: ProjectReport) -> None:
        pid = project["id"]
        settings = project.get("settings") or {}
        domain_id = str(settings.get("domainId") or "")
        dest_domain_id, note = map_domain(source_domains.get(domain_id.lower()), domain_id, dest_domains)
        if note:
            entry.notes.append(note)
        dest_domain = next((d for d in dest_domains if d["id"] == dest_domain_id), None)
        platforms, note = export_platforms(settings.get("targetExportPlatforms") or [], dest_domain)
        if note:
            entry.notes.append(note)
        tags = self.source.train("GET", f"/projects/{pid}/tags")
        entry.images_total = count_images(self.source, pid)
        earlier = self.state.copied(pid)

        if self.dry_run:
            entry.status = "would import"
            existing = self._dest_project(pid)
            entry.project_created = existing is None
            dest_tags = {t["id"] for t in self.dest.train("GET", f"/projects/{pid}/tags")} if existing else set()
            entry.tags_present = sum(1 for t in tags if t["id"] in dest_tags)
            entry.tags_created = len(tags) - entry.tags_present
            entry.images_earlier = len(earlier)
            return

        try:
            entry.project_created = put_project(  # else already there (an earlier run)
                self.dest, pid, project.get("name", ""), project.get("description") or "",
                dest_domain_id, settings.get("classificationType") or "Multiclass", platforms)
        except ApiError as err:
            if err.status == 409:
                entry.status, entry.message = "failed", (
                    f"the destination refused the project id ({err.code}: {err.message}); "
                    "not imported")
                return
            raise
        for tag in tags:
            created = put_tag(self.dest, pid, tag)
            entry.tags_created += created
            entry.tags_present += not created
        self._images(pid, project.get("name", pid), entry, earlier)
        entry.status = "imported"
        if self.train:
            self._train_and_publish(pid, entry)
        self.state.save()

    def _dest_project(self, pid: str) -> dict | None:
        try:
            return self.dest.train("GET", f"/projects/{pid}")
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def _source_images(self, pid: str) -> Iterator[SourceImage]:
        for image in list_images(self.source, pid):
            yield SourceImage.from_json(image)

    def _images(self, pid: str, name: str, entry: ProjectReport, earlier: set[str]) -> None:
        start = self.clock()
        done = 0
        pending: list[SourceImage] = []
        regions = 0

        def show() -> None:
            if self.progress is None or not entry.images_total:
                return
            elapsed = self.clock() - start
            copied = done - entry.images_earlier
            eta = (entry.images_total - done) * elapsed / copied if copied > 0 else None
            # Counts only on a terminal: elsewhere a new label is a new line (progress.py).
            label = f"{name}: {done}/{entry.images_total} images" if self.progress.tty else f"{name}: images"
            self.progress.update(100.0 * done / entry.images_total, label, eta)

        def flush() -> None:
            nonlocal done
            for item in self._copy(pid, pending, entry):
                done += item
                show()
            pending.clear()

        for image in self._source_images(pid):
            regions += image.regions
            if image.id in earlier:
                entry.images_earlier += 1
                done += 1
                continue
            pending.append(image)
            if len(pending) >= MAX_BATCH_IMAGES:
                flush()
        flush()
        show()
        if regions:
            entry.notes.append(f"{regions} regions not copied (object detection is not supported)")

    def _copy(self, pid: str, images: list[SourceImage], entry: ProjectReport) -> Iterator[int]:
        """Downloads and uploads `images`; yields the number done after each upload call."""
        stop = False
        if self.stop_after is not None:
            room = max(0, self.stop_after - self.uploaded)
            stop, images = len(images) > room, images[:room]
        downloaded = []
        for image in images:
            try:
                downloaded.append((image, self.source.fetch(image.uri)))
            except ApiError as err:
                entry.refused.append((image.id, f"download failed: {err.message}"))
        for batch in upload_groups(downloaded):
            results = upload_batch(self.dest, pid, batch)
            ok = []
            for image_id, status in results:
                if status == "OK":
                    entry.images_copied += 1
                    ok.append(image_id)
                elif status == "OKDuplicate":
                    entry.images_duplicate += 1
                    ok.append(image_id)
                else:
                    entry.refused.append((image_id, status))
            self.uploaded += len(batch)
            self.state.add_copied(pid, ok)
            self.state.save()
            yield len(batch)
        if stop:
            raise StopImport

    def _train_and_publish(self, pid: str, entry: ProjectReport) -> None:
        record = self.state.project(pid)
        iteration_id = record.get("iteration")
        if not iteration_id:
            try:
                iteration = self.dest.train("POST", f"/projects/{pid}/train")
            except ApiError as err:
                entry.notes.append(f"not trained: {err}")
                return
            while iteration["status"] == "Training":
                time.sleep(POLL_SECONDS)
                iteration = self.dest.train("GET", f"/projects/{pid}/iterations/{iteration['id']}")
            if iteration["status"] != "Completed":
                entry.notes.append(f"training {iteration['status']}: {iteration.get('trainingErrorDetails') or ''}")
                return
            iteration_id = record["iteration"] = iteration["id"]
            self.state.save()
            entry.notes.append(f"trained iteration {iteration_id}")
        if not self.publish or record.get("published"):
            return
        names = [it["publishName"] for it in sorted(
            self.source.train("GET", f"/projects/{pid}/iterations"),
            key=lambda it: it.get("lastModified") or "", reverse=True) if it.get("publishName")]
        if not names:
            entry.notes.append("not published: no iteration of the source project is published")
            return
        if not self.prediction_resource:
            entry.notes.append("not published: no prediction resource (--prediction-resource or "
                               "LOUPE_PREDICTION_RESOURCE_ID)")
            return
        self.dest.train("POST", f"/projects/{pid}/iterations/{iteration_id}/publish",
                        params={"publishName": names[0], "predictionId": self.prediction_resource})
        record["published"] = names[0]
        entry.notes.append(f"published iteration {iteration_id} as {names[0]!r}")
        if len(names) > 1:
            entry.notes.append("other publish names of the source not used (one per iteration): "
                               + ", ".join(names[1:]))
