"""brief.html in a real browser: Debian's headless Chromium screenshots the seed brief and dumps the
DOM it built, and a hostile brief runs no script.

Skipped only where /usr/bin/chromium is missing and COUNTERPOINT_REQUIRE_BROWSER is not 1; CI
(.ci/run) sets it and installs Chromium, so a missing browser fails there instead of hiding.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from . import hostile
from .conftest import SEED, read_brief
from .htmltree import Node, parse

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1280, 2400)
# No network, no first-run work, no background fetches: the page is all there is.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture
def chromium() -> Path:
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("COUNTERPOINT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"COUNTERPOINT_REQUIRE_BROWSER=1 but {CHROMIUM} is missing; install Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed")
    return CHROMIUM


def headless(chromium: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One Chromium run with a fresh profile; it has up to 3 s of page time for onload/onerror."""
    command = [str(chromium), *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def dump_dom(chromium: Path, tmp_path: Path, page: Path) -> Node:
    return parse(headless(chromium, tmp_path / f"profile-dom-{page.stem}", "--dump-dom", page.as_uri()).stdout)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_seed_brief_renders_with_its_highlights_and_cards(chromium: Path, cli, tmp_path: Path) -> None:
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    page = result.run_dir / "brief.html"
    claims = [c["id"] for c in read_brief(result.run_dir)["claims"]]

    screenshot = tmp_path / "seed_brief.png"
    headless(
        chromium,
        tmp_path / "profile-shot",
        f"--screenshot={screenshot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        page.as_uri(),
    )
    assert png_size(screenshot) == WINDOW
    # A blank page of this size compresses to under 20 kB; the rendered brief is several times that.
    assert screenshot.stat().st_size > 100_000

    dom = dump_dom(chromium, tmp_path, page)
    assert dom.find_all("title")[0].text().startswith("Counterpoint brief: Russia may be leaving Syria")
    assert len(claims) == 8
    for claim_id in claims:
        mark = dom.by_id(f"quote-{claim_id}")
        assert mark.tag == "mark" and mark.find_all("a", href=f"#claim-{claim_id}")
        card = dom.by_id(f"claim-{claim_id}")
        assert card.tag == "article" and card.find_all("a", href=f"#quote-{claim_id}")
        assert card.find_all("span", role="img")  # the strength and centrality scales
    assert dom.by_id("quote-rh1").tag == "mark" and dom.by_id("synthesis").find_all("a", href="#quote-rh1")


def test_hostile_brief_executes_nothing_and_shows_the_text(chromium: Path, runs_dir: Path, tmp_path: Path) -> None:
    # The harness can see execution: the same payloads in a plain page do change the title.
    control = tmp_path / "control.html"
    control.write_text(f"<!doctype html><title>original</title><body>{hostile.IMG}{hostile.SCRIPT}</body>")
    assert dump_dom(chromium, tmp_path, control).find_all("title")[0].text() == "pwned"

    run_dir = hostile.write_hostile_run(runs_dir)
    source = parse((run_dir / "brief.html").read_text(encoding="utf-8"))
    dom = dump_dom(chromium, tmp_path, run_dir / "brief.html")
    title = dom.find_all("title")[0].text()
    assert "pwned" not in title.replace(hostile.SCRIPT, "")
    assert title == source.find_all("title")[0].text(), "a script changed the title"
    assert not dom.find_all("script") and not dom.find_all("img") and not dom.find_all("iframe")
    for node in dom.iter():
        assert not any(name.startswith("on") for name in node.attrs), node
        assert not (node.attrs.get("href") or "").lower().lstrip().startswith("javascript"), node
    text = dom.text()
    for payload in hostile.PAYLOADS:
        assert text.count(payload) >= 3, payload
