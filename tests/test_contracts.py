"""The file contracts: schemas are valid and strict-compatible; prompts' placeholders match the code."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline import prompts, schemas
from pipeline.engine import PROMPT_NAMES, SCHEMA_NAMES
from pipeline.errors import FAILURE_KINDS, ConfigError, UnitFailed
from pipeline.evaluate import SCHEMA_NAMES as EVAL_SCHEMAS
from pipeline.judge import PROMPT as JUDGE_PROMPT

from .conftest import ROOT

STAGE_SCHEMAS = ["claims", "rebuttal", "synthesis", "judge"]
REVIEW_SCHEMAS = ["review", "review_update"]  # review.json and a change to it: not part of a run's fingerprint
ALL_SCHEMAS = sorted({*SCHEMA_NAMES, *EVAL_SCHEMAS, *REVIEW_SCHEMAS})
ALL_PROMPTS = (*PROMPT_NAMES, JUDGE_PROMPT)


@pytest.mark.parametrize("name", ALL_SCHEMAS)
def test_every_schema_passes_check_schema(name: str) -> None:
    Draft202012Validator.check_schema(schemas.load(name))


def test_every_schema_file_is_known() -> None:
    on_disk = {p.name.removesuffix(".schema.json") for p in (ROOT / "schemas").glob("*.schema.json")}
    assert on_disk == set(ALL_SCHEMAS)


def test_the_brief_schema_lists_exactly_the_failure_kinds() -> None:
    kind = schemas.load("brief")["$defs"]["failure"]["properties"]["kind"]
    assert kind["enum"] == list(FAILURE_KINDS)


def test_every_failure_kind_the_code_names_is_a_known_one() -> None:
    """Kinds are written as literals where units fail (`UnitFailed("transport", ...)`, the re-ask
    loop's `_Invalid("empty", ...)`, the engine's stop kinds); each must be in FAILURE_KINDS."""
    source = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "pipeline").rglob("*.py"))
    named = set(re.findall(r'(?:UnitFailed|_Invalid)\("(\w+)"', source))
    named |= set(re.findall(r'kind, why = \(?"(\w+)"', source))
    assert {"transport", "budget", "empty", "interrupted", "skipped"} <= named  # the scan finds them
    assert named <= set(FAILURE_KINDS)
    with pytest.raises(ValueError, match="unknown failure kind 'timeout'"):
        UnitFailed("timeout", "a kind the brief could not record")


def walk(node: Any, path: str = "$"):
    if isinstance(node, dict):
        yield path, node
        for key in ("properties",):
            for name, child in node.get(key, {}).items():
                yield from walk(child, f"{path}.{name}")
        if "items" in node:
            yield from walk(node["items"], f"{path}[]")


@pytest.mark.parametrize("name", STAGE_SCHEMAS)
def test_stage_schemas_are_in_the_strict_subset_and_bounded(name: str) -> None:
    """What providers' strict mode needs, and what stops a small model looping to max_tokens."""
    for path, node in walk(schemas.load(name)):
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if "object" in types:
            assert node.get("additionalProperties") is False, path
            assert set(node["required"]) == set(node["properties"]), f"{path}: every property required"
        if "string" in types and "enum" not in node and "pattern" not in node:
            assert "maxLength" in node, f"{path}: unbounded string"
        if "array" in types:
            assert "maxItems" in node, f"{path}: unbounded array"
        assert "$ref" not in node and "oneOf" not in node, path


def test_the_judge_schema_fits_the_rebuttals_and_the_data_it_judges() -> None:
    from pipeline.evaldata import MAX_CLUSTERS

    judge = schemas.load("judge")["properties"]
    assert judge["perspectives"]["maxItems"] == MAX_CLUSTERS
    assert judge["rebuttals"]["maxItems"] == schemas.load("rebuttal")["properties"]["rebuttals"]["maxItems"]
    assert judge["perspectives"]["items"]["properties"]["covered_by"]["maxItems"] == judge["rebuttals"]["maxItems"]


def test_validate_reports_paths_and_messages() -> None:
    problems = schemas.validate("claims", {"thesis": "", "claims": [{"id": "X1"}], "extra": 1})
    assert "$: Additional properties are not allowed ('extra' was unexpected)" in problems
    assert any(p.startswith("$.claims[0]: 'text' is a required property") for p in problems)
    assert any(p.startswith("$.claims[0].id: 'X1' does not match") for p in problems)


def test_every_prompt_file_is_known() -> None:
    assert {p.stem for p in (ROOT / "prompts").glob("*.md")} == set(ALL_PROMPTS)


# What the code supplies to each prompt (the callers in stages.py and llm.py).
SUPPLIED = {
    "system": {"nonce", "language"},
    "article": {"nonce", "article", "title", "author", "date"},
    "extract_claims": {"max_claims"},
    "rebut_claim": {"claim_id", "claim_type", "centrality", "claim_text", "claim_quote"},
    "synthesize": {"thesis", "claims_digest", "date", "today", "failed_claims"},
    "repair": {"errors"},
    "truncated": set(),
    "schema_in_prompt": {"schema"},
    "judge": {"nonce", "claim", "perspectives", "rebuttals"},  # judge.render
}


@pytest.mark.parametrize("name", ALL_PROMPTS)
def test_prompt_placeholders_match_what_the_code_supplies(name: str) -> None:
    assert prompts.placeholders(name) == SUPPLIED[name]


def test_supplied_variables_are_what_the_pipeline_renders(monkeypatch, seed_script) -> None:
    """SUPPLIED above is checked against real calls: run the pipeline and record every render."""
    from pipeline import generate_brief
    from pipeline.llm import Reply
    from pipeline.testing import FakeLLM, scripted_handler

    rendered: dict[str, set[str]] = {}
    real_render = prompts.render

    def recording_render(name: str, **variables: object) -> str:
        rendered[name] = set(variables)
        return real_render(name, **variables)

    monkeypatch.setattr(prompts, "render", recording_render)
    answer = scripted_handler(seed_script)
    llm = FakeLLM(responder=answer, response_format="prompt")
    llm.enqueue("not json", Reply(content='{"thesis": "cut', finish_reason="length"))  # repair, then truncated
    brief = generate_brief((ROOT / "seeds" / "putin-assad-syria.txt").read_text(), llm=llm)
    assert brief.status == "complete"
    assert rendered == {name: names for name, names in SUPPLIED.items() if name != JUDGE_PROMPT}  # a brief's own


def test_render_refuses_missing_and_unexpected_variables() -> None:
    with pytest.raises(ConfigError, match=r"missing variables \['max_claims'\]"):
        prompts.render("extract_claims")
    with pytest.raises(ConfigError, match=r"unexpected \['bogus'\]"):
        prompts.render("truncated", bogus=1)


def test_prompts_use_only_template_placeholders() -> None:
    """A stray '$' would be a placeholder by accident; Template would raise on it at render time."""
    for path in (ROOT / "prompts").glob("*.md"):
        template = string.Template(path.read_text())
        assert template.is_valid(), path


def test_wheel_ships_prompts_schemas_and_templates(tmp_path: Path) -> None:
    """prompts/, schemas/ and templates/ are force-included in the wheel and resolved from there."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("counterpoint-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ALL_PROMPTS:
        assert f"pipeline/_resources/prompts/{name}.md" in names
    for name in ALL_SCHEMAS:
        assert f"pipeline/_resources/schemas/{name}.schema.json" in names
    assert not [name for name in names if "perspectrum" in name]  # eval data: in the repo, under its own licence
    schema = json.loads(zipfile.ZipFile(wheel).read("pipeline/_resources/schemas/claims.schema.json"))
    assert schema == schemas.load("claims")
    from pipeline.brief.html import TEMPLATE

    shipped = zipfile.ZipFile(wheel).read(f"pipeline/_resources/templates/{TEMPLATE}").decode("utf-8")
    assert shipped == (ROOT / "templates" / TEMPLATE).read_text(encoding="utf-8")
