"""Fetching the page of a URL, deliberately narrowly, and the settings a fetch goes by.

A URL given to counterpoint must not become a way to probe a network: http and https only, a
deadline, a size cap, a few redirects each checked again, and (unless allowed) no host that
resolves to a loopback, private or link-local address. The connection goes to the very address
that was checked, so a second DNS answer cannot swap it.

urllib3 and certifi (~50 ms) are imported inside the functions that fetch: every run reads
`FetchOptions` from here, few runs fetch a URL.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urljoin, urlsplit

from .defaults import FETCH_TIMEOUT as DEFAULT_FETCH_TIMEOUT
from .defaults import MAX_BYTES as DEFAULT_MAX_BYTES
from .errors import FetchError
from .version import __version__

if TYPE_CHECKING:
    import urllib3

MAX_REDIRECTS = 5
USER_AGENT = f"counterpoint/{__version__} (writes a debate brief on one article at its reader's request)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchOptions:
    """How far a URL fetch may go. `timeout` bounds the connection, each read and the whole fetch."""

    timeout: float = DEFAULT_FETCH_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES
    allow_private_hosts: bool = False
    max_redirects: int = MAX_REDIRECTS
    # How a refusal names the switch: the CLI's flag, or `allow_private_hosts=True` for a library caller.
    allow_private_name: str = "--allow-private-hosts"


@dataclass(frozen=True)
class Page:
    url: str  # after redirects
    raw: bytes
    charset: str | None  # declared in the Content-Type header


def fetch(url: str, options: FetchOptions) -> Page:
    """GET an HTML page, following at most `options.max_redirects` redirects, each checked anew."""
    deadline = time.monotonic() + options.timeout
    current = url
    for _ in range(options.max_redirects + 1):
        with _open(current, options, deadline) as response:
            if response.status in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise FetchError(
                        f"{current} answered HTTP {response.status} (a redirect) with no Location; "
                        "open it in a browser and pass the address it ends at"
                    )
                current = urljoin(current, location)
                continue
            _check_status(current, response.status, response.reason)
            content_type, charset = _content_type(response.headers.get("content-type"))
            if content_type is not None and content_type not in HTML_TYPES:
                raise FetchError(
                    f"{current} is {content_type}, not an HTML page; counterpoint fetches web pages: "
                    "download the file and pass its path (.pdf and .docx are read), or save the article's text"
                )
            return Page(current, _read_capped(current, response, options, deadline), charset)
    raise FetchError(
        f"too many redirects: {url} redirects more than {options.max_redirects} times; "
        "open it in a browser and pass the address it ends at"
    )


@contextmanager
def _open(url: str, options: FetchOptions, deadline: float) -> Iterator[urllib3.BaseHTTPResponse]:
    """One GET without following redirects, connected to an address that passed `host_addresses`."""
    import certifi
    import urllib3
    from urllib3.exceptions import HTTPError, NewConnectionError

    parts, scheme, host, port = _checked_parts(url)
    addresses = host_addresses(host, port, allow_private=options.allow_private_hosts, switch=options.allow_private_name)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Host": parts.netloc.rpartition("@")[2],
        "User-Agent": USER_AGENT,
        "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
    }
    failure = ""
    for address in addresses:
        remaining = _remaining(url, options, deadline)
        # TLS checks the certificate against the URL's host name, not the address connected to.
        pool = (
            urllib3.HTTPSConnectionPool(
                address, port, server_hostname=host, assert_hostname=host, ca_certs=certifi.where()
            )
            if scheme == "https"
            else urllib3.HTTPConnectionPool(address, port)
        )
        try:
            response = pool.urlopen(
                "GET",
                target,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=remaining, read=remaining),
            )
        except NewConnectionError as exc:  # refused or unreachable: the host may have another address
            pool.close()
            failure = getattr(exc.__cause__, "strerror", None) or "connection failed"
            continue
        except (HTTPError, OSError) as exc:
            pool.close()
            raise _transport_error(url, host, exc, options) from None
        try:
            yield response
        finally:
            response.release_conn()
            pool.close()
        return
    raise FetchError(f"cannot connect to {host} port {port} ({failure.lower()}); check the address")


def _checked_parts(url: str) -> tuple[SplitResult, str, str, int]:
    """The URL's parts, scheme, host and port, or a FetchError saying what is wrong with it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        hint = "; for a file on this computer, pass its path" if scheme == "file" else ""
        raise FetchError(f"refusing {url}: only http:// and https:// addresses are fetched{hint}")
    if not parts.hostname:
        raise FetchError(f"{url} has no host name; check the address")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchError(f"{url} has an invalid port; check the address") from None
    return parts, scheme, parts.hostname, port


def host_addresses(host: str, port: int, *, allow_private: bool, switch: str = "--allow-private-hosts") -> list[str]:
    """The host's addresses from DNS; every one must be public unless `allow_private` (DNS can answer with a mix)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchError(
            f"cannot resolve host {host} (DNS lookup failed); check the address and your network connection"
        ) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            kind = non_public_kind(ipaddress.ip_address(address.split("%")[0]))
            if kind:
                raise FetchError(
                    f"refusing {host}: it resolves to {address}, a {kind} address; pass "
                    f"{switch} to fetch from this machine or your own network"
                )
    return addresses


def non_public_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What makes an address off-limits by default, or None for a public address."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 reaches 127.0.0.1
        address = mapped
    for kind, test in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    ):
        if test:
            return kind
    return None


def _remaining(url: str, options: FetchOptions, deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(f"timed out: {url} took longer than {options.timeout:g} s (--fetch-timeout)")
    return remaining


def _transport_error(url: str, host: str, exc: Exception, options: FetchOptions) -> FetchError:
    import ssl

    from urllib3.exceptions import ConnectTimeoutError, ProtocolError, ReadTimeoutError, SSLError
    from urllib3.util.ssl_match_hostname import CertificateError

    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, TimeoutError)):
        return FetchError(
            f"timed out: {url} did not answer within {options.timeout:g} s; try again later or raise --fetch-timeout"
        )
    if isinstance(exc, SSLError):
        reason = exc.args[0] if exc.args else None
        why = (
            "its certificate could not be verified"
            if isinstance(reason, (ssl.SSLCertVerificationError, CertificateError))
            else "TLS error"
        )
        return FetchError(f"secure connection to {host} failed ({why}); check the address")
    if isinstance(exc, ProtocolError):
        return FetchError(f"{host} dropped the connection while sending {url}; try again later")
    reason = getattr(exc, "strerror", None) or exc.__class__.__name__
    return FetchError(f"cannot fetch {url} ({reason}); check the address and try again")


def _check_status(url: str, status: int, reason: str | None) -> None:
    if 200 <= status < 300:
        return
    if status in (404, 410):
        raise FetchError(f"{url} was not found (HTTP {status}); check the address")
    if status in (401, 403):
        raise FetchError(
            f"{url} refused access (HTTP {status}); if it opens in your browser, save the page and pass the .html file"
        )
    raise FetchError(
        f"{url} answered HTTP {status} {reason or ''}".rstrip() + "; try again later, or save the "
        "page from your browser and pass the .html file"
    )


def _content_type(header: str | None) -> tuple[str | None, str | None]:
    """The media type and charset of a Content-Type header (None when the server sent none)."""
    if not header:
        return None, None
    message = Message()
    message["content-type"] = header
    charset = message.get_param("charset")
    return message.get_content_type(), charset if isinstance(charset, str) else None


def _read_capped(url: str, response: urllib3.BaseHTTPResponse, options: FetchOptions, deadline: float) -> bytes:
    """The body, refused once it passes max_bytes (announced or not) or the deadline."""
    from urllib3.exceptions import HTTPError

    too_big = FetchError(
        f"too large: {url} is over the {options.max_bytes:,}-byte limit; raise --max-bytes "
        "if the page really is that big"
    )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > options.max_bytes:
        raise too_big
    body = bytearray()
    while True:
        _remaining(url, options, deadline)
        try:
            chunk = response.read1(_CHUNK)  # at most one socket read, so the deadline is checked often
        except (HTTPError, OSError) as exc:
            raise _transport_error(url, urlsplit(url).hostname or url, exc, options) from None
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > options.max_bytes:
            raise too_big
