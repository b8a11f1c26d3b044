"""Articles from the web: saved HTML pages and URLs, served by a local HTTP server started here.

Every fetch goes to 127.0.0.1, so the tests that fetch pass --allow-private-hosts; the refusal
without it is tested too. The pages under tests/data/web/ were written for these tests.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import certifi
import pytest
import trustme

from pipeline import __version__, article, fetch, sources, web
from pipeline.brief import check_brief
from pipeline.errors import FetchError, InputError
from pipeline.testing import FakeResponse

from .conftest import ROOT, TEST_KEY, one_error_line, read_brief, read_manifest

WEB = ROOT / "tests" / "data" / "web"
NEWS_PAGE = WEB / "news-article.html"
CANONICAL = "https://ledger.example.com/opinion/2016/03/15/putin-assad-syria"
BOILERPLATE = (
    "NAV-",
    "AD-LEADERBOARD",
    "AD-SIDEBAR",
    "Advertisement",
    "COOKIE-BANNER",
    "Accept all cookies",
    "RELATED-LINK",
    "COMMENT-ONE",
    "COMMENT-TWO",
    "COMMENT-THREE",
    "ReaderInOhio",
    "FOOTER-TEXT",
    "Subscribe for one dollar",
)
HUGE_BYTES = 6_000_000


def seed_paragraphs() -> list[str]:
    """The seed article's body paragraphs (after its title and standfirst, before the author's bio)."""
    blocks = [block.strip() for block in (ROOT / "seeds" / "putin-assad-syria.txt").read_text("utf-8").split("\n\n")]
    return [" ".join(block.split()) for block in blocks if block][2:-1]


# -- the local web server ---------------------------------------------------------------------


@dataclass
class Site:
    """A local web server: routes map a path to a function that answers the request."""

    routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def send(
    http: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    length: bool = True,
) -> None:
    try:
        http.send_response(status)
        for name, value in (headers or {}).items():
            http.send_header(name, value)
        if length:
            http.send_header("Content-Length", str(len(body)))
        http.end_headers()
        http.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        return  # the client stopped reading (the size cap and timeout tests)


def page(path: Path, content_type: str = "text/html; charset=utf-8") -> Callable[[BaseHTTPRequestHandler], None]:
    return lambda http: send(http, 200, path.read_bytes(), {"Content-Type": content_type})


def redirect(status: int, location: str) -> Callable[[BaseHTTPRequestHandler], None]:
    return lambda http: send(http, status, b"", {"Location": location})


def endless_redirects(http: BaseHTTPRequestHandler) -> None:
    hop = int(http.path.rsplit("/", 1)[1])
    send(http, 302, b"", {"Location": f"/loop/{hop + 1}"})


def slow(http: BaseHTTPRequestHandler) -> None:
    time.sleep(3)
    send(http, 200, NEWS_PAGE.read_bytes(), {"Content-Type": "text/html"})


def huge(http: BaseHTTPRequestHandler) -> None:
    """A body far over the cap, with no Content-Length: only counting while reading can stop it."""
    try:
        http.send_response(200)
        http.send_header("Content-Type", "text/html")
        http.end_headers()
        http.wfile.write(b"<!DOCTYPE html><html><body>")
        filler = b"<p>" + b"filler text " * 5000 + b"</p>\n"
        for _ in range(HUGE_BYTES // len(filler) + 1):
            http.wfile.write(filler)
    except (BrokenPipeError, ConnectionResetError):
        return


def without_canonical(http: BaseHTTPRequestHandler) -> None:
    html = "\n".join(
        line for line in NEWS_PAGE.read_text("utf-8").split("\n") if "canonical" not in line and "og:url" not in line
    )
    send(http, 200, html.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})


@contextmanager
def serving(state: Site, tls: ssl.SSLContext | None = None) -> Iterator[Site]:
    """Serve `state`'s routes on 127.0.0.1 (over TLS with `tls`) in a thread, for the block's length."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            state.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            route = state.routes.get(self.path)
            if route is None:
                send(self, 404, b"no route")
            else:
                route(self)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site(
        routes={
            "/opinion/putin-assad": page(NEWS_PAGE),
            "/old-link": redirect(301, "/moved"),
            "/moved": redirect(302, "/opinion/putin-assad"),
            "/loop/0": endless_redirects,
            **{f"/loop/{n}": endless_redirects for n in range(1, 20)},
            "/to-ftp": redirect(302, "ftp://127.0.0.1/article.html"),
            "/short-link": redirect(302, "/plain"),
            "/plain": without_canonical,
            "/missing": lambda http: send(http, 404, b"<h1>Not found</h1>", {"Content-Type": "text/html"}),
            "/broken": lambda http: send(http, 503, b"down", {"Content-Type": "text/plain"}),
            "/slow": slow,
            "/huge": huge,
            "/huge-declared": lambda http: send(
                http, 200, b"<html>", {"Content-Type": "text/html", "Content-Length": "50000000"}, length=False
            ),
            "/report.pdf": lambda http: send(
                http, 200, b"%PDF-1.7\n%binary report\n", {"Content-Type": "application/pdf"}
            ),
            "/front": page(WEB / "no-article.html"),
        }
    )
    with serving(state):
        yield state


@pytest.fixture
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_site(tls_ca: trustme.CA) -> Iterator[Site]:
    """The news page over HTTPS, with a certificate for 'localhost' from a test CA nobody trusts yet."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_ca.issue_cert("localhost").configure_cert(context)
    with serving(Site(routes={"/opinion/putin-assad": page(NEWS_PAGE)}), context) as state:
        yield state


def fetch_fails(cli, runs_dir: Path, server, *args: str) -> str:
    """Run on a URL that must fail before any model call or run directory; return the error line."""
    result = cli("run", *args)
    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""
    assert not runs_dir.exists()
    assert server.requests == []
    return one_error_line(result)


def assert_web_brief(run_dir: Path, *, url: str, source: str) -> dict[str, Any]:
    """A complete brief over the extracted text, with the page's metadata everywhere it belongs."""
    text = (run_dir / "article.txt").read_text("utf-8")
    for paragraph in seed_paragraphs():
        assert article.locate(text, paragraph) is not None, paragraph[:60]
    for marker in BOILERPLATE:
        assert marker not in text, marker
    assert (run_dir / "source.html").read_text("utf-8") == NEWS_PAGE.read_text("utf-8")
    brief = read_brief(run_dir)
    assert brief["status"] == "complete"
    assert check_brief(brief, text) == []
    assert all(text[c["start"] : c["end"]] == c["quote"] for c in brief["claims"])
    expected = {
        "site": "The Meridian Ledger",
        "url": url,
        "date": "2016-03-15",
        "author": "James Jay Carafano",
        "title": "Russia may be leaving Syria but Putin will have Assad's back for a long, long time",
        "source": source,
    }
    manifest = read_manifest(run_dir)
    for record in (brief["article"], manifest["article"]):
        assert {key: record[key] for key in expected} == expected
    markdown = (run_dir / "brief.md").read_text("utf-8")
    for line in ("**Date:** 2016-03-15", "**Site:** The Meridian Ledger", f"**URL:** {url}"):
        assert line in markdown
    return brief


# -- extraction ---------------------------------------------------------------------------------


def test_news_page_extraction_keeps_the_article_and_drops_the_boilerplate() -> None:
    loaded = sources.load(str(NEWS_PAGE))
    for paragraph in seed_paragraphs():
        assert article.locate(loaded.text, paragraph) is not None, paragraph[:60]
    for marker in BOILERPLATE:
        assert marker not in loaded.text, marker
    assert "\n\n" in loaded.text and "\n\n\n" not in loaded.text  # paragraphs as in a text article
    assert (loaded.title, loaded.author, loaded.date, loaded.site, loaded.url) == (
        "Russia may be leaving Syria but Putin will have Assad's back for a long, long time",
        "James Jay Carafano",
        "2016-03-15",
        "The Meridian Ledger",
        CANONICAL,
    )
    assert loaded.html == NEWS_PAGE.read_text("utf-8")
    assert loaded.text == article.normalise(loaded.text)


def test_html_is_recognised_by_content_without_an_html_extension(tmp_path: Path) -> None:
    saved = tmp_path / "saved-page"
    saved.write_bytes(b"\xef\xbb\xbf\n<!-- saved from a browser -->\n" + NEWS_PAGE.read_bytes())
    loaded = sources.load(str(saved))
    assert loaded.site == "The Meridian Ledger" and "COMMENT-ONE" not in loaded.text
    assert not sources.is_html("notes.md", b"# A heading\n\nSome <b>bold</b> text.")


def test_a_saved_page_with_no_article_is_refused() -> None:
    with pytest.raises(InputError, match=r"no-article.html holds no article that can be extracted"):
        sources.load(str(WEB / "no-article.html"))


@pytest.mark.parametrize(
    ("raw", "declared", "encoding", "expected"),
    [
        ("Ceci coûte 5 €".encode("iso-8859-15"), "ISO-8859-15", None, "Ceci coûte 5 €"),  # the HTTP charset
        (b'<meta charset="iso-8859-15"><p>' + "5 €".encode("iso-8859-15"), None, None, "5 €"),  # <meta charset>
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">' + "Мир".encode("koi8-r"),
            None,
            None,
            "Мир",
        ),
        ("\u201cquoted\u201d".encode("cp1252"), "iso-8859-1", None, "\u201cquoted\u201d"),  # read as browsers do
        ("caf\u00e9".encode("utf-8"), "no-such-charset", None, "caf\u00e9"),  # unknown label: detect
        (b"\xef\xbb\xbf" + "caf\u00e9".encode("utf-8"), "iso-8859-15", None, "caf\u00e9"),  # a BOM wins
        ("5 €".encode("iso-8859-15"), "utf-8", "iso-8859-15", "5 €"),  # --encoding wins over everything
    ],
)
def test_html_decoding_follows_the_declared_charset(
    raw: bytes, declared: str | None, encoding: str | None, expected: str
) -> None:
    assert web.decode_html(raw, "page", declared=declared, encoding=encoding).endswith(expected)


# -- end to end ---------------------------------------------------------------------------------


def test_saved_html_file_produces_a_complete_brief(cli, server) -> None:
    result = cli("run", str(NEWS_PAGE), "--no-cache")
    assert result.exit_code == 0, result.stderr
    brief = assert_web_brief(result.run_dir, url=CANONICAL, source=str(NEWS_PAGE))
    # The date reached the synthesis caveat, and the "no date" note is gone.
    (synthesis,) = server.requests_for("synthesize")
    assert "the article's date (2016-03-15)" in synthesis.body["messages"][-1]["content"]
    assert not any("carries no date" in note for note in brief["notes"])


def test_local_url_produces_a_complete_brief(cli, server, site: Site) -> None:
    url = site.url("/opinion/putin-assad")
    result = cli("run", url, "--allow-private-hosts", "--no-cache")
    assert result.exit_code == 0, result.stderr
    assert_web_brief(result.run_dir, url=CANONICAL, source=url)
    (synthesis,) = server.requests_for("synthesize")
    assert "the article's date (2016-03-15)" in synthesis.body["messages"][-1]["content"]
    (request,) = site.requests
    assert request["user-agent"].startswith(f"counterpoint/{__version__} (")
    assert request["host"] == f"127.0.0.1:{site.port}"


def test_the_library_fetches_a_url_with_the_same_guards(server, site: Site) -> None:
    from pipeline import generate_brief

    url = site.url("/opinion/putin-assad")
    with pytest.raises(FetchError, match="pass allow_private_hosts=True"):  # the keyword, not the CLI flag
        generate_brief(url=url, base_url=server.base_url, api_key=TEST_KEY)
    assert site.requests == [] and server.requests == []
    brief = generate_brief(
        url=url, base_url=server.base_url, api_key=TEST_KEY, allow_private_hosts=True, date="2016-03-14"
    )
    assert brief.status == "complete"
    assert (brief.article.url, brief.article.source, brief.article.date) == (CANONICAL, url, "2016-03-14")
    assert len(site.requests) == 1 and len(server.requests) == 10


def test_a_partial_url_run_resumes_with_its_metadata(cli, server, site: Site) -> None:
    url = site.url("/opinion/putin-assad")
    server.script("C2", FakeResponse(status=400, error_message="scripted bad request"))
    first = cli("run", url, "--allow-private-hosts", "--no-cache")
    assert first.exit_code == 3, first.stderr
    resumed = cli("run", "--resume", "latest", "--no-cache")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.run_dir == first.run_dir
    assert_web_brief(resumed.run_dir, url=CANONICAL, source=url)
    assert len(site.requests) == 1  # resume quotes the recorded text, it does not fetch again


def test_redirect_chain_is_followed(site: Site) -> None:
    loaded = sources.load(site.url("/old-link"), fetch=fetch.FetchOptions(allow_private_hosts=True))
    assert [r["path"] for r in site.requests] == ["/old-link", "/moved", "/opinion/putin-assad"]
    assert loaded.source == site.url("/old-link") and loaded.url == CANONICAL


def test_without_a_canonical_link_the_url_is_where_the_redirects_end(site: Site) -> None:
    loaded = sources.load(site.url("/short-link"), fetch=fetch.FetchOptions(allow_private_hosts=True))
    assert loaded.url == site.url("/plain")


# -- one-line errors ------------------------------------------------------------------------------


def test_too_many_redirects(cli, runs_dir, server, site: Site) -> None:
    error = fetch_fails(cli, runs_dir, server, site.url("/loop/0"), "--allow-private-hosts")
    assert error == (
        f"error: too many redirects: {site.url('/loop/0')} redirects more than 5 times; "
        "open it in a browser and pass the address it ends at"
    )
    assert len(site.requests) == 6


def test_404(cli, runs_dir, server, site: Site) -> None:
    error = fetch_fails(cli, runs_dir, server, site.url("/missing"), "--allow-private-hosts")
    assert error == f"error: {site.url('/missing')} was not found (HTTP 404); check the address"


def test_other_http_status(cli, runs_dir, server, site: Site) -> None:
    error = fetch_fails(cli, runs_dir, server, site.url("/broken"), "--allow-private-hosts")
    assert error.startswith(f"error: {site.url('/broken')} answered HTTP 503 Service Unavailable; try again later")


def test_slow_server_times_out(cli, runs_dir, server, site: Site) -> None:
    started = time.monotonic()
    error = fetch_fails(cli, runs_dir, server, site.url("/slow"), "--allow-private-hosts", "--fetch-timeout", "0.5")
    assert time.monotonic() - started < 2.5
    assert error == (
        f"error: timed out: {site.url('/slow')} did not answer within 0.5 s; try again later or raise --fetch-timeout"
    )


def test_huge_body_hits_the_cap(cli, runs_dir, server, site: Site) -> None:
    error = fetch_fails(cli, runs_dir, server, site.url("/huge"), "--allow-private-hosts")
    assert error == (
        f"error: too large: {site.url('/huge')} is over the 5,000,000-byte limit; raise --max-bytes "
        "if the page really is that big"
    )


def test_announced_size_over_the_cap_is_refused_before_reading(cli, runs_dir, server, site: Site) -> None:
    error = fetch_fails(
        cli, runs_dir, server, site.url("/huge-declared"), "--allow-private-hosts", "--max-bytes", "100000"
    )
    assert error.startswith(f"error: too large: {site.url('/huge-declared')} is over the 100,000-byte limit")


def test_pdf_content_type_is_refused(cli, runs_dir, server, site: Site) -> None:
    error = fetch_fails(cli, runs_dir, server, site.url("/report.pdf"), "--allow-private-hosts")
    assert error == (
        f"error: {site.url('/report.pdf')} is application/pdf, not an HTML page; counterpoint fetches web "
        "pages: download the file and pass its path (.pdf and .docx are read), or save the article's text"
    )


def test_page_with_no_article(cli, runs_dir, server, site: Site) -> None:
    error = fetch_fails(cli, runs_dir, server, site.url("/front"), "--allow-private-hosts")
    assert error == (
        f"error: {site.url('/front')} holds no article that can be extracted (2 words of article "
        "text, at least 40 needed); if it does show one, save its text to a file and pass that"
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_host_is_refused_without_the_flag(cli, runs_dir, server, site: Site, host: str) -> None:
    error = fetch_fails(cli, runs_dir, server, site.url("/opinion/putin-assad", host=host))
    assert error.startswith(f"error: refusing {host}: it resolves to ")
    assert error.endswith(
        ", a loopback address; pass --allow-private-hosts to fetch from this machine or your own network"
    )
    assert site.requests == []  # refused before connecting


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("file:///etc/passwd", "; for a file on this computer, pass its path"),
        ("ftp://127.0.0.1/article.html", ""),
        ("gopher://127.0.0.1/1", ""),
    ],
)
def test_other_schemes_are_refused(cli, runs_dir, server, url: str, hint: str) -> None:
    error = fetch_fails(cli, runs_dir, server, url, "--allow-private-hosts")
    assert error == f"error: refusing {url}: only http:// and https:// addresses are fetched{hint}"


def test_a_redirect_to_another_scheme_is_refused(cli, runs_dir, server, site: Site) -> None:
    error = fetch_fails(cli, runs_dir, server, site.url("/to-ftp"), "--allow-private-hosts")
    assert error == "error: refusing ftp://127.0.0.1/article.html: only http:// and https:// addresses are fetched"


def test_dns_failure(cli, runs_dir, server) -> None:
    error = fetch_fails(cli, runs_dir, server, "http://no-such-host.invalid/op-ed")
    assert error == (
        "error: cannot resolve host no-such-host.invalid (DNS lookup failed); check the address "
        "and your network connection"
    )


def test_connection_refused(cli, runs_dir, server) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = fetch_fails(cli, runs_dir, server, f"http://127.0.0.1:{port}/op-ed", "--allow-private-hosts")
    assert error == f"error: cannot connect to 127.0.0.1 port {port} (connection refused); check the address"


# -- HTTPS -----------------------------------------------------------------------------------------


def test_https_checks_the_certificate_against_the_url_host(
    tls_site: Site, tls_ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to the vetted address, yet TLS (SNI and the name check) uses the URL's host."""
    bundle = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setattr(certifi, "where", lambda: str(bundle))
    url = f"https://localhost:{tls_site.port}/opinion/putin-assad"
    loaded = sources.load(url, fetch=fetch.FetchOptions(allow_private_hosts=True))
    assert loaded.site == "The Meridian Ledger" and loaded.source == url
    assert tls_site.requests[0]["host"] == f"localhost:{tls_site.port}"
    # The same trusted certificate does not pass for another name, here the bare address.
    with pytest.raises(
        FetchError,
        match=r"^secure connection to 127\.0\.0\.1 failed \(its certificate could "
        r"not be verified\); check the address$",
    ):
        sources.load(
            f"https://127.0.0.1:{tls_site.port}/opinion/putin-assad", fetch=fetch.FetchOptions(allow_private_hosts=True)
        )


def test_https_with_an_untrusted_certificate_is_refused(cli, runs_dir, server, tls_site: Site) -> None:
    error = fetch_fails(
        cli, runs_dir, server, f"https://localhost:{tls_site.port}/opinion/putin-assad", "--allow-private-hosts"
    )
    assert error == (
        "error: secure connection to localhost failed (its certificate could not be verified); check the address"
    )
    assert tls_site.requests == []


# -- the address checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_classes(address: str, kind: str | None) -> None:
    assert fetch.non_public_kind(ipaddress.ip_address(address)) == kind


def test_host_addresses_checks_addresses_without_connecting() -> None:
    assert fetch.host_addresses("93.184.215.14", 80, allow_private=False) == ["93.184.215.14"]
    assert fetch.host_addresses("10.0.0.8", 80, allow_private=True) == ["10.0.0.8"]
    with pytest.raises(FetchError, match=r"refusing 10\.0\.0\.8: it resolves to 10\.0\.0\.8, a private address"):
        fetch.host_addresses("10.0.0.8", 80, allow_private=False)
