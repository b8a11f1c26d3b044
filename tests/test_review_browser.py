"""The review page and brief.html's views in real headless Chromium (Debian's, driven through the
DevTools protocol by Playwright; no browser is downloaded): an editor accepts one rebuttal, rejects
another and types a note, and the decisions are in review.json and in `export --reviewed`.

Skipped only where /usr/bin/chromium is missing and COUNTERPOINT_REQUIRE_BROWSER is not 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import read_brief, run_subprocess
from .review_helpers import Served, make_run, rebuttals
from .test_html_browser import FLAGS, chromium  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def run_dir(cli) -> Path:
    return make_run(cli)


@pytest.fixture
def browser(chromium: Path, run_dir: Path) -> Iterator[Any]:  # noqa: F811
    """Playwright's sync API keeps an event loop running in this thread, so the run (which uses
    asyncio.run) is made first: this fixture depends on it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def tools(page: Any, rebuttal_id: str) -> Any:
    return page.locator(f'.review-tools[data-rebuttal="{rebuttal_id}"]')


def test_an_editor_accepts_rejects_and_notes_in_the_browser(browser: Any, run_dir: Path, runs_dir: Path) -> None:
    accepted, rejected = rebuttals(run_dir)[0], rebuttals(run_dir)[3]
    note = "Strong: add the 2017 lease terms."
    served = Served(runs_dir, "--reviewer", "Ana Editor")
    try:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(served.url)
        assert page.url == f"{served.base}/", "the token leaves the address bar"
        page.get_by_role("link", name=read_brief(run_dir)["article"]["title"]).click()
        status = page.locator("#review-status")

        tools(page, accepted["id"]).locator('button[data-decision="accept"]').click()
        status.filter(has_text="Saved (revision 1)").wait_for()
        tools(page, rejected["id"]).locator('button[data-decision="reject"]').click()
        status.filter(has_text="Saved (revision 2)").wait_for()
        tools(page, accepted["id"]).locator('textarea[data-field="note"]').fill(note)
        page.keyboard.press("Tab")  # leaving the field fires 'change', which saves the note
        status.filter(has_text="Saved (revision 3)").wait_for()
        assert tools(page, accepted["id"]).get_attribute("data-state") == "accept"
        assert (
            tools(page, accepted["id"]).locator('button[data-decision="accept"]').get_attribute("aria-pressed")
            == "true"
        )
        assert tools(page, rejected["id"]).get_attribute("data-state") == "reject"
        assert page.locator("#review-progress").inner_text().startswith("2 of ")

        # Another tab (here, a script) changes the review: the page's next save is refused and says so.
        page.request.post(
            f"{served.base}/api/runs/{run_dir.name}/review",
            headers={"X-Counterpoint-Token": served.token},
            data=json.dumps({"claim_notes": {"C1": "from the other tab"}}),
        )
        tools(page, rejected["id"]).locator('button[data-decision="accept"]').click()
        status.filter(has_text="changed in another tab").wait_for()
        assert "bad" in (status.get_attribute("class") or "")
        assert [e for e in errors if "409 (Conflict)" not in e] == [], errors
    finally:
        served.stop()

    review = json.loads((run_dir / "review.json").read_text(encoding="utf-8"))
    assert review["revision"] == 4 and review["reviewer"] == "Ana Editor"
    assert review["decisions"][accepted["id"]]["decision"] == "accept"
    assert review["decisions"][accepted["id"]]["note"] == note
    assert review["decisions"][rejected["id"]]["decision"] == "reject", "the stale click changed nothing"

    exported = run_subprocess(["export", run_dir.name, "--runs-dir", str(runs_dir), "--reviewed"])
    assert exported.returncode == 0, exported.stderr
    assert accepted["argument"] in exported.stdout and note in exported.stdout
    assert rejected["argument"] not in exported.stdout


def test_the_brief_page_views_work_without_scripts(browser: Any, run_dir: Path) -> None:
    brief = read_brief(run_dir)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto((run_dir / "brief.html").as_uri())
    summary_top = page.locator("#summary").bounding_box()["y"]
    assert summary_top < page.locator(".card").first.bounding_box()["y"], "the summary comes before the cards"
    cards = {claim["id"]: page.locator(f"#claim-{claim['id']}") for claim in brief["claims"]}
    assert all(card.is_visible() for card in cards.values())

    page.get_by_text("check-worthy claims only").click()
    for claim in brief["claims"]:
        assert cards[claim["id"]].is_visible() == claim["check_worthy"], claim["id"]
    page.get_by_text("check-worthy claims only").click()

    page.get_by_text("strongest rebuttals only").click()
    strongest = set(brief["synthesis"]["strongest_rebuttals"])
    for rebuttal in rebuttals(run_dir):
        assert page.locator(f"#rebuttal-{rebuttal['id']}").is_visible() == (rebuttal["id"] in strongest), rebuttal["id"]
    first = page.locator("#summary .strongest a").first
    first.click()
    assert page.url.endswith(first.get_attribute("href") or "-")
    context.close()
