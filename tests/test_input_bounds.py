"""Inputs that could exhaust the machine or be misread: endless or huge input, Chinese and Japanese
text, Markdown front matter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from pipeline import article as article_mod
from pipeline import sources
from pipeline.errors import InputError

from .conftest import COUNTERPOINT, SEED, TEST_KEY, read_brief, start_counterpoint

SEED_TEXT = SEED.read_text(encoding="utf-8")
OVER_DEFAULT = (
    "error: {name} is over 240,004 bytes, more than --max-chars 60,000 characters can take; "
    "raise --max-chars or pass --truncate"
)


# Measures counterpoint from a small launcher: a child forked from pytest itself would start with
# pytest's resident memory, and ru_maxrss would report that instead.
MEASURE = """
import json, os, resource, subprocess, sys, time
# Without the bound, reading /dev/zero would take the machine's memory: fail at 2 GiB instead.
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
started = time.monotonic()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump([os.waitstatus_to_exitcode(status), time.monotonic() - started, usage.ru_maxrss / 1024], out)
"""


def run_measured(
    args: list[str],
    tmp_path: Path,
    stdin: int | IO[bytes] = subprocess.DEVNULL,
) -> tuple[int, str, float, float]:
    """Run counterpoint in a child; return (exit code, stderr, seconds, peak RSS in MB)."""
    measured = tmp_path / "measured.json"
    command = [str(COUNTERPOINT), *args, "--base-url", "http://127.0.0.1:9", "--runs-dir", str(tmp_path / "runs")]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(measured), *command],
        stdin=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": TEST_KEY},
        timeout=120,
        check=True,
    )
    code, seconds, peak_mb = json.loads(measured.read_text())
    return code, done.stderr, seconds, peak_mb


def test_dev_zero_is_refused_quickly_in_bounded_memory(tmp_path: Path) -> None:
    code, stderr, seconds, peak_mb = run_measured(["run", "/dev/zero"], tmp_path)
    assert (code, stderr) == (1, OVER_DEFAULT.format(name="/dev/zero") + "\n")
    assert seconds < 20 and peak_mb < 200, (seconds, peak_mb)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


ENDLESS = "import sys\nline = b'all work and no play\\n' * 4096\nwhile True: sys.stdout.buffer.write(line)"


def test_endless_stdin_is_refused_quickly_in_bounded_memory(tmp_path: Path) -> None:
    endless = subprocess.Popen([sys.executable, "-c", ENDLESS], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        code, stderr, seconds, peak_mb = run_measured(["run", "-"], tmp_path, stdin=endless.stdout)
    finally:
        endless.stdout.close()
        endless.kill()
        endless.wait()
    assert (code, stderr) == (1, OVER_DEFAULT.format(name="<stdin>") + "\n")
    assert seconds < 20 and peak_mb < 200, (seconds, peak_mb)


def test_a_huge_file_with_truncate_is_cut_at_max_chars(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("w", encoding="utf-8") as out:
        out.write(SEED_TEXT + "\n\n")
        filler = "Filler paragraph about something else entirely.\n\n" * 1000
        for _ in range(400):  # 20 MB
            out.write(filler)
    result = cli("run", str(path), "--truncate")
    assert result.exit_code == 0, result.stderr
    brief = read_brief(result.run_dir)
    assert brief["article"]["truncated"] is True
    assert 50_000 < len((result.run_dir / "article.txt").read_text()) <= 60_000
    assert any("cut to" in note for note in brief["notes"])


def test_a_cut_inside_a_character_drops_the_character_not_the_encoding(tmp_path: Path) -> None:
    path = tmp_path / "accents.txt"
    path.write_text(("ééééé " * 5000), encoding="utf-8")  # 11 bytes a word: byte 12,004 splits an é
    article = sources.load(str(path), max_chars=3000, truncate=True)
    assert article.truncated and set(article.text) == {"é", " "}
    with pytest.raises(InputError, match="is over 12,004 bytes, more than --max-chars 3,000"):
        sources.load(str(path), max_chars=3000)


def test_an_html_file_may_be_larger_than_its_text(tmp_path: Path) -> None:
    """Markup outweighs text: a page is read up to the fetch limit, then its text is checked."""
    body = "".join(f"<p>{line}</p>" for line in SEED_TEXT.splitlines() if line)
    path = tmp_path / "page.html"
    path.write_text(
        f"<html><head><title>T</title></head><body><article>{body}</article><!-- {'x' * 300_000} --></body></html>"
    )
    article = sources.load(str(path), max_chars=60_000)
    assert "Putin" in article.text and not article.truncated


# -- Chinese and Japanese -------------------------------------------------------------------

CHINESE = (
    "我们必须立即降低城市公共交通的票价。过去十年里，票价上涨了三倍，而工资几乎没有增长。"
    "对于每天通勤的工人来说，交通费用已经占到收入的很大一部分。政府声称补贴会带来财政负担，"
    "但研究表明，更便宜的公共交通可以减少拥堵、改善空气质量，并促进地方经济。"
) * 10
JAPANESE = (
    "私たちは今すぐ公共交通の運賃を引き下げるべきだ。過去十年で運賃は三倍になったが、"
    "賃金はほとんど上がっていない。毎日通勤する労働者にとって、交通費は収入の大きな割合を占めている。"
    "政府は補助金が財政の負担になると言うが、安い公共交通は渋滞を減らし、空気をきれいにする。"
) * 10


@pytest.mark.parametrize("text", [CHINESE, JAPANESE], ids=["chinese", "japanese"])
def test_chinese_and_japanese_articles_are_long_enough(text: str) -> None:
    article = article_mod.from_text(text)
    han_and_kana = sum(1 for ch in text if ch not in "。、，")
    assert article.word_count == han_and_kana, "each Han or kana character counts as a word"
    assert article.metadata()["word_count"] == han_and_kana


@pytest.mark.parametrize("text", ["我们必须降低票价。", "運賃を下げるべきだ。"], ids=["chinese", "japanese"])
def test_a_tiny_chinese_or_japanese_text_is_still_refused(text: str) -> None:
    with pytest.raises(InputError, match=f"has only {len(text) - 1} words"):
        article_mod.from_text(text)


def test_a_chinese_headline_is_the_title_and_a_first_sentence_is_not() -> None:
    assert article_mod.from_text("公共交通应该免费\n\n" + CHINESE).title == "公共交通应该免费"
    assert article_mod.from_text("我们必须立即降低票价。\n\n" + CHINESE).title is None


def test_mixed_text_counts_spaced_words_and_han_characters() -> None:
    assert article_mod.count_words("The 东京 plan, said Tanaka: 反対です。") == 4 + 2 + 4


# -- Markdown front matter ------------------------------------------------------------------

FRONT = '---\ntitle: "Cut the tax: now"\nauthor: [Ann Other, Bo Same]\ndate: 2024-03-03\ntags: [tax]\n---\n\n'


def test_front_matter_gives_metadata_and_is_not_article_text(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "op-ed.md"
    path.write_text(FRONT + SEED_TEXT)
    result = cli("run", str(path))
    assert result.exit_code == 0, result.stderr
    brief = read_brief(result.run_dir)
    assert (brief["article"]["title"], brief["article"]["author"], brief["article"]["date"]) == (
        "Cut the tax: now",
        "Ann Other, Bo Same",
        "2024-03-03",
    )
    assert (result.run_dir / "article.txt").read_text() == article_mod.normalise(SEED_TEXT)
    assert "tags:" not in server.requests[0].body["messages"][1]["content"]


@pytest.mark.parametrize(
    "block", ["---\ntitle: [unclosed\n---\n", "---\njust a line of prose\n---\n"], ids=["malformed", "not-a-mapping"]
)
def test_a_block_that_is_not_yaml_front_matter_is_kept_as_text(block: str) -> None:
    article = article_mod.from_text(block + "\n" + SEED_TEXT)
    assert article.text.startswith(block.strip())
    assert article.title != "---"


def test_an_interrupt_before_anything_is_saved_points_at_no_run(tmp_path: Path) -> None:
    """Ctrl-C while counterpoint still waits for the article: no run exists, so no resume hint."""
    runs_dir = tmp_path / "runs"
    process = start_counterpoint(
        ["run", "-", "--runs-dir", str(runs_dir), "--base-url", "http://127.0.0.1:9/v1"], stdin=subprocess.PIPE
    )
    time.sleep(3)  # started and blocked reading stdin
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "--resume" not in stderr and stdout == ""
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_a_one_word_text_is_refused_in_the_singular() -> None:
    with pytest.raises(InputError, match="has only 1 word; counterpoint needs"):
        article_mod.from_text("Hello.")
