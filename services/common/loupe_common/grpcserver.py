"""What every gRPC service is built and run with: the server factory (internal authentication,
error mapping, metrics, health, reflection), `BuiltServer` (what each service's `build_server`
returns) and `run` (metrics port, signals, graceful stop)."""
from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram, start_http_server

from loupe_common import procmetrics  # noqa: F401 - registers the process gauges
from loupe_common.errors import ERROR_CODE_KEY, LoupeError
from loupe_common.internal_auth import METADATA_KEY, Policy
from loupe_common.internal_tls import InternalTLS

log = logging.getLogger(__name__)

#: Images are up to 6 MB and artifacts larger: raise gRPC's 4 MB default on both ends.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
#: Clients spread calls over every address their target resolves to (in Kubernetes a `dns:///`
#: target names a headless Service: one address per ready pod) instead of gRPC's default
#: pick_first, which sends everything to one replica. A call that finds its replica gone
#: (UNAVAILABLE: refused, or closed by a replica shutting down) is tried again on another.
CLIENT_SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{}],
        "retryPolicy": {
            "maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
}
CLIENT_OPTIONS = CHANNEL_OPTIONS + [
    ("grpc.service_config", json.dumps(CLIENT_SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
    # Re-resolve soon after a replica goes away, so new replicas are found quickly.
    ("grpc.dns_min_time_between_resolutions_ms", 1000),
    # A restarted service is back in a few seconds; gRPC's default reconnect backoff (1 s, then
    # x1.6 up to 120 s) would leave its clients refusing calls for seconds after it is ready.
    # Trying every 0.1-0.25 s costs nothing on a cluster network, and a call made right after
    # a restarted service turns ready waits at most that long for its connection.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 250),
]
#: Servers end each connection after a while (gracefully: calls in flight finish), so clients
#: resolve their target again and new replicas (an HPA scaling out) get their share of calls.
SERVER_OPTIONS = CHANNEL_OPTIONS + [
    ("grpc.max_connection_age_ms", 30_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
]

#: How long calls in flight may take after SIGTERM (the chart's terminationGracePeriodSeconds is longer).
GRACE_SECONDS = 10.0
#: A service's configuration (see `run`).
C = TypeVar("C", bound=Any)

RPC_SECONDS = Histogram(
    "loupe_grpc_server_handling_seconds", "Time to handle a gRPC call", ["method"]
)
RPC_TOTAL = Counter("loupe_grpc_server_handled_total", "gRPC calls handled", ["method", "code"])


class _Interceptor(grpc.ServerInterceptor):
    """Maps domain errors to gRPC status (+ Custom Vision code) and records metrics."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary

        def wrapped(request, context):
            start = time.perf_counter()
            code = "OK"
            try:
                return inner(request, context)
            except LoupeError as err:
                code = err.grpc_status.name
                trailers = [(ERROR_CODE_KEY, err.code)]
                if not err.retryable:  # a negative pushback: the client's retry policy stops
                    trailers.append(("grpc-retry-pushback-ms", "-1"))
                context.set_trailing_metadata(tuple(trailers))
                context.abort(err.grpc_status, err.message)
            except Exception:
                if context.code() is None:
                    code = "INTERNAL"
                    log.exception("unhandled error in %s", method)
                raise
            finally:
                RPC_SECONDS.labels(method).observe(time.perf_counter() - start)
                RPC_TOTAL.labels(method, code).inc()

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _AuthInterceptor(grpc.ServerInterceptor):
    """Refuses a call its Policy does not allow (UNAUTHENTICATED without a valid internal
    credential, PERMISSION_DENIED for a role the method's allowlist does not name), before any
    servicer code runs; counts refusals in the RPC metrics."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def intercept_service(self, continuation, handler_call_details):
        value = None
        for key, val in handler_call_details.invocation_metadata or ():
            if key == METADATA_KEY:
                value = val if isinstance(val, str) else val.decode(errors="replace")
        decision = self.policy.decide(handler_call_details.method, value)
        if decision.allowed:
            return continuation(handler_call_details)
        method = handler_call_details.method.rsplit("/", 1)[-1]
        RPC_TOTAL.labels(method, decision.code).inc()
        log.warning("refused %s (%s%s)", handler_call_details.method, decision.code,
                    f", role {decision.role}" if decision.role else "")
        return _refusal(continuation(handler_call_details), getattr(grpc.StatusCode, decision.code),
                        decision.message)


def _refusal(handler, code: grpc.StatusCode, message: str):
    """A handler of the same shape as `handler` (unary or streaming; None: an unknown method)
    that answers `code` without reading the request."""

    def refuse(_request, context):
        context.abort(code, message)

    if handler is None or not (handler.request_streaming or handler.response_streaming):
        return grpc.unary_unary_rpc_method_handler(refuse)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    return grpc.unary_stream_rpc_method_handler(refuse)


def create_server(
    register: Iterable[Callable[[grpc.Server], None]],
    host: str = "127.0.0.1",
    port: int = 0,
    max_workers: int = 16,
    service_names: Iterable[str] = (),
    auth: Policy | None = None,
    reflect: bool = True,
    tls: InternalTLS | None = None,
    health_port: int = 0,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Builds a gRPC server with the given servicers plus `grpc.health.v1` and server reflection.

    Args:
        register: callables that add a servicer to the server.
        host, port: where to listen; port 0 picks a free port (tests).
        service_names: fully qualified service names to report SERVING (and to reflect).
        auth: the internal authentication every call must pass (Loupe's internal servers);
            None: no internal credential is asked for (a public server does its own auth).
            Health and reflection are exempt either way.
        reflect: serve gRPC server reflection (grpcurl, the tests that walk every method).
        tls: mutual TLS (internal_tls): the port asks every client for a certificate of the
            install's CA; None: plaintext.
        health_port: also serve `grpc.health.v1` alone, in plaintext, on this port (probes
            that cannot do mutual TLS); 0: not.
    Returns:
        (server, bound port, health servicer); the server is not started.
    """
    service_names = list(service_names)
    interceptors: list[grpc.ServerInterceptor] = [_Interceptor()]
    if auth is not None:
        interceptors.insert(0, _AuthInterceptor(auth))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=interceptors,
        options=SERVER_OPTIONS,
    )
    for add in register:
        add(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflect:
        reflection.enable_server_reflection(
            service_names + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                             reflection.SERVICE_NAME], server)
    if tls is None:
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        bound = server.add_secure_port(f"{host}:{port}", tls.server_credentials())
    if bound == 0:
        raise OSError(f"cannot bind gRPC server to {host}:{port}")
    for name in list(service_names) + [""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if health_port:
        health_only = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_only)
        if health_only.add_insecure_port(f"{host}:{health_port}") == 0:
            raise OSError(f"cannot bind the health port {host}:{health_port}")
        server = _WithHealthPort(server, health_only)
    return server, bound, health_servicer


class _WithHealthPort:
    """A service's gRPC server with, beside it, a server of its health alone (the same
    servicer: both say NOT_SERVING at once). It stops after the service's server, so probes
    see the service drain."""

    def __init__(self, main: grpc.Server, health_only: grpc.Server):
        self._main, self._health_only = main, health_only

    def start(self) -> None:
        self._main.start()
        self._health_only.start()

    def stop(self, grace: float | None) -> threading.Event:
        main_stopped = self._main.stop(grace)
        done = threading.Event()

        def then_health() -> None:
            main_stopped.wait()
            self._health_only.stop(None).wait()
            done.set()

        threading.Thread(target=then_health, name="health-port-stop", daemon=True).start()
        return done

    def __getattr__(self, name: str) -> Any:
        return getattr(self._main, name)


def _nothing() -> None:
    pass


@dataclasses.dataclass
class BuiltServer:
    """What every service's `build_server(config, deps=None)` returns: a bound server, not started.

    Attributes:
        server: the gRPC server with the service's servicer and `grpc.health.v1`.
        port: the port it is bound to (the one picked when the address said port 0).
        health: its health servicer (a service may report more names on it).
        name: the service's name, for the log.
        before_start: starts the service's own background work (a Kafka consumer) before the
            server answers; it may wait until that work is ready.
        before_stop: stops that work from taking anything new (a trainer takes no new job)
            as soon as the service is stopping, before calls in flight get their grace.
        after_stop: stops that work and releases the collaborators `build_server` created.
    """

    server: grpc.Server
    port: int
    health: health.HealthServicer
    name: str
    before_start: Callable[[], None] = _nothing
    before_stop: Callable[[], None] = _nothing
    after_stop: Callable[[], None] = _nothing
    #: Set to stop the service: by `run`'s signal handler, or by `fail`.
    stopping: threading.Event = dataclasses.field(default_factory=threading.Event)
    #: Why the service failed ("" while it works; see `fail`).
    failure: str = ""

    def fail(self, reason: str) -> None:
        """The service's own background work died and it cannot go on: health turns
        NOT_SERVING at once (a liveness probe sees it) and `run` stops the process with
        status 1, so the supervisor (supervisord, the kubelet) starts a fresh one."""
        self.failure = reason
        self.health.enter_graceful_shutdown()
        self.stopping.set()

    def start(self) -> None:
        self.before_start()
        self.server.start()

    def stop(self, grace_seconds: float | None = GRACE_SECONDS) -> None:
        """Health turns NOT_SERVING first so load balancers drain and the service's own
        work takes nothing new, calls in flight get `grace_seconds`, then the service's own
        resources are released."""
        self.health.enter_graceful_shutdown()
        self.before_stop()
        self.server.stop(grace_seconds).wait()
        self.after_stop()


def start_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serves Prometheus `/metrics` on its own port (0 disables it)."""
    if port:
        start_http_server(port, addr=host)


def run(build: Callable[[C], BuiltServer], config: C, grace_seconds: float = GRACE_SECONDS) -> int:
    """Runs one gRPC service until SIGTERM/SIGINT: the one way every service starts.

    Args:
        build: the service's `build_server`; called with `config` alone, so it creates its
            collaborators (database pool, clients) from the configuration.
        config: the service's configuration; `addr` (host:port), `metrics_port` and
            `log_level` are read here.
        grace_seconds: how long calls in flight may take after the signal.
    Returns:
        the process's exit status: 0 after a signal, 1 when the service failed
        (`BuiltServer.fail`).
    """
    setup_logging(config.log_level)
    built = build(config)

    def _handle(signum, _frame):
        log.info("signal %s: stopping", signum)
        built.stopping.set()

    host = config.addr.rsplit(":", 1)[0]
    start_metrics(config.metrics_port, host)
    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    built.start()
    log.info("%s service listening on %s:%d", built.name, host, built.port)
    built.stopping.wait()
    if built.failure:
        log.error("%s service failed (%s): exiting", built.name, built.failure)
    built.stop(grace_seconds)
    return 1 if built.failure else 0


def wait_for_channel(channel: grpc.Channel, timeout: float = 30.0) -> None:
    """Blocks until the channel is ready (used at start-up and in tests)."""
    grpc.channel_ready_future(channel).result(timeout=timeout)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kafka-python logs every connection and partition reset at INFO.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
