"""`loupe export-dataset` / `loupe import-dataset`: a project as a folder.

The folder is an ImageFolder (one sub-folder per tag, `<folder>/<image id>.<ext>`; an image
with several tags is in each of their folders, as hard links where the file system allows;
untagged images in `_untagged/`) plus `manifest.json`, the source of truth: the project (id,
name, description, settings), its tags (id, name, description, type, folder) and every image
(id, files, sha256, width, height, tag ids, metadata, created).

The source of an export is read through Custom Vision's Training REST API (importer.py's
listing, so Azure or Loupe); an import writes into Loupe with importer.py's calls (the PUT
routes keep ids; `new_ids` creates new ones). A folder without manifest.json imports as a plain
ImageFolder: folder names are tag names.

The pure parts (folder names, the manifest, checking it, reading a plain ImageFolder) come
first; `Exporter` and `DatasetImporter` make the calls.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from loupe_cli import importer
from loupe_cli.api import IMAGE_SUFFIXES, MAX_BATCH_IMAGES, ApiError, Client
from loupe_cli.importer import SourceImage, upload_groups
from loupe_cli.progress import Progress

FORMAT = "loupe-dataset"
VERSION = 1
MANIFEST = "manifest.json"
UNTAGGED = "_untagged"
#: Bytes of a folder name at most before it is shortened (most file systems allow 255).
MAX_FOLDER_BYTES = 120
#: How many images are downloaded between two writes of the (partial) manifest.
SAVE_EVERY = 64

# Characters no folder name may hold on some system (Windows' list, plus the escape itself),
# and control characters.
_UNSAFE = set('/\\:*?"<>|%') | {chr(c) for c in range(32)} | {"\x7f"}
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10))}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF8", "gif"),
          (b"BM", "bmp"), (b"II*\x00", "tif"), (b"MM\x00*", "tif"))


class DatasetError(ValueError):
    """A folder or manifest that cannot be imported (or exported into); the message says why."""


# --- pure: names, the manifest, checks ----------------------------------------------------

def _escape_char(c: str) -> str:
    return "".join(f"%{b:02X}" for b in c.encode())


def folder_name(tag_name: str) -> str:
    """A folder name for a tag name that is safe on Linux, macOS and Windows: unsafe characters
    percent-escaped (`a/b` -> `a%2Fb`, `%` itself -> `%25`), as are a leading `.` or `_` (so no
    tag folder is `.`, `..`, hidden, or `_untagged`), a trailing `.` or space, and the first
    letter of a Windows device name (`CON` -> `%43ON`). Long names are cut, with a hash of the
    whole name. Unescaping is not needed: the manifest maps each tag to its folder."""
    out = [_escape_char(c) if c in _UNSAFE else c for c in tag_name]
    if not out:
        return "%00"
    if out[0] in (".", "_"):
        out[0] = _escape_char(out[0])
    if out[-1] in (".", " "):
        out[-1] = _escape_char(out[-1])
    name = "".join(out)
    if name.split(".")[0].upper() in _RESERVED:
        name = _escape_char(name[0]) + name[1:]
    if len(name.encode()) > MAX_FOLDER_BYTES:
        digest = hashlib.sha256(tag_name.encode()).hexdigest()[:12]
        cut = name.encode()[:MAX_FOLDER_BYTES - 13].decode(errors="ignore")
        name = f"{cut}~{digest}"
    return name


def tag_folders(tags: Iterable[dict]) -> dict[str, str]:
    """Folder per tag id, unique also on a case-insensitive file system (a later tag whose
    folder collides gets `~2`, `~3`, ...)."""
    taken = {UNTAGGED.lower()}
    out = {}
    for tag in tags:
        base = folder_name(tag["name"])
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}~{n}"
        taken.add(name.lower())
        out[tag["id"]] = name
    return out


def image_extension(data: bytes) -> str:
    """The file extension for image bytes by their signature ("bin" when unknown)."""
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "bin"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_entry(image: dict, data: bytes, folders: dict[str, str]) -> dict:
    """An image's manifest entry from Custom Vision's Image JSON and its original bytes: a file
    in each of its tags' folders (in `_untagged/` when it has none)."""
    tag_ids = [str(t["tagId"]) for t in image.get("tags") or ()]
    name = f"{image['id']}.{image_extension(data)}"
    files = [f"{folders[t]}/{name}" for t in tag_ids if t in folders] or [f"{UNTAGGED}/{name}"]
    return {"id": str(image["id"]), "files": files, "sha256": sha256(data),
            "width": image.get("width"), "height": image.get("height"),
            "tagIds": tag_ids, "metadata": dict(image.get("metadata") or {}),
            "created": image.get("created")}


def build_manifest(project: dict, domain: dict | None, tags: list[dict], images: list[dict],
                   source: str, complete: bool, now: str) -> dict:
    """The manifest of an export (`images`: image_entry's, in source order)."""
    settings = project.get("settings") or {}
    folders = tag_folders(tags)
    return {
        "format": FORMAT, "version": VERSION, "complete": complete, "exported": now,
        "source": source,
        "project": {"id": project["id"], "name": project.get("name", ""),
                    "description": project.get("description") or "",
                    "settings": {"classificationType": settings.get("classificationType") or "Multiclass",
                                 "domainId": settings.get("domainId"),
                                 "domain": {k: domain.get(k) for k in ("id", "name", "type", "exportable")}
                                 if domain else None,
                                 "targetExportPlatforms": list(settings.get("targetExportPlatforms") or [])}},
        "untaggedFolder": UNTAGGED,
        "tags": [{"id": t["id"], "name": t["name"], "description": t.get("description") or "",
                  "type": t.get("type") or "Regular", "folder": folders[t["id"]]} for t in tags],
        "images": images,
    }


_SAFE_PATH = re.compile(r"^[^/\\]+/[^/\\]+$")


def validate_manifest(manifest: object) -> list[str]:
    """What is wrong with a manifest (an empty list: nothing): format, version, completeness,
    the fields import needs, tag ids the images name, and file paths (each `folder/file`, never
    outside the folder)."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return [f"not a {FORMAT} manifest (no \"format\": \"{FORMAT}\")"]
    if manifest.get("version") != VERSION:
        return [f"manifest version {manifest.get('version')!r} is not known to this loupe "
                f"(it reads version {VERSION})"]
    problems = []
    if not manifest.get("complete"):
        problems.append("the export did not finish (\"complete\": false): run export-dataset again")
    project = manifest.get("project")
    if not isinstance(project, dict) or not project.get("id") or not isinstance(project.get("name"), str):
        problems.append("project: needs an id and a name")
    tags = manifest.get("tags")
    images = manifest.get("images")
    if not isinstance(tags, list) or not isinstance(images, list):
        return problems + ["tags and images must be lists"]
    tag_ids = set()
    for i, tag in enumerate(tags):
        if not isinstance(tag, dict) or not tag.get("id") or not tag.get("name"):
            problems.append(f"tags[{i}]: needs an id and a name")
            continue
        if tag.get("type", "Regular") not in ("Regular", "Negative"):
            problems.append(f"tag {tag['id']}: unknown type {tag.get('type')!r}")
        tag_ids.add(tag["id"])
    seen = set()
    for i, image in enumerate(images):
        where = f"image {image.get('id')}" if isinstance(image, dict) and image.get("id") else f"images[{i}]"
        if not isinstance(image, dict) or not image.get("id"):
            problems.append(f"{where}: no id")
            continue
        if image["id"] in seen:
            problems.append(f"{where}: listed twice")
        seen.add(image["id"])
        files = image.get("files")
        if not isinstance(files, list) or not files:
            problems.append(f"{where}: no files")
        else:
            for f in files:
                if not isinstance(f, str) or not _SAFE_PATH.match(f) or ".." in f.split("/"):
                    problems.append(f"{where}: file path {f!r} is not <folder>/<file>")
        if not isinstance(image.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", image["sha256"]):
            problems.append(f"{where}: no sha256")
        unknown = [t for t in image.get("tagIds") or () if t not in tag_ids]
        if unknown:
            problems.append(f"{where}: unknown tag ids {', '.join(unknown)}")
        if not isinstance(image.get("metadata") or {}, dict):
            problems.append(f"{where}: metadata is not an object")
    return problems


def plain_manifest(files: dict[str, list[str]], digests: dict[str, str], name: str) -> dict:
    """A manifest for a plain ImageFolder (no manifest.json): one tag per folder, named as it;
    files with the same bytes are one image with every folder's tag (so multilabel when any
    image is in several folders); files at the top or in `_untagged/` are untagged.

    Args:
        files: relative paths (`folder/file`, or `file` at the top) per folder name ("" the top).
        digests: sha256 per relative path.
        name: the project's name.
    """
    tag_names = sorted(f for f in files if f and f != UNTAGGED)
    tags = [{"id": f"folder:{n}", "name": n, "description": "", "type": "Regular", "folder": n}
            for n in tag_names]
    images: dict[str, dict] = {}
    for folder in sorted(files):
        for rel in sorted(files[folder]):
            digest = digests[rel]
            entry = images.setdefault(digest, {"id": digest[:32], "files": [], "sha256": digest,
                                               "tagIds": [], "metadata": {}})
            entry["files"].append(rel)
            if folder and folder != UNTAGGED and f"folder:{folder}" not in entry["tagIds"]:
                entry["tagIds"].append(f"folder:{folder}")
    multilabel = any(len(i["tagIds"]) > 1 for i in images.values())
    return {"format": FORMAT, "version": VERSION, "complete": True, "plain": True,
            "project": {"id": None, "name": name, "description": "",
                        "settings": {"classificationType": "Multilabel" if multilabel else "Multiclass",
                                     "domainId": None, "domain": None, "targetExportPlatforms": []}},
            "untaggedFolder": UNTAGGED, "tags": tags, "images": list(images.values())}


# --- export ---------------------------------------------------------------------------------

def _file_sha256(path: Path) -> str | None:
    try:
        return sha256(path.read_bytes())
    except OSError:
        return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _place(data: bytes, paths: list[Path], digest: str) -> None:
    """Writes `data` to the first path and hard-links the others to it (a copy where the file
    system has no hard links); a file already there with the right bytes is kept."""
    first = paths[0]
    if _file_sha256(first) != digest:
        first.parent.mkdir(parents=True, exist_ok=True)
        tmp = first.with_name(first.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(first)
    for other in paths[1:]:
        if _file_sha256(other) == digest:
            continue
        other.parent.mkdir(parents=True, exist_ok=True)
        other.unlink(missing_ok=True)
        try:
            os.link(first, other)
        except OSError:
            other.write_bytes(data)


@dataclass
class ExportReport:
    project_id: str = ""
    name: str = ""
    folder: str = ""
    images: int = 0
    downloaded: int = 0
    present: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def render(self) -> str:
        out = [f"exported {self.project_id}  {self.name!r} to {self.folder}",
               f"    images: {self.images}; {self.downloaded} downloaded, {self.present} already "
               f"in the folder (same sha256), {len(self.failed)} failed"
               + (f"; {self.removed} files of an earlier export removed" if self.removed else "")]
        out += [f"    failed image {i}: {why}" for i, why in self.failed[:20]]
        if len(self.failed) > 20:
            out.append(f"    … and {len(self.failed) - 20} more failed")
        if self.failed:
            out.append("    the manifest is marked incomplete: run the same command again")
        return "\n".join(out)


class Exporter:
    """Writes one project of `source` (a Custom Vision training API) into `folder`.

    A rerun downloads only the images the folder's manifest does not list with files of the
    right sha256; the manifest is written every SAVE_EVERY images ("complete": false until the
    end), so a killed export resumes too.
    """

    def __init__(self, source: Client, folder: Path, progress: Progress | None = None,
                 now: Callable[[], str] | None = None):
        self.source, self.folder, self.progress = source, folder, progress
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    def _previous(self, project_id: str) -> dict[str, dict]:
        path = self.folder / MANIFEST
        if not path.is_file():
            if self.folder.is_dir() and any(self.folder.iterdir()):
                raise DatasetError(f"{self.folder} is not empty and holds no {MANIFEST}: "
                                   "export into an empty or new folder")
            return {}
        try:
            old = json.loads(path.read_text())
        except ValueError as err:
            raise DatasetError(f"{path}: not JSON ({err}); remove it to export from the start") from None
        if not isinstance(old, dict) or old.get("format") != FORMAT or old.get("version") != VERSION:
            raise DatasetError(f"{path}: a manifest of another format or version; export into a new folder")
        if (old.get("project") or {}).get("id") != project_id:
            raise DatasetError(f"{self.folder} holds project {(old.get('project') or {}).get('id')}, "
                               f"not {project_id}: export into another folder")
        return {i["id"]: i for i in old.get("images") or () if isinstance(i, dict) and "id" in i}

    def run(self, project_id: str) -> ExportReport:
        project = self.source.train("GET", f"/projects/{project_id}")
        report = ExportReport(project["id"], project.get("name", ""), str(self.folder))
        previous = self._previous(project["id"])
        self.folder.mkdir(parents=True, exist_ok=True)
        domain_id = str((project.get("settings") or {}).get("domainId") or "").lower()
        domain = next((d for d in self.source.train("GET", "/domains") if d["id"].lower() == domain_id), None)
        tags = self.source.train("GET", f"/projects/{project['id']}/tags")
        folders = tag_folders(tags)
        report.images = importer.count_images(self.source, project["id"])
        entries: list[dict] = []

        def save(complete: bool) -> None:
            _write_json(self.folder / MANIFEST, build_manifest(
                project, domain, tags, entries, self.source.config.endpoint, complete, self.now()))

        for image in importer.list_images(self.source, project["id"]):
            old = previous.get(str(image["id"]))
            name_tags = [str(t["tagId"]) for t in image.get("tags") or ()]
            if old and old.get("tagIds") == name_tags:
                probe = image_entry(image, b"", folders)  # paths without the extension
                stems = [p.rsplit(".", 1)[0] for p in probe["files"]]
                if [f.rsplit(".", 1)[0] for f in old["files"]] == stems and all(
                        _file_sha256(self.folder / f) == old["sha256"] for f in old["files"]):
                    entries.append({**old, "metadata": dict(image.get("metadata") or {}),
                                    "width": image.get("width"), "height": image.get("height"),
                                    "created": image.get("created")})
                    report.present += 1
                    self._show(report)
                    continue
            uri = image.get("originalImageUri") or image.get("resizedImageUri") or ""
            try:
                data = self.source.fetch(uri)
            except ApiError as err:
                report.failed.append((str(image["id"]), err.message))
                continue
            entry = image_entry(image, data, folders)
            _place(data, [self.folder / f for f in entry["files"]], entry["sha256"])
            entries.append(entry)
            report.downloaded += 1
            if report.downloaded % SAVE_EVERY == 0:
                save(False)
            self._show(report)
        save(not report.failed)
        # Files of an earlier export that this one does not list (an image re-tagged or
        # deleted in the source) go, so the folders stay what the manifest says.
        kept = {f for e in entries for f in e["files"]}
        for old in previous.values():
            for f in old.get("files") or ():
                if f not in kept and _SAFE_PATH.match(str(f)) and ".." not in str(f).split("/"):
                    (self.folder / f).unlink(missing_ok=True)
                    report.removed += 1
        return report

    def _show(self, report: ExportReport) -> None:
        if self.progress is None or not report.images:
            return
        done = report.downloaded + report.present + len(report.failed)
        label = f"{report.name}: {done}/{report.images} images" if self.progress.tty else f"{report.name}: images"
        self.progress.update(100.0 * done / report.images, label)


# --- import ---------------------------------------------------------------------------------

def read_folder(folder: Path, name: str | None = None) -> dict:
    """The manifest of a dataset folder: its manifest.json, or one made for a plain
    ImageFolder (plain_manifest).

    Raises:
        DatasetError: no such folder, unreadable or invalid manifest, no images.
    """
    if not folder.is_dir():
        raise DatasetError(f"no such folder: {folder}")
    path = folder / MANIFEST
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
        except ValueError as err:
            raise DatasetError(f"{path}: not JSON ({err})") from None
        problems = validate_manifest(manifest)
        if problems:
            raise DatasetError(f"{path}:\n  " + "\n  ".join(problems))
        if name:
            manifest["project"]["name"] = name
        return manifest
    files: dict[str, list[str]] = {}
    digests: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        rel = p.relative_to(folder)
        top = rel.parts[0] if len(rel.parts) > 1 else ""
        files.setdefault(top, []).append(rel.as_posix())
        digests[rel.as_posix()] = sha256(p.read_bytes())
    if not files:
        raise DatasetError(f"{folder}: no {MANIFEST} and no image files "
                           f"({', '.join(IMAGE_SUFFIXES)}) in it or its sub-folders")
    return plain_manifest(files, digests, name or folder.resolve().name)


def check_files(folder: Path, manifest: dict) -> list[str]:
    """Files the manifest lists that are missing or whose bytes do not have its sha256."""
    problems = []
    for image in manifest["images"]:
        for f in image["files"]:
            got = _file_sha256(folder / f)
            if got is None:
                problems.append(f"image {image['id']}: {f} is missing")
            elif got != image["sha256"]:
                problems.append(f"image {image['id']}: {f} has sha256 {got}, the manifest says {image['sha256']}")
    return problems


@dataclass
class ImportReport:
    project_id: str = ""
    name: str = ""
    project_created: bool = False
    tags_created: int = 0
    tags_present: int = 0
    images: int = 0
    copied: int = 0
    duplicate: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        out = [f"imported {self.project_id}  {self.name!r}",
               f"    project {'created' if self.project_created else 'already present'}; "
               f"tags: {self.tags_created} created, {self.tags_present} already present",
               f"    images: {self.images} in the folder; {self.copied} uploaded, {self.duplicate} "
               f"already there (same bytes), {len(self.refused)} refused"]
        out += [f"    refused image {i}: {why}" for i, why in self.refused[:20]]
        if len(self.refused) > 20:
            out.append(f"    … and {len(self.refused) - 20} more refused")
        return "\n".join(out + [f"    note: {n}" for n in self.notes])


class DatasetImporter:
    """Imports a dataset folder into Loupe (`dest`).

    Args:
        new_ids: create the project and tags with new ids (POST) instead of the manifest's
            (PUT, idempotent), e.g. for a second copy in the same install. A plain ImageFolder
            always gets new ids. Without kept ids a rerun creates another project.
    """

    def __init__(self, dest: Client, new_ids: bool = False, progress: Progress | None = None):
        self.dest, self.new_ids, self.progress = dest, new_ids, progress

    def run(self, folder: Path, manifest: dict) -> ImportReport:
        problems = check_files(folder, manifest)
        if problems:
            more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise DatasetError(f"{folder}: {len(problems)} files do not match the manifest; nothing "
                               "was imported:\n  " + "\n  ".join(problems[:20]) + more)
        p = manifest["project"]
        settings = p.get("settings") or {}
        report = ImportReport(name=p["name"], images=len(manifest["images"]))
        dest_domains = self.dest.train("GET", "/domains")
        domain_id = str(settings.get("domainId") or "")
        if domain_id or settings.get("domain"):
            domain_id, note = importer.map_domain(settings.get("domain"), domain_id, dest_domains)
            if note:
                report.notes.append(note)
        else:
            domain_id = next(d["id"] for d in dest_domains
                             if d.get("type", "Classification") == "Classification" and not d.get("exportable"))
        dest_domain = next((d for d in dest_domains if d["id"] == domain_id), None)
        platforms, note = importer.export_platforms(settings.get("targetExportPlatforms") or [], dest_domain)
        if note:
            report.notes.append(note)
        ctype = settings.get("classificationType") or "Multiclass"
        keep = not self.new_ids and p.get("id")
        if keep:
            pid = p["id"]
            try:
                report.project_created = importer.put_project(
                    self.dest, pid, p["name"], p.get("description", ""), domain_id, ctype, platforms)
            except ApiError as err:
                if err.status == 409:  # ids are unique per install
                    raise ApiError(409, err.code, f"{err.message}: project {pid} is another "
                                   "account's in this install; --new-ids imports a copy") from None
                raise
        else:
            pid = self.dest.train("POST", "/projects", params={
                "name": p["name"], "description": p.get("description", ""), "domainId": domain_id,
                "classificationType": ctype})["id"]
            report.project_created = True
        report.project_id = pid
        tag_map = {}
        for tag in manifest["tags"]:
            if keep:
                created = importer.put_tag(self.dest, pid, tag)
                report.tags_created += created
                report.tags_present += not created
                tag_map[tag["id"]] = tag["id"]
            else:
                params = {"name": tag["name"], "type": tag.get("type") or "Regular"}
                if tag.get("description"):
                    params["description"] = tag["description"]
                tag_map[tag["id"]] = self.dest.train("POST", f"/projects/{pid}/tags", params=params)["id"]
                report.tags_created += 1
        self._images(folder, pid, manifest, tag_map, report)
        return report

    def _images(self, folder: Path, pid: str, manifest: dict, tag_map: dict[str, str],
                report: ImportReport) -> None:
        done = 0
        pending: list[tuple[SourceImage, bytes]] = []

        def flush() -> None:
            nonlocal done
            for batch in upload_groups(pending):
                for image_id, status in importer.upload_batch(self.dest, pid, batch):
                    if status == "OK":
                        report.copied += 1
                    elif status == "OKDuplicate":
                        report.duplicate += 1
                    else:
                        report.refused.append((image_id, status))
                done += len(batch)
                if self.progress is not None and report.images:
                    label = (f"{report.name}: {done}/{report.images} images" if self.progress.tty
                             else f"{report.name}: images")
                    self.progress.update(100.0 * done / report.images, label)
            pending.clear()

        for image in manifest["images"]:
            data = (folder / image["files"][0]).read_bytes()
            meta = tuple(sorted((str(k), str(v)) for k, v in (image.get("metadata") or {}).items()))
            pending.append((SourceImage(image["id"], "", tuple(tag_map[t] for t in image.get("tagIds") or ()),
                                        meta), data))
            if len(pending) >= MAX_BATCH_IMAGES:
                flush()
        flush()
