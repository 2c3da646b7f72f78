"""`loupe`: projects, uploads, training with a progress bar, performance, publishing, prediction.

It talks to Loupe's Custom Vision REST API (v3.3 training, v3.0 prediction), so it also works
against Azure Custom Vision itself. Keys and endpoint: flags, else LOUPE_ENDPOINT /
LOUPE_TRAINING_KEY / LOUPE_PREDICTION_KEY / LOUPE_PREDICTION_RESOURCE_ID, else the env file that
`make up` writes (.loupe/env; another with --env-file or LOUPE_ENV_FILE).

Exit status: 0 done, 1 refused by the server (or some images refused, or training failed),
2 bad usage, 3 an import stopped early by --stop-after (rerun to continue), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from loupe_cli import dataset, importer
from loupe_cli.api import (
    MAX_BATCH_IMAGES, ApiError, Client, Config, Throttle, batches, default_env_file, image_files, load_config,
)
from loupe_cli.progress import Progress

POLL_SECONDS = 0.5


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


def cmd_projects(client: Client, args) -> int:
    projects = client.train("GET", "/projects")
    rows = [[p["id"], p["name"], p.get("settings", {}).get("classificationType") or ""] for p in projects]
    _print_table(rows, ["ID", "NAME", "TYPE"])
    return 0


def cmd_domains(client: Client, args) -> int:
    rows = [[d["id"], d["name"], d["type"], "yes" if d.get("exportable") else "no"]
            for d in client.train("GET", "/domains")]
    _print_table(rows, ["ID", "NAME", "TYPE", "EXPORTABLE"])
    return 0


def _domain_id(client: Client, name_or_id: str) -> str:
    domains = [d for d in client.train("GET", "/domains") if d["type"] == "Classification"]
    for d in domains:
        if name_or_id in (d["id"], d["name"]):
            return d["id"]
    raise ApiError(404, "NotFound", f"no classification domain {name_or_id!r}; known: "
                   + ", ".join(repr(d["name"]) for d in domains))


def cmd_create_project(client: Client, args) -> int:
    params = {"name": args.name, "classificationType": "Multilabel" if args.multilabel else "Multiclass"}
    if args.description:
        params["description"] = args.description
    if args.domain:
        params["domainId"] = _domain_id(client, args.domain)
    project = client.train("POST", "/projects", params=params)
    print(project["id"])
    return 0


def cmd_tags(client: Client, args) -> int:
    pid = client.project_id(args.project)
    tags = client.train("GET", f"/projects/{pid}/tags")
    _print_table([[t["id"], t["name"], t.get("type", ""), str(t.get("imageCount", ""))] for t in tags],
                 ["ID", "NAME", "TYPE", "IMAGES"])
    return 0


def cmd_upload(client: Client, args) -> int:
    pid = client.project_id(args.project)
    files = image_files(args.paths)
    if not files:
        print("no image files found", file=sys.stderr)
        return 2
    tag_ids = [client.tag_id(pid, name, create=True) for name in args.tag]
    progress = Progress(step=25.0)
    counts: dict[str, int] = {}
    refused: list[tuple[str, str]] = []
    done = 0
    try:
        for batch in batches(files):
            summary = client.upload(pid, batch, tag_ids)
            for path, result in zip(batch, summary["images"]):
                counts[result["status"]] = counts.get(result["status"], 0) + 1
                if not result["status"].startswith("OK"):
                    refused.append((str(path), result["status"]))
            done += len(batch)
            progress.update(100.0 * done / len(files), f"uploaded {done}/{len(files)}")
    finally:
        progress.close()
    print("uploaded: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for path, status in refused:
        print(f"refused {path}: {status}", file=sys.stderr)
    return 1 if refused else 0


def _wait(client: Client, pid: str, iteration: dict, quiet: bool) -> dict:
    progress = None if quiet else Progress()
    try:
        while iteration["status"] == "Training":
            p = iteration.get("progress") or {}
            if progress is not None:
                progress.update(p.get("percent") or 0.0, p.get("stage") or "queued", p.get("etaSeconds"))
            time.sleep(POLL_SECONDS)
            iteration = client.train("GET", f"/projects/{pid}/iterations/{iteration['id']}")
        if progress is not None and iteration["status"] == "Completed":
            progress.update(100.0, "completed")
    finally:
        if progress is not None:
            progress.close()
    return iteration


def _print_performance(client: Client, pid: str, iteration_id: str, threshold: float) -> None:
    perf = client.train("GET", f"/projects/{pid}/iterations/{iteration_id}/performance",
                        params={"threshold": threshold})
    print(f"held-out performance at threshold {threshold:g}: precision {perf['precision']:.3f}, "
          f"recall {perf['recall']:.3f}, average precision {perf['averagePrecision']:.3f}")
    rows = [[t["name"], f"{t['precision']:.3f}", f"{t['recall']:.3f}", f"{t['averagePrecision']:.3f}"]
            for t in perf.get("perTagPerformance", [])]
    if rows:
        _print_table(rows, ["TAG", "PRECISION", "RECALL", "AP"])


def cmd_train(client: Client, args) -> int:
    pid = client.project_id(args.project)
    params = {"trainingType": "Advanced" if args.advanced else "Regular"}
    if args.budget_hours is not None:
        params["reservedBudgetInHours"] = args.budget_hours
    if args.force:
        params["forceTrain"] = "true"
    iteration = client.train("POST", f"/projects/{pid}/train", params=params)
    print(f"iteration {iteration['id']} ({iteration['name']}) training", file=sys.stderr)
    if args.no_wait:
        print(iteration["id"])
        return 0
    try:
        iteration = _wait(client, pid, iteration, args.quiet)
    except KeyboardInterrupt:
        print(f"\nstill training on the server; to cancel: loupe cancel {pid} {iteration['id']}", file=sys.stderr)
        return 130
    print(f"iteration {iteration['id']}: {iteration['status']}")
    if iteration["status"] != "Completed":
        if iteration.get("trainingErrorDetails"):
            print(iteration["trainingErrorDetails"], file=sys.stderr)
        return 1
    _print_performance(client, pid, iteration["id"], args.threshold)
    return 0


def cmd_iterations(client: Client, args) -> int:
    pid = client.project_id(args.project)
    rows = []
    for it in client.train("GET", f"/projects/{pid}/iterations"):
        p = it.get("progress") or {}
        state = it["status"] + (f" {p.get('stage')} {p.get('percent', 0):.0f}%" if it["status"] == "Training" and p else "")
        rows.append([it["id"], it["name"], state, it.get("trainingType") or "", it.get("publishName") or ""])
    _print_table(rows, ["ID", "NAME", "STATUS", "TYPE", "PUBLISHED AS"])
    return 0


def cmd_performance(client: Client, args) -> int:
    pid = client.project_id(args.project)
    _print_performance(client, pid, args.iteration, args.threshold)
    return 0


def cmd_cancel(client: Client, args) -> int:
    pid = client.project_id(args.project)
    client.train("DELETE", f"/projects/{pid}/iterations/{args.iteration}")
    print(f"iteration {args.iteration} deleted (a training in progress is cancelled)")
    return 0


def cmd_publish(client: Client, args) -> int:
    pid = client.project_id(args.project)
    resource = args.prediction_resource or client.config.prediction_resource_id
    if not resource:
        print("no prediction resource: pass --prediction-resource or set LOUPE_PREDICTION_RESOURCE_ID",
              file=sys.stderr)
        return 2
    client.train("POST", f"/projects/{pid}/iterations/{args.iteration}/publish",
                 params={"publishName": args.name, "predictionId": resource})
    print(f"published iteration {args.iteration} as {args.name!r}")
    return 0


def cmd_export(client: Client, args) -> int:
    pid = client.project_id(args.project)
    params = {"platform": args.platform}
    if args.flavor:
        params["flavor"] = args.flavor
    export = client.train("POST", f"/projects/{pid}/iterations/{args.iteration}/export", params=params)
    if export["status"] != "Done" or not export.get("downloadUri"):
        print(f"export {export['status']}; try again later", file=sys.stderr)
        return 1
    out = args.output or Path(f"{args.iteration}.{export['platform'].lower()}.zip")
    size = client.download(export["downloadUri"], out)
    print(f"{out} ({size} bytes)")
    return 0


def cmd_predictions(client: Client, args) -> int:
    pid = client.project_id(args.project)
    token: dict = {"maxCount": min(args.max_count, 256), "orderBy": "Newest"}
    if args.iteration:
        token["iterationId"] = args.iteration
    rows = []
    while len(rows) < args.max_count:
        page = client.train("POST", f"/projects/{pid}/predictions/query", json=token)
        for p in page["results"][: args.max_count - len(rows)]:
            best = p["predictions"][0] if p["predictions"] else {"tagName": "", "probability": 0.0}
            rows.append([p["id"], p["created"], best["tagName"], f"{best['probability']:.3f}"])
        token = page["token"]
        if not token.get("continuation") or not page["results"]:
            break
    _print_table(rows, ["PREDICTION", "CREATED", "TOP TAG", "PROBABILITY"])
    return 0


def cmd_add_predictions(client: Client, args) -> int:
    pid = client.project_id(args.project)
    tag_ids = [client.tag_id(pid, name, create=True) for name in args.tag]
    refused = 0
    for start in range(0, len(args.predictions), MAX_BATCH_IMAGES):
        chunk = args.predictions[start:start + MAX_BATCH_IMAGES]
        summary = client.train("POST", f"/projects/{pid}/images/predictions",
                               json={"images": [{"id": i} for i in chunk], "tagIds": tag_ids})
        for prediction_id, result in zip(chunk, summary["images"]):
            ok = result["status"].startswith("OK")
            refused += not ok
            print(f"{prediction_id}: {result['status']}", file=sys.stdout if ok else sys.stderr)
    return 1 if refused else 0


def cmd_predict(client: Client, args) -> int:
    pid = client.project_id(args.project)
    results = []
    for path in image_files(args.images):
        out = client.predict(pid, args.published_name, path.read_bytes(), store=not args.no_store)
        ranked = sorted(out["predictions"], key=lambda p: p["probability"], reverse=True)[: args.top]
        results.append({"image": str(path), "predictions": [
            {"tagName": p["tagName"], "probability": p["probability"]} for p in ranked]})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(r["image"] + ": " + ", ".join(f"{p['tagName']} {p['probability']:.3f}" for p in r["predictions"]))
    return 0


SOURCE_ENV = ("AZURE_CUSTOM_VISION_ENDPOINT", "AZURE_CUSTOM_VISION_TRAINING_KEY")


def cmd_import_azure(client: Client, args) -> int:
    endpoint = (args.source_endpoint or os.environ.get(SOURCE_ENV[0]) or "").rstrip("/")
    key = args.source_key or os.environ.get(SOURCE_ENV[1]) or ""
    if not endpoint or not key:
        print("loupe: the source needs --source-endpoint and --source-key (or "
              f"{SOURCE_ENV[0]} / {SOURCE_ENV[1]})", file=sys.stderr)
        return 2
    source = Client(Config(endpoint, key), rate=args.source_rate)
    state_path = args.state or importer.default_state_path(
        endpoint, key, client.config.endpoint, client.config.training_key)
    state = importer.ImportState.load(state_path)
    print(f"{'dry run: ' if args.dry_run else ''}importing from {endpoint} into "
          f"{client.config.endpoint}; state: {state_path}", file=sys.stderr)
    progress = None if args.quiet else Progress(step=10.0)
    run = importer.Importer(
        source, client, state, dry_run=args.dry_run, stop_after=args.stop_after,
        train=args.train, publish=args.publish,
        prediction_resource=args.prediction_resource or client.config.prediction_resource_id,
        progress=progress)
    try:
        report = run.run(args.project or None)
    finally:
        if progress is not None:
            progress.close()
    print(report.render())
    if report.failed:
        return 1
    return 3 if report.stopped else 0


def cmd_export_dataset(client: Client, args) -> int:
    source = client
    if args.source_endpoint or args.source_key:
        if not (args.source_endpoint and args.source_key):
            print("loupe: another source needs both --source-endpoint and --source-key", file=sys.stderr)
            return 2
        source = Client(Config(args.source_endpoint.rstrip("/"), args.source_key))
    source.throttle = Throttle(args.source_rate, source.retries)
    pid = source.project_id(args.project)
    print(f"exporting project {pid} from {source.config.endpoint} to {args.folder}", file=sys.stderr)
    progress = None if args.quiet else Progress(step=10.0)
    try:
        report = dataset.Exporter(source, args.folder, progress=progress).run(pid)
    finally:
        if progress is not None:
            progress.close()
    print(report.render())
    return 1 if report.failed else 0


def cmd_import_dataset(client: Client, args) -> int:
    manifest = dataset.read_folder(args.folder, args.name)
    kind = "a plain ImageFolder (folders are tags)" if manifest.get("plain") else dataset.MANIFEST
    print(f"importing {args.folder} ({kind}) into {client.config.endpoint}", file=sys.stderr)
    progress = None if args.quiet else Progress(step=10.0)
    try:
        report = dataset.DatasetImporter(client, new_ids=args.new_ids, progress=progress).run(
            args.folder, manifest)
    finally:
        if progress is not None:
            progress.close()
    print(report.render())
    return 1 if report.refused else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="loupe", description=__doc__.split("\n")[0],
                                  epilog="Keys and endpoint come from flags, LOUPE_* variables or .loupe/env.")
    top.add_argument("--endpoint", help="e.g. http://127.0.0.1:7500")
    top.add_argument("--training-key")
    top.add_argument("--prediction-key")
    top.add_argument("--env-file", type=Path, help="KEY=value file (default: .loupe/env)")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, fn, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        return p

    command("projects", cmd_projects, "list projects")
    command("domains", cmd_domains, "list domains (a compact one makes iterations exportable)")
    p = command("create-project", cmd_create_project, "create a project; prints its id")
    p.add_argument("name")
    p.add_argument("--multilabel", action="store_true", help="several tags per image (default: one)")
    p.add_argument("--domain", help='classification domain name or id, e.g. "General (compact)"')
    p.add_argument("--description")
    p = command("tags", cmd_tags, "list a project's tags with their image counts")
    p.add_argument("project", help="project id or name")
    p = command("upload", cmd_upload, "upload image files (directories are searched) with tags")
    p.add_argument("project", help="project id or name")
    p.add_argument("paths", nargs="+", help="image files or directories")
    p.add_argument("--tag", action="append", default=[], help="tag name (created if missing); repeatable")
    p = command("train", cmd_train, "train a new iteration and show its progress until it ends")
    p.add_argument("project", help="project id or name")
    p.add_argument("--advanced", action="store_true", help="Advanced training (slower, a hidden-layer head)")
    p.add_argument("--budget-hours", type=int, help="reservedBudgetInHours (bounds Advanced training)")
    p.add_argument("--force", action="store_true", help="train even if nothing changed")
    p.add_argument("--no-wait", action="store_true", help="print the iteration id and return")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threshold", type=float, default=0.5)
    p = command("iterations", cmd_iterations, "list a project's iterations")
    p.add_argument("project", help="project id or name")
    p = command("performance", cmd_performance, "held-out precision/recall of an iteration, per tag")
    p.add_argument("project", help="project id or name")
    p.add_argument("iteration", help="iteration id")
    p.add_argument("--threshold", type=float, default=0.5)
    p = command("cancel", cmd_cancel, "delete an iteration (cancels it while it trains)")
    p.add_argument("project", help="project id or name")
    p.add_argument("iteration", help="iteration id")
    p = command("publish", cmd_publish, "publish an iteration under a name for prediction")
    p.add_argument("project", help="project id or name")
    p.add_argument("iteration", help="iteration id")
    p.add_argument("name", help="publish name")
    p.add_argument("--prediction-resource", help="prediction resource id (default: LOUPE_PREDICTION_RESOURCE_ID)")
    p = command("export", cmd_export, "export an iteration (compact domains) and download it")
    p.add_argument("project", help="project id or name")
    p.add_argument("iteration", help="iteration id")
    p.add_argument("--platform", default="ONNX", help="ONNX, or DockerFile for a container")
    p.add_argument("--flavor", help="ONNX10 / ONNX12 for ONNX; Linux (default) / ARM for DockerFile")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: <iteration>.<platform>.zip)")
    p = command("predictions", cmd_predictions, "list the images predicted and kept, newest first")
    p.add_argument("project", help="project id or name")
    p.add_argument("--iteration", help="only those one iteration predicted")
    p.add_argument("--max-count", type=int, default=50)
    p = command("add-predictions", cmd_add_predictions,
                "add predicted images to the training set with tags (improve the model from them)")
    p.add_argument("project", help="project id or name")
    p.add_argument("predictions", nargs="+", help="prediction ids (from `loupe predictions`)")
    p.add_argument("--tag", action="append", default=[], help="tag name (created if missing); repeatable")
    p = command("predict", cmd_predict, "classify images with a published iteration")
    p.add_argument("project", help="project id or name")
    p.add_argument("published_name")
    p.add_argument("images", nargs="+", help="image files or directories")
    p.add_argument("--top", type=int, default=3, help="predictions shown per image")
    p.add_argument("--no-store", action="store_true", help="do not keep the images in the project")
    p.add_argument("--json", action="store_true", help="JSON output")
    p = command("import-azure", cmd_import_azure,
                "copy Custom Vision classification projects (settings, tags, images with tags and "
                "metadata) into Loupe, keeping project and tag ids; resumable")
    p.add_argument("--source-endpoint", help="the Custom Vision (or Loupe) training endpoint, "
                   f"e.g. https://<resource>.cognitiveservices.azure.com (default: ${SOURCE_ENV[0]})")
    p.add_argument("--source-key", help=f"its training key (default: ${SOURCE_ENV[1]})")
    p.add_argument("--project", action="append", default=[],
                   help="a source project id to copy (repeatable; default: every project)")
    p.add_argument("--dry-run", action="store_true", help="report what would be copied; change nothing")
    p.add_argument("--train", action="store_true", help="train each imported project")
    p.add_argument("--publish", action="store_true",
                   help="train, then publish under the source's publish name")
    p.add_argument("--prediction-resource", help="for --publish (default: LOUPE_PREDICTION_RESOURCE_ID)")
    p.add_argument("--source-rate", type=float, default=10.0,
                   help="source calls per second at most (Custom Vision S0 allows 10, F0 2; 0: unpaced)")
    p.add_argument("--state", type=Path,
                   help="resume file (default: ~/.cache/loupe/import/<hash>.json, or under $LOUPE_CACHE)")
    p.add_argument("--stop-after", type=int, help="stop after uploading this many images (rerun to continue)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = command("export-dataset", cmd_export_dataset,
                "write a project (Loupe's or Azure's) to a folder: one sub-folder of images per "
                "tag (ImageFolder) and manifest.json with tags, metadata and ids; resumable")
    p.add_argument("project", help="project id or name")
    p.add_argument("folder", type=Path, help="the folder to write (created; a rerun resumes)")
    p.add_argument("--source-endpoint", help="another Custom Vision (or Loupe) training endpoint "
                   "to export from, e.g. https://<resource>.cognitiveservices.azure.com "
                   "(default: the endpoint loupe uses)")
    p.add_argument("--source-key", help="its training key")
    p.add_argument("--source-rate", type=float, default=10.0,
                   help="source calls per second at most (Custom Vision S0 allows 10, F0 2; 0: unpaced)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = command("import-dataset", cmd_import_dataset,
                "import a folder from export-dataset (project and tag ids kept) or a plain "
                "ImageFolder (sub-folder names are tag names) into Loupe; a rerun uploads nothing twice")
    p.add_argument("folder", type=Path)
    p.add_argument("--new-ids", action="store_true",
                   help="new project and tag ids (a second copy in the same install; a rerun makes another)")
    p.add_argument("--name", help="the project's name (default: the manifest's, or the folder's name)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        env_file = args.env_file or default_env_file()
        config = load_config({"LOUPE_ENDPOINT": args.endpoint, "LOUPE_TRAINING_KEY": args.training_key,
                              "LOUPE_PREDICTION_KEY": args.prediction_key}, env_file=env_file)
    except ValueError as err:
        if not (args.command == "export-dataset" and args.source_endpoint and args.source_key):
            print(f"loupe: {err}", file=sys.stderr)
            return 2
        # Exporting from Azure needs no Loupe at all.
        config = Config(args.source_endpoint.rstrip("/"), args.source_key)
    try:
        return args.fn(Client(config), args)
    except ApiError as err:
        print(f"loupe: {err}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as err:
        print(f"loupe: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
