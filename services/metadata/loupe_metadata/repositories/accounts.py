"""Accounts and their API keys (stored only as hashes)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from loupe.v1 import metadata_pb2 as pb
from loupe_common.errors import BadRequest, Conflict, NotFound
from loupe_metadata import rules
from loupe_metadata.db import Repository


@dataclass(frozen=True)
class KeyInfo:
    account_id: str
    kind: str
    prediction_resource_id: str


def _account_pb(account_id: str, name: str, training_key: str, prediction_key: str) -> pb.Account:
    """An account with its plain keys: only the calls that create one ever return them."""
    return pb.Account(
        id=account_id,
        name=name,
        training_key=training_key,
        prediction_key=prediction_key,
        prediction_resource_id=rules.prediction_resource_id(account_id),
    )


class AccountRepository(Repository):
    """Creates accounts and resolves API keys to them."""

    def create_account(self, name: str) -> pb.Account:
        """Creates an account with a fresh training key and prediction key (returned only here)."""
        name = rules.account_name(name)
        account_id = str(uuid.uuid4())
        resource = rules.prediction_resource_id(account_id)
        training_key, prediction_key = rules.new_key(), rules.new_key()
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO accounts (id, name, prediction_resource_id) VALUES (%s, %s, %s)",
                (account_id, name, resource),
            )
            cur.executemany(
                "INSERT INTO api_keys (key_sha256, account_id, kind) VALUES (%s, %s, %s)",
                [
                    (rules.hash_key(training_key), account_id, rules.KEY_TRAINING),
                    (rules.hash_key(prediction_key), account_id, rules.KEY_PREDICTION),
                ],
            )
        return _account_pb(account_id, name, training_key, prediction_key)

    def ensure_account(self, account_id: str, name: str, training_key: str, prediction_key: str) -> pb.Account:
        """Creates the account with the given id and keys unless it exists (an install's first
        account, whose keys an operator or the Helm chart chose). Idempotent: a second call with
        the same values changes nothing; keys that already belong to another account, or an
        existing account that lacks one of the keys, are a Conflict.
        """
        name = rules.account_name(name)
        try:
            account_id = str(uuid.UUID(account_id))
        except (ValueError, TypeError, AttributeError):
            raise BadRequest("account id must be a UUID", "BadRequest") from None
        keys = {rules.KEY_TRAINING: training_key or "", rules.KEY_PREDICTION: prediction_key or ""}
        for kind, key in keys.items():
            if len(key) < 16:
                raise BadRequest(f"the {kind} key must have at least 16 characters", "BadRequest")
        resource = rules.prediction_resource_id(account_id)
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO accounts (id, name, prediction_resource_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (account_id, name, resource),
            )
            for kind, key in keys.items():
                cur.execute(
                    "INSERT INTO api_keys (key_sha256, account_id, kind) VALUES (%s, %s, %s)"
                    " ON CONFLICT (key_sha256) DO NOTHING",
                    (rules.hash_key(key), account_id, kind),
                )
                row = cur.execute(
                    "SELECT account_id, kind FROM api_keys WHERE key_sha256 = %s", (rules.hash_key(key),)
                ).fetchone()
                if str(row["account_id"]) != account_id or row["kind"] != kind:
                    raise Conflict(f"the {kind} key already belongs to another account", "Conflict")
        return _account_pb(account_id, name, training_key, prediction_key)

    def resolve_key(self, key: str) -> KeyInfo:
        """The account and kind of an API key; NotFound when the key is unknown."""
        with self._db.transaction() as cur:
            row = cur.execute(
                "SELECT k.account_id, k.kind, a.prediction_resource_id FROM api_keys k"
                " JOIN accounts a ON a.id = k.account_id WHERE k.key_sha256 = %s",
                (rules.hash_key(key or ""),),
            ).fetchone()
        if row is None:
            raise NotFound("unknown key", "NotFound")
        return KeyInfo(str(row["account_id"]), row["kind"], row["prediction_resource_id"])
