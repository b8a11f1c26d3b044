"""Bad and unusual input: a one-line error with exit 1 before any model call, or a correct brief."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline import article

from .conftest import SEED, one_error_line, read_brief, read_manifest, run_cli

SEED_TEXT = SEED.read_text(encoding="utf-8")


def assert_one_line_error(result, server, *fragments: str) -> None:
    assert result.exit_code == 1
    line = one_error_line(result)
    for fragment in fragments:
        assert fragment in line
    assert result.stdout == ""
    assert server.requests == [], "no model call for bad input"


def test_missing_file(cli, server, tmp_path: Path) -> None:
    assert_one_line_error(cli("run", str(tmp_path / "nope.txt")), server, "no such file", "check the path")


def test_directory(cli, server, tmp_path: Path) -> None:
    assert_one_line_error(cli("run", str(tmp_path)), server, "is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text(SEED_TEXT)
    path.chmod(0)
    assert_one_line_error(cli("run", str(path)), server, "permission denied")


def test_unreadable_file_as_root(cli, server, tmp_path: Path, monkeypatch) -> None:
    """Root ignores permission bits, so the EACCES that a user would get is raised for this one file."""
    path = tmp_path / "secret.txt"
    path.write_text(SEED_TEXT)
    real_open = Path.open

    def open_(self: Path, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    assert_one_line_error(cli("run", str(path)), server, "permission denied")


def test_other_os_read_failure(cli, server, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(cli("run", str(blocker / "article.txt")), server, "cannot read", "Not a directory")


@pytest.mark.parametrize("content", ["", "   \n\t\n  "], ids=["empty", "whitespace"])
def test_empty_or_whitespace(cli, server, tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.txt"
    path.write_text(content)
    assert_one_line_error(cli("run", str(path)), server, "is empty")


@pytest.mark.parametrize(
    "data,what",
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "PNG image"),
        (b"hello\x00world\x00" * 50, "NUL bytes"),
        (b"%PDF-1.7\n" + b"x" * 400, "is not a readable PDF"),  # routed to the PDF reader
    ],
)
def test_binary_data(cli, server, tmp_path: Path, data: bytes, what: str) -> None:
    path = tmp_path / "article.bin"
    path.write_bytes(data)
    assert_one_line_error(cli("run", str(path)), server, what)


def test_cp1252_file_is_decoded(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "cp1252.txt"
    path.write_bytes(SEED_TEXT.encode("cp1252"))
    result = cli("run", str(path))
    assert result.exit_code == 0, result.stderr
    assert (result.run_dir / "article.txt").read_text() == article.normalise(SEED_TEXT)


def test_undecodable_bytes_are_a_clear_error(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"Some words " * 20 + b"\x81\x8d\x8f\x90\x9d")  # invalid in UTF-8 and cp1252
    assert_one_line_error(cli("run", str(path)), server, "neither UTF-8 nor Windows-1252", "--encoding")


def test_explicit_encoding(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(SEED_TEXT.replace("’", "'").encode("latin-1", errors="replace"))
    result = cli("run", str(path), "--encoding", "latin-1")
    assert result.exit_code == 0, result.stderr


def test_unknown_encoding(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(SEED_TEXT)
    assert_one_line_error(cli("run", str(path), "--encoding", "klingon"), server, "unknown encoding")


@pytest.mark.parametrize("codec", ["utf-16", "utf-8-sig"])
def test_files_with_a_bom(cli, server, tmp_path: Path, codec: str) -> None:
    path = tmp_path / f"{codec}.txt"
    path.write_bytes(SEED_TEXT.replace("\n", "\r\n").encode(codec))
    result = cli("run", str(path))
    assert result.exit_code == 0, result.stderr
    stored = (result.run_dir / "article.txt").read_text()
    assert stored == article.normalise(SEED_TEXT) and "\r" not in stored and "\ufeff" not in stored


def test_stdin(cli, server) -> None:
    result = cli("run", "-", input=SEED_TEXT)
    assert result.exit_code == 0, result.stderr
    assert read_manifest(result.run_dir)["article"]["source"] == "<stdin>"


def test_over_max_chars_is_refused_or_truncated(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text(SEED_TEXT + "\n\n" + "Filler paragraph about something else entirely. " * 100)
    assert_one_line_error(cli("run", str(path), "--max-chars", "3000"), server, "over the limit of 3,000", "--truncate")
    result = cli("run", str(path), "--max-chars", "3000", "--truncate")
    assert result.exit_code == 0, result.stderr
    brief = read_brief(result.run_dir)
    assert brief["article"]["truncated"] is True
    assert len((result.run_dir / "article.txt").read_text()) <= 3000
    assert any("cut to" in note for note in brief["notes"])


def test_default_max_chars_is_60000(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    path.write_text("word " * 13_000)
    assert_one_line_error(cli("run", str(path)), server, "over the limit of 60,000")


def test_too_short_for_a_claim(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("Taxes are too high. We should cut them now.")
    assert_one_line_error(cli("run", str(path)), server, "only 9 words", "at least 40")


def test_unwritable_runs_dir_fails_before_any_model_call(cli, server, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = run_cli("run", str(SEED), "--base-url", server.base_url, "--runs-dir", str(blocker / "runs"))
    assert result.exit_code == 1
    assert "cannot write to the runs directory" in result.stderr and "--runs-dir" in result.stderr
    assert server.requests == []


def test_no_key_and_no_base_url(cli, server) -> None:
    result = cli("run", str(SEED), endpoint=False, key=None)
    assert_one_line_error(result, server, "OPENAI_API_KEY", "--base-url")


def test_usage_errors_exit_2(cli, server) -> None:
    assert cli("run").exit_code == 2
    assert cli("run", str(SEED), "--max-claims", "0").exit_code == 2
    assert cli("run", str(SEED), "--response-format", "xml").exit_code == 2


NON_ENGLISH = """La réforme des retraites est une erreur historique

Par Jeanne Dupont

Le gouvernement prétend que la réforme sauvera le système. C'est faux. Les déficits annoncés sont exagérés, et la réforme frappera d'abord ceux qui ont commencé à travailler jeunes. Il faut taxer le capital plutôt que de repousser l'âge de départ. Les pays voisins qui ont choisi cette voie s'en portent mieux, et personne ne les accuse d'irresponsabilité budgétaire."""


def test_non_english_article_asks_for_the_article_language(cli, server, tmp_path: Path) -> None:
    path = tmp_path / "fr.md"
    path.write_text(NON_ENGLISH)
    claim = {
        "id": "C1",
        "text": "La réforme ne sauvera pas le système.",
        "quote": "C'est faux.",
        "type": "evaluative",
        "centrality": 5,
        "check_worthy": True,
    }
    server.script("extract", {"thesis": "La réforme est une erreur.", "claims": [claim]})
    server.script(
        "synthesize",
        {
            "counter_thesis": "La réforme répond à un déséquilibre réel.",
            "strongest_rebuttals": ["C1-R1"],
            "rhetoric": [],
            "open_questions": [],
            "caveats": [],
        },
    )
    result = cli("run", str(path))
    assert result.exit_code == 0, result.stderr
    system = server.requests[0].body["messages"][0]["content"]
    assert "Write in the same language as the article." in system
    brief = read_brief(result.run_dir)
    assert brief["article"]["title"] == "La réforme des retraites est une erreur historique"
    assert brief["article"]["author"] == "Jeanne Dupont"
    assert brief["thesis"] == "La réforme est une erreur."

    server.requests.clear()
    result = cli("run", str(path), "--language", "English")
    assert "Write in English." in server.requests[0].body["messages"][0]["content"]
