"""Loupe metadata service: every row of the system, over PostgreSQL (protos/loupe/v1/metadata.proto)."""
