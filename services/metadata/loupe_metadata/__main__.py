"""`python -m loupe_metadata [serve|migrate|create-account --name NAME|ensure-account --name NAME]`.

serve (the default) applies pending migrations, then serves gRPC until SIGTERM/SIGINT;
migrate only applies migrations (the Helm migration Job); create-account prints a new account
with its keys as JSON (the local stack's bootstrap); ensure-account creates the account whose
id and keys are in LOUPE_ACCOUNT_ID, LOUPE_ACCOUNT_TRAINING_KEY and LOUPE_ACCOUNT_PREDICTION_KEY
unless it exists (the Helm chart's bootstrap hook: the chart's Secret holds them) and prints it
without its keys.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from google.protobuf import json_format

from loupe_common import grpcserver
from loupe_common.config import load
from loupe_metadata.config import MetadataConfig
from loupe_metadata.core import MetadataCore
from loupe_metadata.migrate import migrate
from loupe_metadata.server import build_server, open_pool

log = logging.getLogger("loupe_metadata")

#: The environment of `ensure-account` (from a Secret, never from the command line).
ACCOUNT_VARIABLES = ("LOUPE_ACCOUNT_ID", "LOUPE_ACCOUNT_TRAINING_KEY", "LOUPE_ACCOUNT_PREDICTION_KEY")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loupe_metadata")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="migrate, then serve gRPC (the default)")
    commands.add_parser("migrate", help="apply pending schema migrations and exit")
    create = commands.add_parser("create-account", help="create an account, print it as JSON")
    create.add_argument("--name", required=True)
    ensure = commands.add_parser("ensure-account", help="create the account given by LOUPE_ACCOUNT_* unless it exists")
    ensure.add_argument("--name", required=True)
    args = parser.parse_args(argv)

    environ = os.environ
    if args.command in ("migrate", "ensure-account", "create-account"):
        # One-off commands on the database serve no RPC: the Helm hook Jobs that run them
        # (pre-install, before the chart's Secrets exist) need no internal secret.
        environ = {"LOUPE_INTERNAL_SECRET": "", **os.environ}
    config = load(MetadataConfig, environ)
    grpcserver.setup_logging(config.log_level)
    applied = migrate(config.postgres_dsn)
    if applied:
        log.info("applied migrations %s", applied)
    if args.command == "migrate":
        return 0
    if args.command == "ensure-account":
        missing = [k for k in ACCOUNT_VARIABLES if not os.environ.get(k)]
        if missing:
            parser.error("missing environment variables: " + ", ".join(missing))
        pool = open_pool(config)
        try:
            account = MetadataCore(pool).accounts.ensure_account(
                os.environ["LOUPE_ACCOUNT_ID"], args.name, os.environ["LOUPE_ACCOUNT_TRAINING_KEY"],
                os.environ["LOUPE_ACCOUNT_PREDICTION_KEY"],
            )
        finally:
            pool.close()
        print(json.dumps({"id": account.id, "name": account.name,
                          "prediction_resource_id": account.prediction_resource_id}))
        return 0
    if args.command == "create-account":
        pool = open_pool(config)
        try:
            account = MetadataCore(pool).accounts.create_account(args.name)
        finally:
            pool.close()
        json.dump(json_format.MessageToDict(account, preserving_proto_field_name=True), sys.stdout)
        sys.stdout.write("\n")
        return 0

    return grpcserver.run(build_server, config)


if __name__ == "__main__":
    sys.exit(main())
