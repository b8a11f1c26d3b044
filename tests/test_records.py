"""The record on disk and what reaches the terminal: damaged records, escape sequences, resume hints."""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from pipeline.testing import FakeResponse

from .conftest import SEED, one_error_line, read_brief, read_manifest, run_partially

DEEP = "[" * 100_000
TITLE_ATTACK = "Title \x1b]0;pwned\x07 wipe\x1b[2J \u202eevil"
MODEL_TEXT_ATTACK = "steelman \x1b]0;pwned\x07 then \x1b[2J cleared \x9b31m"


def no_escapes(text: str) -> None:
    for bad in ("\x1b", "\x07", "\x9b", "\u202e", "pwned\x07"):
        assert bad not in text, repr(text)


@pytest.fixture
def partial_run(cli, server) -> Path:
    """A run with C3 failed on 503s: resumable, with units, calls.jsonl and a manifest."""
    return run_partially(cli, server, "--no-cache").run_dir


def resume(cli, run_dir: Path) -> Any:
    return cli("run", "--resume", run_dir.name, "--no-cache")


# -- item 14: damaged records ----------------------------------------------------------------


def test_one_deeply_nested_manifest_does_not_take_down_the_runs_listing(cli, partial_run: Path, runs_dir: Path) -> None:
    broken = runs_dir / "20991231T000000Z-deep-aaaaaa"
    broken.mkdir()
    (broken / "manifest.json").write_text(DEEP)
    typed = runs_dir / "20991230T000000Z-typed-bbbbbb"
    typed.mkdir()
    (typed / "manifest.json").write_text(
        json.dumps(
            {
                "status": ["x"],
                "model": 7,
                "created": 5,
                "article": {"title": {"a": 1}},
                "summary": {"claims": "many", "tokens": "lots", "cost_usd": "free", "cost_status": 3},
            }
        )
    )

    table = cli("runs", "--runs-dir", str(runs_dir))
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 4
    assert lines[1].split()[:2] == [broken.name, "unknown"] and lines[2].split()[:2] == [typed.name, "unknown"]
    assert lines[3].split()[:2] == [partial_run.name, "partial"]
    rows = json.loads(cli("runs", "--runs-dir", str(runs_dir), "--json").stdout)
    assert rows[1]["tokens"] is None and rows[1]["cost_usd"] is None and rows[2]["status"] == "partial"


@pytest.mark.parametrize(
    "content,why",
    [
        (DEEP, "as JSON (nested too deeply)"),
        ("[1, 2]", "is damaged (it is not a JSON object)"),
        ('{"fingerprint": [], "article": {}, "settings": {}}', "is damaged ('fingerprint' is not a JSON object)"),
        ('{"article": "x"}', "is damaged ('article' is not a JSON object)"),
    ],
)
def test_resume_of_a_damaged_manifest_is_one_line_naming_it(
    cli, server, partial_run: Path, content: str, why: str
) -> None:
    (partial_run / "manifest.json").write_text(content)
    seen = len(server.requests)
    result = resume(cli, partial_run)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert str(partial_run / "manifest.json") in line and why in line
    assert len(server.requests) == seen


@pytest.mark.parametrize(
    "name,value",
    [
        ("max_claims", "lots"),
        ("reasks", None),
        ("temperature", "hot"),
        ("max_claims", [1]),
        ("reasks", {"a": 1}),
        ("max_claims", 1e999),
    ],
)
def test_resume_of_a_wrongly_typed_recorded_setting_is_one_line_naming_it(
    cli, server, partial_run: Path, name: str, value: Any
) -> None:
    manifest = read_manifest(partial_run)
    manifest["settings"][name] = value
    (partial_run / "manifest.json").write_text(json.dumps(manifest))
    seen = len(server.requests)
    result = resume(cli, partial_run)
    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"error: {partial_run / 'manifest.json'} is damaged (settings.{name} is "
        f"{value!r}); pass --{name.replace('_', '-')} to resume anyway, or start a "
        "new run"
    )
    assert len(server.requests) == seen


def test_resume_drops_a_wrongly_typed_article_field(cli, server, partial_run: Path) -> None:
    manifest = read_manifest(partial_run)
    manifest["article"].update(title=5, source=["x"], truncated="yes")
    (partial_run / "manifest.json").write_text(json.dumps(manifest))
    result = resume(cli, partial_run)
    assert result.exit_code == 0, result.stderr
    assert read_brief(partial_run)["article"]["title"] is None


@pytest.mark.parametrize("content", [DEEP, "[]", '{"inputs": 5, "output": "not a rebuttal"}', "\xff\xfe"])
def test_resume_redoes_a_damaged_unit(cli, server, partial_run: Path, content: str) -> None:
    (partial_run / "units" / "C1.json").write_bytes(content.encode("latin-1"))
    seen = len(server.requests)
    result = resume(cli, partial_run)
    assert result.exit_code == 0, result.stderr
    assert sorted(r.unit for r in server.requests[seen:]) == ["C1", "C3", "synthesize"]
    assert json.loads((partial_run / "units" / "C1.json").read_text())["unit"] == "C1"


def test_resume_skips_damaged_or_wrongly_typed_lines_of_the_calls_log(cli, server, partial_run: Path) -> None:
    calls = partial_run / "calls.jsonl"
    good = calls.read_text().splitlines()
    damaged = [
        DEEP,
        "[]",
        "17",
        json.dumps({"stage": 1}),
        json.dumps({**json.loads(good[0]), "usage": "lots"}),
        '{"stage": "rebut", "unit": "C9", "cut short',
    ]
    calls.write_text("\n".join(good + damaged))  # the last line has no newline, as after a kill
    result = resume(cli, partial_run)
    assert result.exit_code == 0, result.stderr
    lines = calls.read_text().splitlines()
    assert lines[: len(good) + len(damaged)] == good + damaged  # the record itself is left as it was
    assert all(json.loads(line)["unit"] in ("C3", "synthesize") for line in lines[len(good) + len(damaged) :])
    manifest = read_manifest(partial_run)
    assert manifest["status"] == "complete" and manifest["usage"]["total"]["calls"] == len(lines) - len(damaged)


@pytest.mark.parametrize(
    "damage,why",
    [
        (lambda run: (run / "article.txt").unlink(), "(No such file or directory)"),
        (lambda run: (run / "article.txt").write_bytes(b"caf\xe9 au lait"), "(not UTF-8 text: byte 0xe9 at offset 3)"),
    ],
)
def test_resume_without_a_readable_article_is_one_line_naming_it(
    cli, server, partial_run: Path, damage: Any, why: str
) -> None:
    damage(partial_run)
    seen = len(server.requests)
    result = resume(cli, partial_run)
    assert result.exit_code == 1
    assert one_error_line(result) == f"error: cannot read {partial_run / 'article.txt'} {why}"
    assert len(server.requests) == seen


def test_resume_with_units_replaced_by_a_file_is_one_line_naming_it(cli, server, partial_run: Path) -> None:
    import shutil

    shutil.rmtree(partial_run / "units")
    (partial_run / "units").write_text("not a folder")
    seen = len(server.requests)
    result = resume(cli, partial_run)
    assert result.exit_code == 1
    assert one_error_line(result) == f"error: {partial_run / 'units'} is not a folder; move it aside, then resume again"
    assert len(server.requests) == seen


def test_validate_a_deeply_nested_file_is_one_line(cli, tmp_path: Path) -> None:
    target = tmp_path / "brief.json"
    target.write_text(DEEP)
    result = cli("validate", str(target))
    assert result.exit_code == 1 and result.stdout == ""
    assert one_error_line(result) == f"error: cannot read {target} as JSON (nested too deeply)"


def test_validate_accepts_a_brief_saved_with_a_byte_order_mark(cli, partial_run: Path) -> None:
    brief = partial_run / "brief.json"
    brief.write_bytes(b"\xef\xbb\xbf" + brief.read_bytes())
    result = cli("validate", str(partial_run))
    assert result.exit_code == 0, result.stderr
    assert "schema, ids and quotes" in result.stderr


# -- item 15: terminal escapes ---------------------------------------------------------------


def test_escape_sequences_from_the_model_and_the_title_never_reach_the_terminal(
    cli, server, seed_script, runs_dir: Path, tmp_path: Path
) -> None:
    rebuttal = copy.deepcopy(seed_script["rebuttals"]["C1"])
    rebuttal["steelman"] = MODEL_TEXT_ATTACK
    server.script("C1", FakeResponse(content=rebuttal))
    article = tmp_path / "article.txt"
    article.write_text(TITLE_ATTACK + "\n\n" + SEED.read_text(encoding="utf-8").split("\n", 1)[1])
    run = cli("run", str(article), "--no-cache")
    assert run.exit_code == 0, run.stderr

    stored = read_brief(run.run_dir)
    assert stored["claims"][0]["steelman"] == MODEL_TEXT_ATTACK  # the record keeps the text as it came
    assert stored["article"]["title"] == TITLE_ATTACK
    assert MODEL_TEXT_ATTACK in (run.run_dir / "brief.md").read_text()
    for fmt in ("md", "html", "json"):
        shown = cli("show", run.run_dir.name, "--runs-dir", str(runs_dir), "--format", fmt)
        assert shown.exit_code == 0, shown.stderr
        no_escapes(shown.stdout)
        assert "steelman ]0;pwned" not in shown.stdout and "wipe" in shown.stdout
    shown_json = cli("show", run.run_dir.name, "--runs-dir", str(runs_dir), "--format", "json").stdout
    assert json.loads(shown_json) == stored  # escaped, not changed
    md = cli("show", run.run_dir.name, "--runs-dir", str(runs_dir)).stdout
    assert "steelman  then  cleared" in md
    for args in (("runs",), ("runs", "--json")):
        listed = cli(*args, "--runs-dir", str(runs_dir))
        no_escapes(listed.stdout)
        assert "Title  wipe evil" in listed.stdout or args[-1] == "--json"
    assert json.loads(cli("runs", "--runs-dir", str(runs_dir), "--json").stdout)[0]["title"] == TITLE_ATTACK


def test_error_lines_carry_no_escape_sequences(cli, tmp_path: Path) -> None:
    result = cli("show", "latest", "--runs-dir", str(tmp_path / "no\x1b]0;pwned\x07runs\nhere"))
    assert result.exit_code == 1
    no_escapes(one_error_line(result))


# -- item 20c: the runs table ----------------------------------------------------------------


def test_a_newline_or_control_character_in_model_cannot_break_the_runs_table(cli, runs_dir: Path) -> None:
    weird = "fake\nmodel\r\x1b[2J\tx"
    run = cli("run", str(SEED), "--model", weird, "--no-cache")
    assert run.exit_code == 0, run.stderr
    no_escapes(run.stderr)  # the summary names the (unpriced) model
    assert "unpriced (fake model x is not in the price table)" in run.stderr
    assert read_manifest(run.run_dir)["model"] == weird
    table = cli("runs", "--runs-dir", str(runs_dir))
    lines = table.stdout.splitlines()
    assert len(lines) == 2, table.stdout
    no_escapes(table.stdout)
    cells = lines[1].split()
    assert cells[0] == run.run_dir.name and cells[1] == "complete"
    model_at = lines[0].index("MODEL")
    assert lines[1][model_at:].startswith("fake model x ")


# -- item 17: resume hints and validate ------------------------------------------------------


def test_show_of_an_unfinished_run_gives_a_runnable_resume_command(
    cli, server, partial_run: Path, runs_dir: Path
) -> None:
    (partial_run / "brief.md").unlink()
    result = cli("show", partial_run.name, "--runs-dir", str(runs_dir))
    assert result.exit_code == 1
    hint = one_error_line(result).split("finish it with '")[1].split("'")[0]
    assert shlex.split(hint) == ["counterpoint", "run", "--resume", partial_run.name, "--runs-dir", str(runs_dir)]
    finished = cli(*shlex.split(hint)[1:], "--no-cache")
    assert finished.exit_code == 0, finished.stderr
    assert finished.run_dir == partial_run and (partial_run / "brief.md").is_file()


def test_an_interrupted_brief_names_a_runnable_resume_command(cli, server, runs_dir: Path) -> None:
    import asyncio

    from pipeline import api, sources
    from pipeline.engine import Settings
    from pipeline.testing import FakeLLM

    work = api.run_brief(
        sources.load(str(SEED)), Settings(model="fake-model"), FakeLLM(asyncio.CancelledError()), runs_dir=runs_dir
    )
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(work)
    (run_dir,) = runs_dir.iterdir()
    command = f"counterpoint run --resume {run_dir.name} --runs-dir {runs_dir}"
    assert f"finish it with '{command}'" in (run_dir / "brief.md").read_text()
    assert f"finish it with &#39;{command}&#39;" in (run_dir / "brief.html").read_text()
    finished = cli(*shlex.split(command)[1:], "--no-cache")
    assert finished.exit_code == 0, finished.stderr
    assert finished.run_dir == run_dir and server.requests[0].unit == "extract"


def test_validate_takes_latest_an_id_or_a_prefix_and_prints_json(cli, partial_run: Path, runs_dir: Path) -> None:
    for ref in ("latest", partial_run.name, partial_run.name[:18]):
        result = cli("validate", ref, "--runs-dir", str(runs_dir))
        assert result.exit_code == 0, result.stderr
        assert result.stderr == f"ok: {partial_run / 'brief.json'} (schema, ids and quotes; verification checks)\n"
    brief = read_brief(partial_run)
    brief["claims"][0]["centrality"] = 9
    (partial_run / "brief.json").write_text(json.dumps(brief))
    result = cli("validate", "latest", "--runs-dir", str(runs_dir), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["brief"] == str(partial_run / "brief.json")
    assert len(report["problems"]) == 1 and report["problems"][0].startswith("$.claims[0].centrality: 9")
    assert one_error_line(result) == f"error: 1 problem(s) in {partial_run / 'brief.json'}"
    unknown = cli("validate", "nope", "--runs-dir", str(runs_dir))
    assert unknown.exit_code == 1 and one_error_line(unknown).startswith("error: no run 'nope'")


def test_the_resume_hint_of_a_run_found_by_a_path_that_is_no_id_is_that_path(tmp_path: Path) -> None:
    from pipeline.runs import RunDir, resume_command

    renamed = tmp_path / "my run (copy)"
    assert resume_command(RunDir(renamed)) == f"counterpoint run --resume '{renamed}'"
    assert resume_command(RunDir(tmp_path / "20261129T070042Z-x-01bbdf")) == (
        f"counterpoint run --resume 20261129T070042Z-x-01bbdf --runs-dir {tmp_path}"
    )
