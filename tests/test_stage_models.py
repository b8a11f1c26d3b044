"""Per-stage models: --extract-model, --rebut-model, --synthesis-model (default --model), through
the real SDK to the fake server, which records the model each request names."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.api import generate_brief
from pipeline.pricing import estimate
from pipeline.testing import FakeOpenAIServer
from pipeline.usage import Usage

from .conftest import SEED, TEST_KEY, read_brief, read_manifest, run_partially


def models_by_unit(server: FakeOpenAIServer) -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    for request in server.requests:
        named.setdefault(request.unit, set()).add(request.body["model"])
    return named


def test_each_stage_asks_its_own_model_and_is_priced_at_its_rates(cli, server: FakeOpenAIServer) -> None:
    result = cli("run", str(SEED), "--model", "gpt-4.1-mini", "--rebut-model", "gpt-4o", "--synthesis-model", "gpt-5")
    assert result.exit_code == 0, result.stderr
    named = models_by_unit(server)
    assert named.pop("extract") == {"gpt-4.1-mini"}
    assert named.pop("synthesize") == {"gpt-5"}
    assert set(named) == {f"C{n}" for n in range(1, 9)} and all(m == {"gpt-4o"} for m in named.values())

    manifest = read_manifest(result.run_dir)
    assert manifest["settings"]["rebut_model"] == "gpt-4o" and manifest["settings"]["extract_model"] is None
    assert manifest["models"] == {"extract": "gpt-4.1-mini", "rebut": "gpt-4o", "synthesize": "gpt-5"}
    by_stage = manifest["usage"]["by_stage"]
    assert set(manifest["usage"]["by_model"]) == {"gpt-4.1-mini", "gpt-4o", "gpt-5"}
    assert manifest["usage"]["by_model"]["gpt-4o"] == by_stage["rebut"]
    expected = 0.0
    for stage, model in manifest["models"].items():
        counts = by_stage[stage]
        usd, _ = estimate(model, Usage(counts["prompt_tokens"], counts["completion_tokens"], counts["cached_tokens"]))
        assert manifest["cost"]["by_stage"][stage] == {"model": model, "usd": usd, "status": "priced"}
        expected += usd or 0.0
    assert manifest["cost"]["usd"] == round(expected, 6) == read_brief(result.run_dir)["run"]["cost_usd"]
    assert read_brief(result.run_dir)["run"]["models"] == manifest["models"]
    calls = [json.loads(line) for line in (result.run_dir / "calls.jsonl").read_text().splitlines()]
    assert {(c["stage"], c["model"]) for c in calls} == {
        ("extract", "gpt-4.1-mini"),
        ("rebut", "gpt-4o"),
        ("synthesize", "gpt-5"),
    }
    listing = cli("runs")
    assert "gpt-4.1-mini, rebut: gpt-4o, synthesize: gpt-5" in listing.stdout


def test_an_unpriced_stage_model_makes_the_cost_unpriced(cli) -> None:
    result = cli("run", str(SEED), "--model", "gpt-4.1-mini", "--extract-model", "my-local-llm")
    assert result.exit_code == 0, result.stderr
    manifest = read_manifest(result.run_dir)
    assert manifest["cost"]["usd"] is None and manifest["cost"]["status"] == "unpriced"
    assert manifest["cost"]["by_stage"]["extract"]["status"] == "unpriced"
    assert manifest["cost"]["by_stage"]["rebut"]["status"] == "priced"


def test_resume_takes_the_recorded_stage_models(cli, server: FakeOpenAIServer) -> None:
    first = run_partially(cli, server, "--rebut-model", "rebutter")
    server.requests.clear()
    result = cli("run", "--resume", first.run_dir.name)
    assert result.exit_code == 0, result.stderr
    assert models_by_unit(server) == {"C3": {"rebutter"}, "synthesize": {"gpt-4.1-mini"}}
    assert read_manifest(result.run_dir)["settings"]["rebut_model"] == "rebutter"


def test_a_changed_stage_model_recomputes_that_stage_and_reuses_the_rest(cli, server: FakeOpenAIServer) -> None:
    first = cli("run", str(SEED), "--no-cache")
    assert first.exit_code == 0, first.stderr
    refused = cli("run", "--resume", first.run_dir.name, "--rebut-model", "other", "--no-cache")
    assert refused.exit_code == 1
    assert "settings.rebut_model" in refused.stderr and "--force" in refused.stderr
    server.requests.clear()
    forced = cli("run", "--resume", first.run_dir.name, "--rebut-model", "other", "--force", "--no-cache")
    assert forced.exit_code == 0, forced.stderr
    named = models_by_unit(server)
    assert "extract" not in named, "the extraction did not change, so it is reused"
    assert {unit for unit, models in named.items() if models == {"other"}} == {f"C{n}" for n in range(1, 9)}
    # The synthesis is keyed on the rebuttals' text, which this scripted server answers alike for any
    # model: unchanged inputs, so it is reused too.
    assert "synthesize" not in named


def test_the_python_api_takes_stage_models(server: FakeOpenAIServer, tmp_path: Path) -> None:
    brief = generate_brief(
        SEED.read_text(),
        model="base",
        extract_model="extractor",
        synthesis_model="synth",
        base_url=server.base_url,
        api_key=TEST_KEY,
        cache_dir=tmp_path / "cache",
    )
    assert brief.to_dict()["run"]["models"] == {"extract": "extractor", "rebut": "base", "synthesize": "synth"}
    named = models_by_unit(server)
    assert named["extract"] == {"extractor"} and named["C1"] == {"base"} and named["synthesize"] == {"synth"}
    entries = [json.loads(p.read_text()) for p in (tmp_path / "cache").rglob("*.json")]
    assert {entry["model"] for entry in entries} == {"extractor", "base", "synth"}


def test_stage_models_do_not_go_with_local(cli) -> None:
    result = cli("run", str(SEED), "--local", "--rebut-model", "x")
    assert result.exit_code == 2
    assert "--rebut-model does not go with --local" in result.stderr
