"""The local stack: installs and runs Loupe and its real dependencies on one machine.

PostgreSQL (Debian's server, own cluster), MinIO (built with `go install`), Apache Kafka (KRaft,
jars from Maven Central), TorchServe (PyPI) and the five services run as processes under
supervisord, with all data under one folder. `make up` and the test suite both use it.
"""
