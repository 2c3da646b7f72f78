"""Loupe storage service: image bytes and artifacts in MinIO / S3."""
