"""The end-to-end path: a brief for the seed article against the fake server."""

from __future__ import annotations

from pipeline import schemas

from .conftest import SEED, read_brief


def test_run_writes_a_complete_valid_brief(cli, server) -> None:
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    run_dir = result.run_dir
    for name in ("brief.json", "brief.md", "manifest.json", "calls.jsonl", "article.txt"):
        assert (run_dir / name).is_file(), name
    brief = read_brief(run_dir)
    assert schemas.validate("brief", brief) == []
    assert brief["status"] == "complete"
    article = (run_dir / "article.txt").read_text()
    for claim in brief["claims"]:
        assert article[claim["start"] : claim["end"]] == claim["quote"]
    assert len(server.requests) == 10
