"""`python -m loupe_stack install|up|down|status|logs|env` (what the Makefile calls)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from loupe_stack import install
from loupe_stack.layout import DEFAULT_BASE_PORT, REPO, Layout
from loupe_stack.stack import SERVICES, Stack, read_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loupe_stack")
    parser.add_argument("command", choices=["install", "up", "down", "status", "logs", "env"])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("LOUPE_DATA", REPO / ".loupe")))
    parser.add_argument("--base-port", type=int, default=int(os.environ.get("LOUPE_BASE_PORT", DEFAULT_BASE_PORT)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    stack = Stack(Layout(data=args.data.resolve(), base_port=args.base_port))

    if args.command == "install":
        install.install_all()
    elif args.command == "up":
        started = time.monotonic()
        stack.start()
        env = read_env(stack.layout.env_file)
        print(
            f"\nLoupe is up in {time.monotonic() - started:.1f} s.\n"
            f"  Web UI and REST API: {env['LOUPE_ENDPOINT']}/\n"
            f"  Public gRPC API:     {env['LOUPE_GRPC_ENDPOINT']}   (docs/grpc.md)\n"
            f"  Keys and endpoint:   {stack.layout.env_file}   (source it: . {stack.layout.env_file})\n"
            f"  Training-Key:        {env['LOUPE_TRAINING_KEY']}\n"
            f"  Prediction-Key:      {env['LOUPE_PREDICTION_KEY']}\n"
            f"  Prediction resource: {env['LOUPE_PREDICTION_RESOURCE_ID']}\n"
            f"  Processes: make status   Logs: make logs   Stop: make down (data is kept in {stack.layout.data})"
        )
    elif args.command == "down":
        stack.stop()
        print("stopped (data kept in %s)" % stack.layout.data)
    elif args.command == "status":
        print(stack.status())
    elif args.command == "logs":
        print(f"logs are in {stack.layout.logs}/:")
        for name in ("postgres", "minio", "kafka", "torchserve", *SERVICES):
            print(f"  {name:<11} {stack.layout.logs / (name + '.log')}")
        print(f"  supervisord {stack.layout.logs / 'supervisord.log'}")
    elif args.command == "env":
        print(stack.layout.env_file.read_text() if stack.layout.env_file.exists() else "not bootstrapped yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
