"""The Python API: `from pipeline import generate_brief`, and the README's example, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline import Brief, generate_brief
from pipeline.testing import FakeLLM, scripted_handler

from .conftest import ROOT, SEED, read_brief, read_manifest


def readme_section(title: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def test_the_readme_example_runs_as_written() -> None:
    """The example that tests an integration against FakeOpenAIServer, executed verbatim."""
    blocks = re.findall(r"```python\n(.*?)```", readme_section("Python API"), re.DOTALL)
    (example,) = [block for block in blocks if "FakeOpenAIServer(" in block]
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(example, "README.md (Python API example)", "exec"), namespace)
    brief = namespace["brief"]
    assert isinstance(brief, Brief) and brief.status == "complete"
    assert brief.run_dir is None, "without runs_dir nothing is written"


def test_generate_brief_with_an_injected_fake_llm_records_a_run(seed_script, tmp_path: Path) -> None:
    answer = scripted_handler(seed_script)
    llm = FakeLLM(responder=answer)
    brief = generate_brief(SEED.read_text(encoding="utf-8"), llm=llm, runs_dir=tmp_path / "runs", max_claims=8)
    assert brief.status == "complete" and len(brief.claims) == 8
    assert next(entry["unit"] for entry in llm.history) == "extract" and len(llm.history) == 10
    assert brief.run_dir is not None and brief.run_dir.parent == tmp_path / "runs"
    for name in ("brief.json", "brief.md", "brief.html", "manifest.json", "article.txt"):
        assert (brief.run_dir / name).is_file(), name
    assert read_brief(brief.run_dir) == brief.data
    assert (brief.run_dir / "brief.html").read_text(encoding="utf-8") == brief.to_html()


def test_generate_brief_reports_a_failed_unit_in_the_brief_not_as_an_exception(seed_script) -> None:
    answer = scripted_handler(seed_script)
    llm = FakeLLM(responder=lambda unit, body: "not json" if unit == "C2" else answer(unit, body))
    brief = generate_brief(SEED.read_text(encoding="utf-8"), llm=llm, reasks=1)
    assert brief.status == "partial"
    failed = {claim["id"]: claim["error"]["kind"] for claim in brief.claims if claim["status"] != "ok"}
    assert failed == {"C2": "invalid"}
    assert [entry["unit"] for entry in llm.history].count("C2") == 2, "one re-ask with reasks=1"


def test_a_bug_mid_run_leaves_the_record_failed_not_running(seed_script, tmp_path: Path) -> None:
    """An exception no stage expects (here one a fake raises) propagates, and the manifest no longer
    claims a run in progress: `latest` and `runs` must not take it for one."""
    llm = FakeLLM(seed_script["extract"], LookupError("a bug in a model adapter"))
    with pytest.raises(LookupError):
        generate_brief(SEED.read_text(encoding="utf-8"), llm=llm, runs_dir=tmp_path / "runs")
    (manifest,) = (tmp_path / "runs").glob("*/manifest.json")
    assert read_manifest(manifest.parent)["status"] == "failed"
