"""Server-side fetching of image URLs (`images/urls`, `classify/.../url`, `quicktest/url`),
safe by default: a URL given by a user must not become a way into the private network.

Every hop of a fetch is checked before anything is sent:
- scheme http or https only, no credentials in the URL, the scheme's default port only;
- the host is resolved once and EVERY address it resolves to must be public (not loopback,
  unspecified, link-local, private, unique-local, shared/CGNAT, multicast, reserved or
  documentation space, also when an IPv4 address hides inside an IPv6 one: IPv4-mapped,
  IPv4-compatible, NAT64, 6to4, Teredo); alternative spellings of an address ("2130706433",
  "0177.0.0.1", "0x7f.1") are caught because the check runs on what the name resolves to;
- the connection goes to the checked IP itself (the Host header and TLS SNI/certificate check
  still use the name), so a DNS answer that changes between check and connect (DNS rebinding)
  cannot redirect the request;
- redirects (at most `max_redirects`) are followed by hand, each hop checked again;
- the body is streamed and the fetch stops at `max_bytes + 1`; a watchdog closes the socket
  when the total time is up, so a slow-drip server cannot hold a worker.

Hosts or networks on the allow-list (LOUPE_URL_FETCH_ALLOW) may resolve to any address and use
any port: tests allow 127.0.0.1, private deployments their image servers.

Every refusal is a `FetchError` (a BadRequest with code BadRequestImageUrl) whose message says
why, and whose `reason` lets callers map it (e.g. to a per-image upload status).

Module is transport-free for Flask: callers pass a `UrlFetcher` built from configuration.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from loupe_common.errors import BadRequest

CODE = "BadRequestImageUrl"
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024
_MAX_URL_LENGTH = 2048
_USER_AGENT = "Loupe-URL-Fetcher/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

# Reasons carried by FetchError (stable strings: callers and tests match them).
INVALID_URL = "invalid_url"
SCHEME = "scheme"
PORT = "port"
ADDRESS = "address"
RESOLVE = "resolve"
CONNECT = "connect"
TIMEOUT = "timeout"
REDIRECTS = "redirects"
STATUS = "status"
TOO_LARGE = "too_large"

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchError(BadRequest):
    """A URL that was refused or could not be fetched; `reason` is one of the constants above."""

    def __init__(self, message: str, reason: str):
        super().__init__(message, CODE)
        self.reason = reason


@dataclass(frozen=True)
class FetchedImage:
    url: str  # the URL the bytes came from, after redirects
    data: bytes
    content_type: str


def parse_allow_list(raw: str | Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """Splits LOUPE_URL_FETCH_ALLOW (comma-separated CIDRs, IPs or host names).

    Returns:
        (networks, lower-cased host names).
    Raises:
        ValueError: an entry that is neither a network nor a plausible host name.
    """
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = item.lower().rstrip(".")
        if not name or any(c in name for c in "/:@ ") or name.startswith("-"):
            raise ValueError(f"not a CIDR, IP address or host name: {item!r}")
        hosts.add(name)
    return tuple(networks), frozenset(hosts)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, for the forms that route to it."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    # IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks); :: and ::1 are
    # judged as IPv6 below.
    if int(ip) >> 32 == 0 and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip))
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why `ip` may not be fetched from by default (a phrase), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = refusal(inner)
            return f"{why} (IPv4 {inner} inside IPv6)" if why else None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "a unique-local address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6), in the system resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        addr = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        if addr not in out:
            out.append(addr)
    return out


#: Look-ups run here, so that a resolver that hangs costs a bounded number of threads (a
#: getaddrinfo call cannot be interrupted); with every thread stuck, look-ups time out waiting.
_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns")


def resolve_within(resolver: Resolver, host: str, port: int, timeout: float) -> list[str]:
    """`resolver(host, port)`, or FetchError (TIMEOUT) when it takes over `timeout` seconds."""
    pending = _LOOKUPS.submit(resolver, host, port)
    try:
        return pending.result(timeout)
    except FutureTimeout:
        pending.cancel()
        raise FetchError(f"resolving the image URL's host {host!r} took over {timeout:g} s",
                         TIMEOUT) from None


@dataclass
class UrlFetcher:
    """Fetches image URLs under the rules in the module docstring.

    Args:
        allow: LOUPE_URL_FETCH_ALLOW entries (CIDRs, IPs, host names).
        dns_timeout: seconds to resolve a host name (each hop).
        connect_timeout: seconds to open a connection (each address, each hop).
        total_timeout: seconds for the whole fetch, redirects and body included.
        max_redirects: redirects followed before refusing.
        resolver: (host, port) -> addresses; the system resolver by default (tests inject).
        ssl_context: TLS settings for https (certificate and host name checked by default).
    """

    allow: str | Iterable[str] = ""
    dns_timeout: float = 3.0
    connect_timeout: float = 3.0
    total_timeout: float = 10.0
    max_redirects: int = 3
    resolver: Resolver = system_resolver
    ssl_context: ssl.SSLContext | None = None
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False)
    _hosts: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._networks, self._hosts = parse_allow_list(self.allow)

    # ------------------------------------------------------------------ checks

    def _allowed_ip(self, ip: IPAddress) -> bool:
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(c.version == n.version and c in n for c in candidates for n in self._networks)

    def check(self, url: str) -> tuple[str, str, int, list[str], str]:
        """Checks one hop without sending anything.

        Returns:
            (scheme, host name, port, checked addresses to connect to, request target).
        Raises:
            FetchError: the URL is refused; the message says why.
        """
        if not isinstance(url, str) or not url.strip():
            raise FetchError("the image URL is empty", INVALID_URL)
        url = url.strip()
        if len(url) > _MAX_URL_LENGTH:
            raise FetchError(f"the image URL is longer than {_MAX_URL_LENGTH} characters",
                             INVALID_URL)
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
            raise FetchError("the image URL contains spaces or control characters", INVALID_URL)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise FetchError(f"the image URL is not valid: {exc}", INVALID_URL) from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise FetchError(
                f"the image URL must be http or https, not {scheme or 'a relative URL'!r}", SCHEME
            )
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise FetchError("the image URL has no host", INVALID_URL)
        if parts.username is not None or parts.password is not None:
            raise FetchError("the image URL must not carry credentials", INVALID_URL)
        port = port if port is not None else DEFAULT_PORTS[scheme]
        host_allowed = host in self._hosts
        try:
            addresses = [ipaddress.ip_address(a)
                         for a in resolve_within(self.resolver, host, port, self.dns_timeout)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise FetchError(f"the host {host!r} of the image URL does not resolve ({exc})",
                             RESOLVE) from None
        if not addresses:
            raise FetchError(f"the host {host!r} of the image URL does not resolve", RESOLVE)
        all_allowed = host_allowed or all(self._allowed_ip(a) for a in addresses)
        if not all_allowed:
            for ip in addresses:
                if self._allowed_ip(ip):
                    continue
                why = refusal(ip)
                if why:
                    raise FetchError(
                        f"the image URL's host {host!r} resolves to {why} ({ip}); fetching "
                        "from private networks is not allowed", ADDRESS)
            if port != DEFAULT_PORTS[scheme]:
                raise FetchError(
                    f"the image URL must use the default {scheme} port "
                    f"{DEFAULT_PORTS[scheme]}, not {port}", PORT)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return scheme, host, port, [str(a) for a in addresses], target

    # ------------------------------------------------------------------ fetching

    def fetch(self, url: str, max_bytes: int) -> FetchedImage:
        """GETs `url`, following checked redirects; returns at most `max_bytes` bytes.

        Raises:
            FetchError: refused (address, scheme, port, redirects), failed (connect, status)
                or over a limit (too_large, timeout); the message says which.
        """
        deadline = time.monotonic() + self.total_timeout
        current = url.strip() if isinstance(url, str) else url
        for hop in range(self.max_redirects + 1):
            scheme, host, port, addresses, target = self.check(current)
            conn = self._connect(scheme, host, port, addresses, deadline)
            watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _abort, (conn,))
            watchdog.daemon = True
            watchdog.start()
            try:
                conn.putrequest("GET", target, skip_accept_encoding=True)
                conn.putheader("Accept", "image/*, */*;q=0.5")
                conn.putheader("Accept-Encoding", "identity")
                conn.putheader("User-Agent", _USER_AGENT)
                conn.endheaders()
                response = conn.getresponse()
                if response.status in REDIRECT_STATUSES:
                    location = response.getheader("Location")
                    if not location:
                        raise FetchError(
                            f"the image URL redirected ({response.status}) without a Location",
                            STATUS)
                    if hop == self.max_redirects:
                        raise FetchError(
                            f"the image URL redirected more than {self.max_redirects} times "
                            "(too many redirects)", REDIRECTS)
                    current = urljoin(current, location.strip())
                    continue
                if response.status != 200:
                    raise FetchError(
                        f"the image URL answered HTTP {response.status} {response.reason}",
                        STATUS)
                return FetchedImage(
                    current, _read_limited(response, max_bytes, deadline),
                    (response.getheader("Content-Type") or "").split(";")[0].strip(),
                )
            except FetchError:
                raise
            except (OSError, http.client.HTTPException) as exc:
                if time.monotonic() >= deadline or isinstance(exc, TimeoutError):
                    raise FetchError(
                        f"fetching the image URL timed out after {self.total_timeout:g} s",
                        TIMEOUT) from None
                raise FetchError(f"fetching the image URL failed: {exc}", CONNECT) from None
            finally:
                watchdog.cancel()
                conn.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _connect(self, scheme: str, host: str, port: int, addresses: list[str],
                 deadline: float) -> http.client.HTTPConnection:
        last: Exception | None = None
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            timeout = min(self.connect_timeout, remaining)
            if scheme == "https":
                context = self.ssl_context or ssl.create_default_context()
                conn: http.client.HTTPConnection = _PinnedHTTPSConnection(
                    host, port, address, timeout, context)
            else:
                conn = _PinnedHTTPConnection(host, port, address, timeout)
            try:
                conn.connect()
                # Reads are bounded by the watchdog; the socket timeout only stops a single
                # silent read early.
                conn.sock.settimeout(max(0.05, deadline - time.monotonic()))
                return conn
            except (OSError, ssl.SSLError) as exc:
                conn.close()
                last = exc
        if last is None or isinstance(last, TimeoutError) or time.monotonic() >= deadline:
            raise FetchError(
                f"connecting to the image URL's host {host!r} timed out", TIMEOUT) from None
        raise FetchError(f"could not connect to the image URL's host {host!r}: {last}",
                         CONNECT) from None


def _read_limited(response: http.client.HTTPResponse, max_bytes: int, deadline: float) -> bytes:
    length = response.getheader("Content-Length")
    if length and length.strip().isdigit() and int(length) > max_bytes:
        raise FetchError(
            f"the image at the URL is {int(length)} bytes, too large: the limit is "
            f"{max_bytes} bytes", TOO_LARGE)
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:
        if time.monotonic() >= deadline:
            raise TimeoutError
        chunk = response.read1(min(_CHUNK, max_bytes + 1 - total))
        if not chunk:
            if time.monotonic() >= deadline:  # the watchdog ended the read
                raise TimeoutError
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise FetchError(
            f"the image at the URL is more than {max_bytes} bytes, too large", TOO_LARGE)
    return b"".join(chunks)


def _abort(conn: http.client.HTTPConnection) -> None:
    """Watchdog: unblocks a read that would run past the deadline."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a checked address, with the URL's host in the Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As `_PinnedHTTPConnection`, with TLS verified against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float,
                 context: ssl.SSLContext):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
