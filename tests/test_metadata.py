"""Metadata of text and Markdown articles (headline by layout, byline author and date, closing bio,
front matter, ISO dates with the wording kept) and the --title/--author/--date options of `run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import article

from .conftest import ROOT, read_brief, read_manifest

SEED = (ROOT / "seeds" / "putin-assad-syria.txt").read_text("utf-8")
BODY = "\n\n".join(SEED.split("\n\n")[3:-1])


def test_a_headline_ending_in_a_full_stop_with_a_byline_and_date_under_it() -> None:
    text = f"Putin will have Assad's back for a long time.\n\nBy Jane Roe | January 14, 2015\n\n{BODY}"
    found = article.from_text(text)
    assert (found.title, found.author, found.date, found.date_text) == (
        "Putin will have Assad's back for a long time.",
        "Jane Roe",
        "2015-01-14",
        "January 14, 2015",
    )


def test_a_first_sentence_run_into_its_paragraph_is_no_headline() -> None:
    text = f"Putin will have Assad's back. He said so on Monday, and he meant it.\n{BODY}"
    assert article.from_text(text).title is None


@pytest.mark.parametrize(
    ("line", "iso"),
    [
        ("January 14, 2015", "2015-01-14"),
        ("14 January 2015", "2015-01-14"),
        ("Jan. 14, 2015", "2015-01-14"),
        ("Sept. 3rd, 2020", "2020-09-03"),
        ("Published 2015-01-14T09:30:00Z", "2015-01-14"),
        ("February 30, 2015", None),
    ],
)
def test_dates_are_iso_with_the_wording_kept(line: str, iso: str | None) -> None:
    found = article.from_text(f"A headline\n\nBy Jane Roe\n\n{line}\n\n{BODY}")
    assert found.date == iso
    assert found.date_text is not None and found.date_text in line


@pytest.mark.parametrize(
    ("last", "author"),
    [
        ("New York is paying for this, and its taxpayers will go on paying for decades.", None),
        ("Jane Roe is the largest city in the state.", None),
        ("Jane Roe is a professor of economics at Yale.", "Jane Roe"),
        ("Jane Roe is vice president of policy studies at The Heritage Foundation.", "Jane Roe"),
        ("New York is the city whose president resigned over the stadium deal last year.", None),
        ("Jane Roe writes about foreign policy.", "Jane Roe"),
    ],
)
def test_a_closing_bio_names_the_author_but_a_sentence_does_not(last: str, author: str | None) -> None:
    assert article.from_text(f"A headline\n\n{BODY}\n\n{last}").author == author


def test_markdown_front_matter_gives_title_author_and_date() -> None:
    text = f"---\ntitle: The Bet\nauthor: [Jane Roe, John Doe]\ndate: January 14, 2015\n---\n{BODY}"
    found = article.from_text(text)
    assert (found.title, found.author, found.date, found.date_text) == (
        "The Bet",
        "Jane Roe, John Doe",
        "2015-01-14",
        "January 14, 2015",
    )
    iso = article.from_text(f"---\ndate: 2015-01-14\n---\n{BODY}")
    assert (iso.date, iso.date_text) == ("2015-01-14", "2015-01-14")


def test_run_reads_layout_metadata_and_the_options_override_it(cli, tmp_path: Path) -> None:
    path = tmp_path / "oped.txt"
    path.write_text(f"Putin will have Assad's back.\n\nBy Jane Roe | January 14, 2015\n\n{BODY}", "utf-8")
    detected = cli("run", str(path), "--no-cache")
    assert detected.exit_code == 0, detected.stderr
    record = read_brief(detected.run_dir)["article"]
    assert (record["title"], record["author"], record["date"], record["date_text"]) == (
        "Putin will have Assad's back.",
        "Jane Roe",
        "2015-01-14",
        "January 14, 2015",
    )
    given = cli("run", str(path), "--no-cache", "--title", "The Bet", "--author", "John Doe", "--date", "2016-03-15")
    assert given.exit_code == 0, given.stderr
    for record in (read_brief(given.run_dir)["article"], read_manifest(given.run_dir)["article"]):
        assert (record["title"], record["author"], record["date"]) == ("The Bet", "John Doe", "2016-03-15")


@pytest.mark.parametrize("date", ["14/01/2015", "2015-02-30", "January 14, 2015"])
def test_a_bad_date_option_is_a_usage_error(cli, tmp_path: Path, date: str) -> None:
    path = tmp_path / "oped.txt"
    path.write_text(f"A headline\n\n{BODY}", "utf-8")
    result = cli("run", str(path), "--date", date)
    assert result.exit_code == 2
    assert "is not a calendar date as YYYY-MM-DD; give it like 2015-01-14" in result.stderr


def test_an_empty_title_option_is_a_one_line_error(cli, tmp_path: Path) -> None:
    path = tmp_path / "oped.txt"
    path.write_text(f"A headline\n\n{BODY}", "utf-8")
    result = cli("run", str(path), "--title", "  ")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["error: the title '  ' is empty or spans lines; give it on one line"]
