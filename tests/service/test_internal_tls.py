"""Mutual TLS on the internal plane (LOUPE_INTERNAL_TLS_DIR): an in-process metadata server on
the test database with a certificate of a CA made here (openssl), and Loupe's client beside
callers that lack one part or another.

TLS admits the connection and the internal credential still decides what its calls may do; the
plaintext health port (LOUPE_HEALTH_PORT) serves the probes and nothing else.
"""
from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import metadata_pb2_grpc
from loupe_common import config as cfg
from loupe_common import internal_auth, internal_tls
from loupe_common.clients import ServiceClient
from loupe_common.errors import Internal, Unavailable
from loupe_metadata.config import MetadataConfig
from loupe_metadata.server import build_server

pytestmark = pytest.mark.service

SERVER_NAME = "loupe-internal"


def _openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca_and_certificate(folder: pathlib.Path, subject: str) -> pathlib.Path:
    """A CA and a certificate it signed (for server and client use, as one cert-manager
    Certificate would be), written as a TLS Secret's keys: tls.crt, tls.key, ca.crt."""
    folder.mkdir(parents=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", f"/CN={subject} CA", cwd=folder)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "tls.key", "-out", "tls.csr", "-subj", f"/CN={subject}", cwd=folder)
    (folder / "ext.cnf").write_text(
        f"subjectAltName=DNS:{SERVER_NAME}\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "tls.crt", "-days", "2", "-extfile", "ext.cnf", cwd=folder)
    return folder


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp("internal-tls")
    return {"loupe": _ca_and_certificate(root / "loupe", "loupe"),
            # The same name, signed by a CA the install does not trust.
            "rogue": _ca_and_certificate(root / "rogue", "rogue")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(postgres_dsn, internal_secret, certs, metadata_addr):  # metadata_addr: migrated
    health_port = _free_port()
    built = build_server(cfg.load(MetadataConfig, {
        "LOUPE_POSTGRES_DSN": postgres_dsn, "LOUPE_METADATA_ADDR": "127.0.0.1:0",
        "LOUPE_INTERNAL_SECRET": internal_secret, "LOUPE_INTERNAL_TLS_DIR": str(certs["loupe"]),
        "LOUPE_HEALTH_PORT": str(health_port)}))
    built.start()
    yield {"addr": f"127.0.0.1:{built.port}", "health": f"127.0.0.1:{health_port}", "built": built}
    built.stop(None)


def _tls(folder: pathlib.Path, server_name: str = SERVER_NAME) -> internal_tls.InternalTLS:
    return internal_tls.load(cfg.load(internal_tls.InternalTLSConfig, {
        "LOUPE_INTERNAL_TLS_DIR": str(folder), "LOUPE_INTERNAL_TLS_SERVER_NAME": server_name}))


def _create_account(channel: grpc.Channel, credential: str | None) -> None:
    metadata = ((internal_auth.METADATA_KEY, credential),) if credential else ()
    metadata_pb2_grpc.MetadataServiceStub(channel).CreateAccount(
        mpb.CreateAccountRequest(name="tls"), timeout=10, metadata=metadata)


def test_a_loupe_client_with_the_install_certificate_and_credential_is_served(server, certs, credentials):
    client = ServiceClient(server["addr"], metadata_pb2_grpc.MetadataServiceStub,
                           credential=credentials[internal_auth.GATEWAY], tls=_tls(certs["loupe"]))
    try:
        account = client.CreateAccount(mpb.CreateAccountRequest(name="over mutual TLS")).account
        assert account.id and account.name == "over mutual TLS"
    finally:
        client.close()


@pytest.mark.parametrize("caller", ["plaintext", "no client certificate", "another CA's certificate"])
def test_a_caller_without_the_install_certificate_gets_no_connection(server, certs, credentials, caller):
    loupe = _tls(certs["loupe"])
    if caller == "plaintext":
        channel = grpc.insecure_channel(server["addr"])
    elif caller == "no client certificate":
        channel = grpc.secure_channel(server["addr"], grpc.ssl_channel_credentials(loupe.root_certificates),
                                      options=loupe.channel_options())
    else:
        rogue = _tls(certs["rogue"])
        # It trusts the install's CA (so the server is verified) but presents its own certificate.
        creds = grpc.ssl_channel_credentials(loupe.root_certificates, rogue.private_key, rogue.certificate_chain)
        channel = grpc.secure_channel(server["addr"], creds, options=loupe.channel_options())
    with channel, pytest.raises(grpc.RpcError) as err:
        # Even with a valid internal credential: the connection itself is refused.
        _create_account(channel, credentials[internal_auth.GATEWAY])
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value


def test_a_server_whose_name_is_not_in_its_certificate_is_refused_by_the_client(server, certs, credentials):
    # Without the configured name, the client checks "127.0.0.1", which the certificate does not
    # carry: a server is verified, not only encrypted to.
    client = ServiceClient(server["addr"], metadata_pb2_grpc.MetadataServiceStub, timeout=10,
                           credential=credentials[internal_auth.GATEWAY], tls=_tls(certs["loupe"], server_name=""))
    try:
        with pytest.raises(Unavailable):
            client.CreateAccount(mpb.CreateAccountRequest(name="unverified"))
    finally:
        client.close()


def test_mutual_tls_without_the_internal_credential_is_still_unauthenticated(server, certs):
    # The two checks are both needed: a certificate alone does not say which role calls.
    client = ServiceClient(server["addr"], metadata_pb2_grpc.MetadataServiceStub, tls=_tls(certs["loupe"]))
    try:
        with pytest.raises(Internal, match="UNAUTHENTICATED"):
            client.CreateAccount(mpb.CreateAccountRequest(name="no credential"))
    finally:
        client.close()


def test_the_health_port_serves_the_probes_in_plaintext_and_nothing_else(server):
    with grpc.insecure_channel(server["health"]) as channel:
        got = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert got.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as err:
            _create_account(channel, None)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_missing_certificate_file_stops_the_service_naming_it(certs, tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    for name in (internal_tls.CERTIFICATE, internal_tls.CA):
        shutil.copy(certs["loupe"] / name, folder / name)
    with pytest.raises(cfg.ConfigError, match=r"tls\.key"):
        _tls(folder)
