"""Loupe gateway: the Custom Vision compatible REST API over Loupe's gRPC services."""
