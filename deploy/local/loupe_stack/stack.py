"""Starts and stops the local stack under supervisord."""
from __future__ import annotations

import base64
import json
import logging
import os
import pwd
import secrets
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from loupe_stack import install
from loupe_stack.layout import REPO, Layout, cache_dir

log = logging.getLogger("loupe_stack")

INFRA = ("postgres", "minio", "kafka", "torchserve")
SERVICES = ("metadata", "storage", "training", "prediction", "gateway")
PG_USER = "postgres"


def _pythonpath() -> str:
    parts = ["services/common", "services/gateway", "services/metadata", "services/storage",
             "services/training", "services/prediction", "deploy/local"]
    return ":".join(str(REPO / p) for p in parts)


class Stack:
    """One local stack: a data folder, a base port, and the processes supervisord runs."""

    def __init__(self, layout: Layout, extra_env: dict[str, str] | None = None):
        """Args:
            layout: data folder and ports.
            extra_env: variables added to every service's environment, over the defaults
                (the test stack uses it, e.g. to allow image URLs on 127.0.0.1).
        """
        self.layout = layout
        self.extra_env = dict(extra_env or {})

    # ---------------------------------------------------------------- secrets and env
    def secrets(self) -> dict[str, str]:
        """Per-data-folder credentials, generated once and kept (never hard-coded). A data
        folder made before a secret existed gets that one added, the others kept."""
        path = self.layout.secrets_file
        values: dict[str, str] = {}
        if path.exists():
            values = dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)
        generators = {
            "POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(18),
            "MINIO_ROOT_USER": lambda: "loupe-" + secrets.token_hex(4),
            "MINIO_ROOT_PASSWORD": lambda: secrets.token_urlsafe(24),
            "URL_SIGNING_SECRET": lambda: secrets.token_urlsafe(32),
            "KAFKA_CLUSTER_ID": _kafka_cluster_id,
            # The internal credentials of Loupe's services derive from it (internal_auth).
            "INTERNAL_SECRET": lambda: secrets.token_urlsafe(32),
        }
        missing = [k for k in generators if k not in values]
        if missing:
            values.update({k: generators[k]() for k in missing})
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
            tmp.chmod(0o600)
            tmp.rename(path)
        return values

    def postgres_dsn(self) -> str:
        pw = self.secrets()["POSTGRES_PASSWORD"]
        return f"postgresql://postgres:{pw}@{self.layout.host}:{self.layout.port('postgres')}/loupe"

    def service_env(self) -> dict[str, str]:
        """The environment every service process gets (each reads only its own variables)."""
        L, s = self.layout, self.secrets()
        return {
            "PYTHONPATH": _pythonpath(),
            "PYTHONUNBUFFERED": "1",
            "LOUPE_LOG_LEVEL": "INFO",
            "LOUPE_POSTGRES_DSN": self.postgres_dsn(),
            "LOUPE_S3_ENDPOINT": L.addr("minio"),
            "LOUPE_S3_ACCESS_KEY": s["MINIO_ROOT_USER"],
            "LOUPE_S3_SECRET_KEY": s["MINIO_ROOT_PASSWORD"],
            "LOUPE_S3_BUCKET": "loupe",
            "LOUPE_S3_SECURE": "false",
            "LOUPE_KAFKA_BOOTSTRAP": L.addr("kafka"),
            "LOUPE_METADATA_TARGET": L.addr("metadata"),
            "LOUPE_STORAGE_TARGET": L.addr("storage"),
            "LOUPE_PREDICTION_TARGET": L.addr("prediction"),
            "LOUPE_TRAINING_TARGET": L.addr("training"),
            "LOUPE_TORCHSERVE_INFERENCE_URL": f"http://{L.addr('torchserve_inference')}",
            "LOUPE_TORCHSERVE_MANAGEMENT_URL": f"http://{L.addr('torchserve_management')}",
            "LOUPE_MODEL_STORE": str(cache_dir() / "model-store"),
            "LOUPE_MODEL_CACHE": str(install.model_cache()),
            "LOUPE_URL_SIGNING_SECRET": s["URL_SIGNING_SECRET"],
            "LOUPE_INTERNAL_SECRET": s["INTERNAL_SECRET"],
            # A local install serves its own user: no throttling of its scripts and SDK calls.
            # The gateway's own default (10 requests/s per key, as on Custom Vision S0) is for
            # installs that many accounts share.
            "LOUPE_RATE_LIMIT_PER_SECOND": "0",
            **self.extra_env,
        }

    # ---------------------------------------------------------------- first-time setup
    def _pg_data(self) -> Path:
        """PostgreSQL refuses to run as root; its folder must be reachable by the postgres user.

        When the data folder sits under a directory the postgres user cannot enter (e.g. /root),
        the cluster lives in /var/lib/loupe and `<data>/postgres` links to it.
        """
        link = self.layout.data / "postgres"
        if link.is_symlink() or link.exists():
            return link.resolve()
        probe = subprocess.run(["runuser", "-u", PG_USER, "--", "test", "-x", str(self.layout.data)])
        if probe.returncode == 0:
            link.mkdir()
            return link
        target = Path("/var/lib/loupe") / uuid.uuid4().hex[:12]
        target.mkdir(parents=True)
        os.chmod(target.parent, 0o755)
        link.symlink_to(target)
        return target

    def _pg_run(self) -> Path:
        """The server's socket folder, beside its cluster: reachable by the postgres user too.

        `<data>/postgres-run` when the cluster is `<data>/postgres`; beside the cluster in
        /var/lib/loupe when the data folder is out of the postgres user's reach.
        """
        pg = self._pg_data()
        return pg.with_name(pg.name + "-run")

    def init(self) -> None:
        L = self.layout
        for d in (L.data, L.run, L.logs):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(L.data, 0o755)
        s = self.secrets()
        uid = pwd.getpwnam(PG_USER).pw_uid
        pg = self._pg_data()
        pg_run = self._pg_run()
        pg_run.mkdir(exist_ok=True)
        os.chown(pg_run, uid, -1)
        if not (pg / "PG_VERSION").exists():
            os.chown(pg, uid, -1)
            # The password file sits in the socket folder, which the postgres user can reach
            # wherever the data folder is; only that user can read it, and only while initdb runs.
            pwfile = pg_run / "pw"
            with open(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                os.fchown(f.fileno(), uid, -1)
                f.write(s["POSTGRES_PASSWORD"] + "\n")
            try:
                # cwd: PostgreSQL 15's programs chdir back into their working directory while
                # locating themselves, and fail when the postgres user cannot enter it (the clone).
                subprocess.run(
                    ["runuser", "-u", PG_USER, "--", str(install.postgres_bin() / "initdb"), "-D", str(pg),
                     "-U", "postgres", f"--pwfile={pwfile}", "-A", "scram-sha-256", "-E", "UTF8",
                     "--locale=C.UTF-8"],
                    check=True, stdout=subprocess.DEVNULL, cwd=pg_run,
                )
            finally:
                pwfile.unlink(missing_ok=True)
        kafka_dir = L.data / "kafka"
        (kafka_dir / "data").mkdir(parents=True, exist_ok=True)
        props = kafka_dir / "server.properties"
        props.write_text(self._kafka_properties(kafka_dir / "data"))
        (kafka_dir / "log4j2.properties").write_text(_KAFKA_LOG4J)
        if not (kafka_dir / "data" / "meta.properties").exists():
            # Output only matters when formatting fails (the tool prints SLF4J binding noise).
            fmt = subprocess.run(
                ["java", f"-Dlog4j2.configurationFile={kafka_dir / 'log4j2.properties'}",
                 "-cp", f"{install.kafka_libs()}/*", "kafka.tools.StorageTool", "format",
                 f"--cluster-id={s['KAFKA_CLUSTER_ID']}", "-c", str(props), "--ignore-formatted"],
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                raise RuntimeError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        ts = L.data / "torchserve"
        (ts / "tmp").mkdir(parents=True, exist_ok=True)
        (ts / "config.properties").write_text(self._torchserve_properties())
        (L.data / "minio").mkdir(exist_ok=True)
        L.supervisor_conf.write_text(self._supervisor_conf())

    def _kafka_properties(self, data: Path) -> str:
        L = self.layout
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{L.addr('kafka_controller')}",
            f"listeners=PLAINTEXT://{L.addr('kafka')},CONTROLLER://{L.addr('kafka_controller')}",
            f"advertised.listeners=PLAINTEXT://{L.addr('kafka')}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # One broker: start consumer groups without the 3 s wait for more members.
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "message.max.bytes=16777216",
            "",
        ])

    def _torchserve_properties(self) -> str:
        from loupe_model.archive import model_name  # light: no torch
        from loupe_model.backbone import BACKBONES

        L = self.layout
        loopback = L.host in ("127.0.0.1", "localhost", "::1")
        # The archive install.ensure_model_archive builds, loaded at start with the prediction
        # service's default batching (as the chart does): the model API stays off, so nothing
        # that reaches the management port can register an archive (which runs its code).
        model = model_name(BACKBONES["lite0"])
        models = {model: {"1.0": {"defaultVersion": True, "marName": f"{model}.mar", "minWorkers": 1,
                                  "maxWorkers": 1, "batchSize": 8, "maxBatchDelay": 1,
                                  "responseTimeout": 120}}}
        lines = [
            f"inference_address=http://{L.addr('torchserve_inference')}",
            f"management_address=http://{L.addr('torchserve_management')}",
            f"metrics_address=http://{L.addr('torchserve_metrics')}",
            f"grpc_inference_port={L.port('torchserve_grpc_inference')}",
            f"grpc_management_port={L.port('torchserve_grpc_management')}",
            f"model_store={cache_dir() / 'model-store'}",
            f"load_models={model}.mar",
            f"models={json.dumps(models, separators=(',', ':'))}",
            "enable_model_api=false",
            # One worker: the default (one per core) oversubscribes a 2-core machine.
            "default_workers_per_model=1",
            "install_py_dep_per_model=false",
            "max_request_size=16777216",
            "max_response_size=16777216",
        ]
        if loopback:  # token auth stays on unless only this machine can reach TorchServe
            lines.append("disable_token_authorization=true")
        return "\n".join(lines) + "\n"

    def _supervisor_conf(self) -> str:
        L, s = self.layout, self.secrets()
        py = sys.executable
        env = self.service_env()
        progs: dict[str, dict[str, str]] = {}
        progs["postgres"] = {
            "command": f"{install.postgres_bin() / 'postgres'} -D {self._pg_data()} -p {L.port('postgres')} "
                       f"-k {self._pg_run()} -c listen_addresses={L.host} -c fsync=on",
            "user": PG_USER,
            "directory": str(self._pg_data()),  # not the clone's folder: see init()
            "priority": "10",
            "stopsignal": "INT",  # "fast" shutdown: clean, without waiting for clients
        }
        progs["minio"] = {
            "command": f"{install.minio_bin()} server --quiet --address {L.addr('minio')} "
                       f"--console-address {L.addr('minio_console')} {L.data / 'minio'}",
            "environment": _envline({"MINIO_ROOT_USER": s["MINIO_ROOT_USER"],
                                     "MINIO_ROOT_PASSWORD": s["MINIO_ROOT_PASSWORD"],
                                     "MINIO_BROWSER": "off", "HOME": str(L.data)}),
            "priority": "10",
        }
        kafka_dir = L.data / "kafka"
        progs["kafka"] = {
            "command": f"java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true "
                       f"-Dlog4j2.configurationFile={kafka_dir / 'log4j2.properties'} "
                       f"-Dkafka.logs.dir={L.logs} -cp '{install.kafka_libs()}/*' kafka.Kafka "
                       f"{kafka_dir / 'server.properties'}",
            "priority": "10",
        }
        ts = L.data / "torchserve"
        progs["torchserve"] = {
            "command": f"{Path(py).parent / 'torchserve'} --start --foreground --ncs "
                       f"--ts-config {ts / 'config.properties'} --model-store {cache_dir() / 'model-store'}",
            "directory": str(ts),
            # TorchServe keeps its pid file in the temp folder: a folder per stack lets two
            # stacks (make up + the test run) coexist on one machine.
            "environment": _envline({"TMPDIR": str(ts / "tmp"),
                                     "LOG_LOCATION": str(L.logs / "torchserve"),
                                     "METRICS_LOCATION": str(L.logs / "torchserve"),
                                     "PYTHONPATH": _pythonpath(),
                                     "OMP_NUM_THREADS": "2"}),
            "priority": "10",
        }
        addrs = {
            "metadata": {"LOUPE_METADATA_ADDR": L.addr("metadata"), "LOUPE_METRICS_PORT": str(L.port("metadata_metrics"))},
            "storage": {"LOUPE_STORAGE_ADDR": L.addr("storage"), "LOUPE_METRICS_PORT": str(L.port("storage_metrics"))},
            "training": {"LOUPE_TRAINING_ADDR": L.addr("training"), "LOUPE_METRICS_PORT": str(L.port("training_metrics"))},
            "prediction": {"LOUPE_PREDICTION_ADDR": L.addr("prediction"), "LOUPE_METRICS_PORT": str(L.port("prediction_metrics"))},
            "gateway": {"LOUPE_GATEWAY_HOST": L.host, "LOUPE_GATEWAY_PORT": str(L.port("gateway")),
                        "LOUPE_GATEWAY_GRPC_PORT": str(L.port("gateway_grpc"))},
        }
        for name in SERVICES:
            progs[name] = {
                "command": f"{py} -m loupe_{name}",
                "environment": _envline({**env, **addrs[name]}),
                "priority": "20",
                "directory": str(REPO),
            }
        out = [
            "[unix_http_server]", f"file={L.supervisor_sock}", "chmod=0700", "",
            "[supervisord]", f"logfile={L.logs / 'supervisord.log'}", f"pidfile={L.run / 'supervisord.pid'}",
            f"childlogdir={L.logs}", "logfile_maxbytes=10MB", "", "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{L.supervisor_sock}", "",
        ]
        for name, opts in progs.items():
            out.append(f"[program:{name}]")
            opts = {
                "autostart": "false",  # `up` starts infrastructure first, then the services
                "autorestart": "true",
                "startsecs": "2",
                "stopwaitsecs": "20",
                "stopasgroup": "true",
                "killasgroup": "true",
                "redirect_stderr": "true",
                "stdout_logfile": str(L.logs / f"{name}.log"),
                "stdout_logfile_maxbytes": "20MB",
                **opts,
            }
            out += [f"{k}={v}" for k, v in opts.items()] + [""]
        return "\n".join(out)

    # ---------------------------------------------------------------- process control
    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(self.layout.supervisor_conf), *args],
            check=check, capture_output=True, text=True,
        )

    def supervisor_running(self) -> bool:
        return self.layout.supervisor_sock.exists() and self.ctl("pid", check=False).returncode == 0

    def start(self, services: bool = True) -> None:
        """Starts (or finds running) the infrastructure, then the services; waits for health."""
        self.init()
        if not self.supervisor_running():
            self.check_ports_free()
            subprocess.run(
                [str(Path(sys.executable).parent / "supervisord"), "-c", str(self.layout.supervisor_conf)],
                check=True,
            )
        self.ctl("start", *INFRA, check=False)
        self.wait_infra()
        self.bootstrap_infra()
        if services:
            self.ctl("start", *SERVICES, check=False)
            self.wait_services()
            self.bootstrap_account()

    def check_ports_free(self) -> None:
        """Fails fast, naming the port, when another process already listens on one of ours."""
        import socket

        from loupe_stack.layout import PORT_OFFSETS

        busy = []
        for name in PORT_OFFSETS:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.layout.host, self.layout.port(name)))
                except OSError:
                    busy.append(f"{name} ({self.layout.port(name)})")
        if busy:
            raise RuntimeError(
                "ports already in use: " + ", ".join(busy)
                + " — another stack or program is running there; choose another base port"
                " (LOUPE_BASE_PORT, or LOUPE_TEST_BASE_PORT for tests)"
            )

    def stop(self) -> None:
        """Stops every process and waits for supervisord to exit (ports are free after)."""
        pidfile = self.layout.run / "supervisord.pid"
        pid = int(pidfile.read_text()) if pidfile.exists() else None
        if self.supervisor_running():
            # Services first (`stop all` signals every process at once): they leave their Kafka
            # consumer groups while Kafka still runs. A member that could not leave stays in its
            # group until its session expires, and the next start's consumers wait for that.
            self.ctl("stop", *SERVICES, check=False)
            self.ctl("stop", "all", check=False)
            self.ctl("shutdown", check=False)
        for _ in range(300):
            if pid is None or not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)

    def status(self) -> str:
        if not self.supervisor_running():
            return "not running"
        return self.ctl("status", check=False).stdout

    # ---------------------------------------------------------------- readiness
    def wait_infra(self, timeout: float = 180.0) -> None:
        L = self.layout
        deadline = time.monotonic() + timeout
        _wait(lambda: _pg_ready(self.postgres_dsn().rsplit("/", 1)[0] + "/postgres"), "postgres", deadline, self)
        _wait(lambda: _http_ok(f"http://{L.addr('minio')}/minio/health/live"), "minio", deadline, self)
        _wait(lambda: _tcp_open(L.host, L.port("kafka")), "kafka", deadline, self)
        _wait(lambda: _http_ok(f"http://{L.addr('torchserve_inference')}/ping"), "torchserve", deadline, self)

    def bootstrap_infra(self) -> None:
        import psycopg

        from loupe_common.kafka import ensure_topics

        admin_dsn = self.postgres_dsn().rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'loupe'").fetchone():
                conn.execute("CREATE DATABASE loupe")
        ensure_topics(self.layout.addr("kafka"))

    def wait_services(self, timeout: float = 120.0) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from loupe_common.kafka import PREDICTION_RECORDER_GROUP

        deadline = time.monotonic() + timeout
        # The prediction service also reports its recorder's consumer under the group's name
        # (loupe_prediction.recorder.HEALTH_SERVICE): a prediction made once `up` has returned
        # is stored at once, not after the group has formed.
        checks = [("metadata", "metadata", ""), ("storage", "storage", ""),
                  ("training", "training", ""), ("prediction", "prediction", ""),
                  ("prediction", "prediction", PREDICTION_RECORDER_GROUP),
                  # The gateway's public gRPC API (its program is the gateway).
                  ("gateway", "gateway_grpc", "")]
        for name, port_name, service in checks:
            def healthy(port_name=port_name, service=service) -> bool:
                with grpc.insecure_channel(self.layout.addr(port_name)) as ch:
                    try:
                        resp = health_pb2_grpc.HealthStub(ch).Check(
                            health_pb2.HealthCheckRequest(service=service), timeout=2)
                    except grpc.RpcError:
                        return False
                    return resp.status == health_pb2.HealthCheckResponse.SERVING
            _wait(healthy, name, deadline, self)
        _wait(lambda: _http_ok(f"{self.layout.gateway_url}/healthz"), "gateway", deadline, self)

    def addresses(self) -> dict[str, str]:
        """The addresses `<data>/env` lists besides the account: where operators and tools
        (grpcurl, the tests that walk every RPC) find the gRPC servers."""
        return {
            # Every internal gRPC server (credential required; health and reflection open).
            "LOUPE_GRPC_INTERNAL_TARGETS": ",".join(
                self.layout.addr(name) for name in ("metadata", "storage", "training", "prediction")),
        }

    def bootstrap_account(self) -> dict[str, str]:
        """Creates the first account once per data folder and writes `<data>/env` (the
        addresses are brought up to date on every call)."""
        path = self.layout.env_file
        endpoints = {"LOUPE_ENDPOINT": self.layout.gateway_url,
                     "LOUPE_GRPC_ENDPOINT": self.layout.grpc_endpoint}
        if path.exists():
            values = read_env(path)
            wanted = {**values, **endpoints, **self.addresses()}
            if wanted != values:
                # A data folder from before an address was listed (or moved ports): the account
                # stays, the addresses are written anew.
                _write_env(path, wanted)
            return wanted
        out = subprocess.run(
            [sys.executable, "-m", "loupe_metadata", "create-account", "--name", "local"],
            check=True, capture_output=True, text=True,
            env=dict(os.environ, **self.service_env()),
        )
        account = json.loads(out.stdout)
        values = {
            **endpoints,
            "LOUPE_TRAINING_KEY": account["training_key"],
            "LOUPE_PREDICTION_KEY": account["prediction_key"],
            "LOUPE_PREDICTION_RESOURCE_ID": account["prediction_resource_id"],
            **self.addresses(),
        }
        _write_env(path, values)
        return values


def _write_env(path: Path, values: dict[str, str]) -> None:
    """Writes `<data>/env` (owner-only: it holds the keys) in one rename."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"export {k}={v}\n" for k, v in values.items()))
    tmp.chmod(0o600)
    tmp.rename(path)


def _kafka_cluster_id() -> str:
    """A Kafka cluster id (base64url of a UUID). Like Kafka's own Uuid.randomUuid, ids that
    start with "-" are redrawn: command-line tools would read them as an option."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.removeprefix("export ").strip()
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def _envline(env: dict[str, str]) -> str:
    # supervisord's environment= syntax: KEY="value",... ; % must be doubled.
    return ",".join(f'{k}="{v.replace("%", "%%")}"' for k, v in env.items())


def _wait(check, name: str, deadline: float, stack: Stack) -> None:
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            pass
        fatal = stack.ctl("status", name, check=False).stdout
        if time.monotonic() > deadline or "FATAL" in fatal or "BACKOFF" in fatal and "Exited too quickly" in fatal:
            log_path = stack.layout.logs / f"{name}.log"
            tail = log_path.read_text()[-3000:] if log_path.exists() else "(no log)"
            raise RuntimeError(f"{name} did not become ready; last log lines:\n{tail}\n{stack.status()}")
        time.sleep(0.3)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


def _tcp_open(host: str, port: int) -> bool:
    import socket

    with socket.create_connection((host, port), timeout=1):
        return True


def _pg_ready(dsn: str) -> bool:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=2):
        return True


_KAFKA_LOG4J = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = info
logger.server.name = org.apache.kafka.server
logger.server.level = info
"""

