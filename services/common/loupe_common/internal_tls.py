"""Mutual TLS on the internal plane, as an option beside the internal credential.

The credential (`internal_auth`) says who calls; it does not encrypt. With mutual TLS every
internal gRPC server asks for a client certificate signed by the install's CA and every Loupe
client presents one, so calls between pods are encrypted and nothing without the CA's
certificate gets a connection at all. Both checks apply: TLS admits the connection, the
credential decides what its calls may do.

The files are a Kubernetes TLS Secret's keys, as cert-manager writes them: `tls.crt` (the
certificate chain), `tls.key` (its private key) and `ca.crt` (the CA that signed every Loupe
certificate), in the directory named by LOUPE_INTERNAL_TLS_DIR. One certificate may serve every
service: clients verify the server's name against `server_name` when it is set
(LOUPE_INTERNAL_TLS_SERVER_NAME, a DNS name the certificate carries), else against the host of
each target (its Service name).

The kubelet's gRPC probes cannot present a certificate: a service given LOUPE_HEALTH_PORT also
serves `grpc.health.v1`, and nothing else, on that plaintext port.
"""
from __future__ import annotations

import dataclasses
import pathlib

import grpc

from loupe_common.config import ConfigError, env_field

CERTIFICATE, PRIVATE_KEY, CA = "tls.crt", "tls.key", "ca.crt"


@dataclasses.dataclass(frozen=True)
class InternalTLSConfig:
    """Mixed into the config of every service on the internal plane."""

    internal_tls_dir: str = env_field(
        "LOUPE_INTERNAL_TLS_DIR", "",
        "directory with tls.crt, tls.key and ca.crt: mutual TLS on every internal gRPC call (empty: off)")
    internal_tls_server_name: str = env_field(
        "LOUPE_INTERNAL_TLS_SERVER_NAME", "",
        "the name clients verify in internal servers' certificates (empty: each target's host)")


@dataclasses.dataclass(frozen=True)
class HealthPortConfig:
    """Mixed into the config of every internal gRPC server."""

    health_port: int = env_field(
        "LOUPE_HEALTH_PORT", 0,
        "a plaintext port serving only grpc.health.v1, for probes that cannot do mutual TLS (0: none)")


@dataclasses.dataclass(frozen=True)
class InternalTLS:
    """An install's internal certificate, its key and CA, read once at start-up."""

    certificate_chain: bytes
    private_key: bytes
    root_certificates: bytes
    server_name: str = ""

    def server_credentials(self) -> grpc.ServerCredentials:
        """A server's side: its certificate, and a client certificate of the CA required."""
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.root_certificates, require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """A client's side: the server verified against the CA, this certificate presented."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates, private_key=self.private_key,
            certificate_chain=self.certificate_chain)

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def load(config: InternalTLSConfig) -> InternalTLS | None:
    """The configured internal TLS files (None: mutual TLS is off).

    Raises:
        ConfigError: a file is missing or empty (the process stops, naming it).
    """
    if not config.internal_tls_dir:
        return None
    folder = pathlib.Path(config.internal_tls_dir)
    read = {}
    for name in (CERTIFICATE, PRIVATE_KEY, CA):
        try:
            read[name] = (folder / name).read_bytes()
        except OSError as err:
            raise ConfigError(f"LOUPE_INTERNAL_TLS_DIR: cannot read {folder / name}: {err.strerror}") from None
        if not read[name].strip():
            raise ConfigError(f"LOUPE_INTERNAL_TLS_DIR: {folder / name} is empty")
    return InternalTLS(read[CERTIFICATE], read[PRIVATE_KEY], read[CA], config.internal_tls_server_name)
