"""Loupe training service: consumes training jobs from Kafka and trains classifiers."""
