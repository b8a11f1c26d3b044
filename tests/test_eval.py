"""`counterpoint eval`: trusting the yardstick. A scripted judge that answers by string match must
give coverage 1.0 when the gold paraphrases are the rebuttals and 0.0 for unrelated text; failures
are counted, never scored 0; resume asks nothing twice; --compare's figures are checked by hand.
Everything goes through the real openai SDK to FakeOpenAIServer on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from statistics import fmean
from typing import Any

import pytest

from pipeline import evalreport, prompts
from pipeline.judge import SCORES, Presentation
from pipeline.testing import FakeOpenAIServer, FakeResponse

from .conftest import ROOT, TEST_KEY, one_error_line, run_cli, run_subprocess

DATA = ROOT / "evals" / "perspectrum-dev.jsonl"
ITEMS = {item["id"]: item for item in map(json.loads, DATA.read_text(encoding="utf-8").splitlines())}
BY_CLAIM = {item["claim"].strip(): item for item in ITEMS.values()}
UNRELATED = "The committee meets on Tuesdays in the small room next to the library, weather permitting."
_CLAIM = re.compile(r"^Claim C1 \((\w+), centrality 5/5\): (.*)$", re.MULTILINE)
_JUDGED = re.compile(r"<<<JUDGE (\w+)>>>\n(.*)\n<<<END JUDGE \1>>>", re.DOTALL)


def gold_rebuttals(claim: str) -> list[str]:
    """The item's gold paraphrases as 2-4 rebuttals: the first paraphrase of each cluster, dealt round."""
    clusters = BY_CLAIM[claim]["undermine"]
    count = min(max(len(clusters), 2), 4)
    dealt: list[list[str]] = [[] for _ in range(count)]
    for index, cluster in enumerate(clusters):
        dealt[index % count].append(cluster[0].strip())
    return [" ".join(texts) or UNRELATED for texts in dealt]


def rebuttal_reply(arguments: list[str]) -> dict[str, Any]:
    return {
        "steelman": "The strongest version of the claim.",
        "rebuttals": [
            {"type": "other", "argument": text, "strength": 3, "what_to_check": ["the record"]} for text in arguments
        ],
        "missing_context": [],
    }


def judged(body: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The perspectives (id → paraphrases) and rebuttals (id → text) as the judge prompt shows them."""
    text = body["messages"][-1]["content"]
    if text.startswith("Reply with") or "Task: judge" not in text:  # a re-ask appends messages
        text = next(m["content"] for m in body["messages"] if m["content"].startswith("Task: judge"))
    section = _JUDGED.search(text)
    assert section, "the judge prompt fences its data"
    data = section.group(2)
    perspectives_part, rebuttals_part = data.split("\nGenerated rebuttals:\n")
    perspectives = {
        label: re.findall(r"^- (.*)$", block, re.MULTILINE)
        for label, block in re.findall(r"^\[(P\d+)\]\n((?:- .*\n?)+)", perspectives_part, re.MULTILINE)
    }
    rebuttals = dict(re.findall(r"^\[(R\d+)\] (.*)$", rebuttals_part, re.MULTILINE))
    return perspectives, rebuttals


def string_match_judge(body: dict[str, Any]) -> dict[str, Any]:
    """A judge that says a rebuttal covers a perspective when it contains one of its paraphrases;
    a covering rebuttal scores 5 on everything, any other 1."""
    perspectives, rebuttals = judged(body)
    covers = {
        label: [rid for rid, text in rebuttals.items() if any(p in text for p in paraphrases)]
        for label, paraphrases in perspectives.items()
    }
    covering = {rid for rids in covers.values() for rid in rids}
    return {
        "perspectives": [{"id": label, "covered_by": rids, "reason": "string match"} for label, rids in covers.items()],
        "rebuttals": [{"id": rid, **dict.fromkeys(SCORES, 5 if rid in covering else 1)} for rid in rebuttals],
    }


def handler(answer: Callable[[str], list[str]]) -> Callable[[str, dict[str, Any]], Any]:
    """Rebut by `answer(claim)`, judge by string match."""

    def respond(unit: str, body: dict[str, Any]) -> Any:
        if unit == "judge":
            return string_match_judge(body)
        found = _CLAIM.search(body["messages"][-1]["content"])
        assert unit == "C1" and found, f"unexpected request for {unit}"
        return rebuttal_reply(answer(found.group(2)))

    return respond


@pytest.fixture
def gold_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(handler(gold_rebuttals)) as fake:
        yield fake


def evaluate(server: FakeOpenAIServer, out: Path, *args: str, data: Path = DATA) -> Any:
    return run_cli(
        "eval", str(data), "--base-url", server.base_url, "--out", str(out), "--max-retries", "0", *args, key=TEST_KEY
    )


def report_of(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return report


def test_gold_paraphrases_as_rebuttals_cover_everything(gold_server: FakeOpenAIServer, tmp_path: Path) -> None:
    result = evaluate(gold_server, tmp_path / "ev", "--limit", "12")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "ev")
    assert result.stderr.strip().splitlines()[-1].startswith("coverage 1.000 over 12 of 12 items; cost $")
    report = report_of(tmp_path / "ev")
    assert report["n"] == 12 and len(report["per_item"]) == 12 and report["failed"] == 0
    assert [item["id"] for item in report["per_item"]] == list(ITEMS)[:12]
    assert report["coverage"] == 1.0
    assert report["coverage"] == pytest.approx(fmean(item["coverage"] for item in report["per_item"]))
    assert all(item["covered"] == list(range(item["clusters"])) for item in report["per_item"])
    assert report["scores"] == dict.fromkeys(SCORES, 5.0)
    assert report["model"] == report["judge_model"] == "gpt-4.1-mini"
    assert report["usage"]["rebut"]["calls"] == 12 and report["usage"]["judge"]["calls"] == 12
    assert report["usage"]["judge"]["prompt_tokens"] > 0 and report["cost_usd"] > 0
    assert "| metric | mean |" in (tmp_path / "ev" / "report.md").read_text(encoding="utf-8")
    for path in (tmp_path / "ev").rglob("*"):
        assert path.is_dir() or TEST_KEY not in path.read_text(encoding="utf-8")


def test_the_console_script_evaluates_12_claims(gold_server: FakeOpenAIServer, tmp_path: Path) -> None:
    """As a user runs it: a real process, a relative DATA path, the default --out under the runs dir."""
    runs = tmp_path / "runs"
    done = run_subprocess(
        ["eval", "evals/perspectrum-dev.jsonl", "--limit", "12", "--base-url", gold_server.base_url, "-q"],
        env={"OPENAI_API_KEY": TEST_KEY, "COUNTERPOINT_RUNS_DIR": str(runs)},
    )
    assert done.returncode == 0, done.stderr
    out = Path(done.stdout.strip().splitlines()[-1])
    assert out.parent == runs / "evals"
    report = report_of(out)
    assert report["n"] == 12 and len(report["per_item"]) == 12 and report["coverage"] == 1.0
    assert done.stderr == ""  # -q


def test_unrelated_rebuttals_cover_nothing(tmp_path: Path) -> None:
    with FakeOpenAIServer(handler(lambda claim: [UNRELATED, UNRELATED + " Also on Fridays."])) as fake:
        result = evaluate(fake, tmp_path / "ev", "--limit", "5", "--judge-model", "local-judge")
        assert {r.body["model"] for r in fake.requests_for("judge")} == {"local-judge"}
        assert {r.body["model"] for r in fake.requests_for("C1")} == {"gpt-4.1-mini"}
    assert result.exit_code == 0, result.stderr
    report = report_of(tmp_path / "ev")
    assert report["coverage"] == 0.0 and report["n"] == 5
    assert all(item["covered"] == [] and item["coverage"] == 0.0 for item in report["per_item"])
    assert report["scores"]["opposition"] == 1.0
    assert report["cost_usd"] is None and report["cost"] == "unpriced (local-judge is not in the price table)"


def test_partial_coverage_maps_the_shuffled_order_back(tmp_path: Path) -> None:
    """Only the data file's cluster 1 is given back: whatever order the judge saw, cluster 1 is the
    one covered, and each item's coverage is 1 / its clusters."""

    def second_cluster(claim: str) -> list[str]:
        return [BY_CLAIM[claim]["undermine"][1][0] if len(BY_CLAIM[claim]["undermine"]) > 1 else UNRELATED, UNRELATED]

    with FakeOpenAIServer(handler(second_cluster)) as fake:
        result = evaluate(fake, tmp_path / "ev", "--limit", "12")
        prompts = [r.body["messages"][0]["content"] for r in fake.requests if r.unit == "judge"]
    assert result.exit_code == 0, result.stderr
    report = report_of(tmp_path / "ev")
    assert report["n"] == 12 and 0 < report["coverage"] < 1
    assert report["coverage"] == fmean(item["coverage"] for item in report["per_item"])  # exactly
    for item in report["per_item"]:
        many = item["clusters"] > 1
        assert item["covered"] == ([1] if many else []), item["id"]
        assert item["coverage"] == pytest.approx(1 / item["clusters"] if many else 0.0)
    # The judge did not always see the file's order (the shuffle is real) ...
    first_shown = [judged({"messages": [{"content": p}]})[0]["P1"][0] for p in prompts]
    firsts = {ITEMS[i]["undermine"][0][0].strip() for i in list(ITEMS)[:12]}
    assert any(text not in firsts for text in first_shown)


def test_the_presentation_order_is_fixed_by_the_seed() -> None:
    assert Presentation.shuffled(7, 4, 3) == Presentation.shuffled(7, 4, 3)
    assert {tuple(Presentation.shuffled(7, 4, seed).clusters) for seed in range(10)} != {tuple(range(7))}
    order = Presentation.shuffled(7, 4, 3)
    assert sorted(order.clusters) == list(range(7)) and sorted(order.rebuttals) == list(range(4))


def test_judge_failures_are_counted_and_left_out_of_the_means(tmp_path: Path) -> None:
    """Items whose judge never answers validly are recorded with the reason; the mean is over the rest."""
    failing = set(list(ITEMS)[1:3])
    failing_claims = {ITEMS[i]["claim"].strip() for i in failing}
    good = handler(gold_rebuttals)

    def respond(unit: str, body: dict[str, Any]) -> Any:
        text = json.dumps(body["messages"])
        if unit == "judge" and any(json.dumps(claim)[1:-1] in text for claim in failing_claims):
            return {"perspectives": [], "rebuttals": []}  # fails the schema every time
        return good(unit, body)

    with FakeOpenAIServer(respond) as fake:
        result = evaluate(fake, tmp_path / "ev", "--limit", "6", "--reasks", "1")
    assert result.exit_code == 3, result.stderr
    report = report_of(tmp_path / "ev")
    assert report["n"] == 6 and report["failed"] == 2 and report["scored"] == 4
    assert report["failures"] == {"rebut": 0, "judge": 2}
    assert report["coverage"] == 1.0  # not 4/6: a failure is not a zero
    for item in report["per_item"]:
        if item["id"] in failing:
            assert item["status"] == "failed" and item["coverage"] is None
            assert item["error"]["stage"] == "judge" and item["error"]["kind"] == "invalid"
            assert "minItems" in item["error"]["message"] or "should be non-empty" in item["error"]["message"]
            assert len(item["rebuttals"]) >= 2  # what the rebut stage wrote is kept
    assert "failed (judge: invalid)" in (tmp_path / "ev" / "report.md").read_text(encoding="utf-8")


def test_every_item_failing_exits_1_with_the_report_written(tmp_path: Path) -> None:
    def respond(unit: str, body: dict[str, Any]) -> Any:
        return FakeResponse(content="not json at all") if unit == "C1" else string_match_judge(body)

    with FakeOpenAIServer(respond) as fake:
        result = evaluate(fake, tmp_path / "ev", "--limit", "2", "--reasks", "0")
    assert result.exit_code == 1
    report = report_of(tmp_path / "ev")
    assert report["coverage"] is None and report["failed"] == 2 and report["failures"]["rebut"] == 2
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "ev")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == result.stderr.splitlines()[-1]  # after progress and the summary
    line = errors[0]
    assert line.startswith("error: no item was scored (the last: rebut: ") and line.endswith(
        f"; the report is in {tmp_path / 'ev'}; once that is fixed, continue with --resume {tmp_path / 'ev'}"
    )


def test_rerunning_the_same_out_asks_only_what_is_not_finished(tmp_path: Path) -> None:
    judge_fails = {"on": True}
    good = handler(gold_rebuttals)

    def respond(unit: str, body: dict[str, Any]) -> Any:
        if unit == "judge" and judge_fails["on"] and ITEMS[next(iter(ITEMS))]["claim"].strip() in json.dumps(body):
            return FakeResponse(status=400, error_message="bad judge request")
        return good(unit, body)

    out = tmp_path / "ev"
    with FakeOpenAIServer(respond) as fake:
        assert evaluate(fake, out, "--limit", "3", "--no-cache").exit_code == 3
        assert len(fake.requests_for("C1")) == 3 and len(fake.requests_for("judge")) == 3
        judge_fails["on"] = False
        fake.requests.clear()
        result = evaluate(fake, out, "--limit", "5", "--no-cache")
        assert result.exit_code == 0, result.stderr
        # Items 2-3 were finished; item 1 keeps its rebuttals and asks only the judge again.
        assert len(fake.requests_for("C1")) == 2 and len(fake.requests_for("judge")) == 3
        fake.requests.clear()
        again = run_cli("eval", "--resume", str(out), "--base-url", fake.base_url, key=TEST_KEY)
        assert again.exit_code == 0, again.stderr
        assert fake.requests == []  # --resume takes DATA, --limit and the settings from eval.json
    report = report_of(out)
    assert report["n"] == 5 and report["coverage"] == 1.0 and report["failed"] == 0


def test_a_rerun_with_other_settings_is_refused(gold_server: FakeOpenAIServer, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    assert evaluate(gold_server, out, "--limit", "1").exit_code == 0
    result = evaluate(gold_server, out, "--limit", "1", "--judge-model", "other-judge")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "other settings (settings.judge_model)" in line and "new --out" in line


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"id": "b", "claim": "Y"}', "line 2: 'undermine' must be a non-empty list"),
        ('{"id": "b", "claim": "Y", "undermine": [[]]}', "line 2: 'undermine' must be a non-empty list"),
        ("not json", "line 2 is not JSON"),
        ('{"id": "a", "claim": "Y", "undermine": [["q"]]}', "line 2: id 'a' is used twice"),
        (json.dumps({"id": "b", "claim": "Y", "undermine": [["q"]] * 25}), "25 'undermine' clusters, more than"),
    ],
)
def test_bad_data_is_a_one_line_error(gold_server: FakeOpenAIServer, tmp_path: Path, line: str, message: str) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "claim": "X", "undermine": [["p"]]}\n' + line + "\n", encoding="utf-8")
    result = evaluate(gold_server, tmp_path / "ev", data=data)
    assert result.exit_code == 1
    assert message in one_error_line(result)
    assert not (tmp_path / "ev").exists() and gold_server.requests == []


def test_no_endpoint_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    result = run_cli("eval", str(DATA), "--out", str(tmp_path / "ev"))
    assert result.exit_code == 1 and "no model endpoint configured" in one_error_line(result)
    assert not (tmp_path / "ev").exists()


# -- --compare --------------------------------------------------------------------------------


def crafted(tmp_path: Path, name: str, coverages: dict[str, float | None], judge: str = "j") -> Path:
    """A report.json with the given per-item coverages (None: failed); scores are 2 × coverage + 1."""
    items = []
    for item_id, coverage in coverages.items():
        ok = coverage is not None
        items.append(
            {
                "id": item_id,
                "status": "ok" if ok else "failed",
                "coverage": coverage,
                "scores": dict.fromkeys(SCORES, 2 * coverage + 1) if coverage is not None else None,
            }
        )
    folder = tmp_path / name
    folder.mkdir()
    report = {"model": name, "judge_model": judge, "n": len(items), "failed": 0, "per_item": items}
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def test_compare_pairs_items_and_bounds_the_difference(tmp_path: Path) -> None:
    a = crafted(tmp_path, "A", {"x": 0.0, "y": 0.5, "z": 1.0, "w": 0.5})
    b = crafted(tmp_path, "B", {"x": 0.5, "y": 0.5, "z": 1.0, "w": None, "extra": 1.0})
    result = run_cli("eval", "--compare", str(a), str(b))
    assert result.exit_code == 0, result.stderr
    assert "paired items: 3" in result.stdout
    coverage = next(line for line in result.stdout.splitlines() if line.startswith("coverage"))
    # A over x,y,z = 0.5, B = 2/3, B-A = 1/6; the bootstrap of diffs (0.5, 0, 0) spans [0, 0.5].
    assert coverage.split()[1:5] == ["0.500", "0.667", "+0.167", "[+0.000,"]
    assert coverage.endswith("+0.500]")
    rows = evalreport.compare(json.loads((a / "report.json").read_text()), json.loads((b / "report.json").read_text()))
    opposition = next(row for row in rows if row["metric"] == "opposition")
    assert opposition["diff"] == pytest.approx(2 / 6)


def test_bootstrap_interval_is_fixed_by_its_seed_and_holds_the_mean() -> None:
    diffs = [0.1, -0.2, 0.3, 0.0, 0.25, -0.05, 0.4, 0.1]
    low, high = evalreport.bootstrap(diffs, seed=0)
    assert (low, high) == evalreport.bootstrap(diffs, seed=0)
    assert low < fmean(diffs) < high and low > min(diffs) and high < max(diffs)
    assert evalreport.bootstrap([0.25] * 5) == (0.25, 0.25)


def test_compare_without_common_items_is_a_one_line_error(tmp_path: Path) -> None:
    a = crafted(tmp_path, "A", {"x": 0.5})
    b = crafted(tmp_path, "B", {"y": 0.5}, judge="other")
    result = run_cli("eval", "--compare", str(a), str(b))
    assert result.exit_code == 1 and "no item is scored in both" in one_error_line(result)
    missing = run_cli("eval", "--compare", str(a), str(tmp_path))
    assert missing.exit_code == 1 and "holds no report.json" in one_error_line(missing)
    data = run_cli("eval", "--compare", str(a), str(DATA))  # a data file given by mistake
    assert data.exit_code == 1 and one_error_line(data) == (
        f"error: {DATA} is not an eval report (not JSON); give a counterpoint eval directory"
    )
    assert DATA.is_file()


def test_an_out_that_cannot_be_created_is_a_one_line_error(gold_server: FakeOpenAIServer, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder", encoding="utf-8")
    result = evaluate(gold_server, blocked / "ev", "--limit", "1")
    assert result.exit_code == 1, result.stderr
    assert one_error_line(result) == f"error: cannot write to {blocked / 'ev'} (Not a directory); give a writable --out"
    assert gold_server.requests == []


@pytest.fixture
def fresh_prompts() -> Iterator[None]:
    """Prompts are cached per process: reload them under the next command's environment."""
    prompts._template.cache_clear()
    yield
    prompts._template.cache_clear()


def test_a_prompt_folder_changes_the_answers_not_the_judge(
    gold_server: FakeOpenAIServer, tmp_path: Path, fresh_prompts: None
) -> None:
    """COUNTERPOINT_PROMPTS_DIR is what an experiment changes: the rebut prompt comes from it, the
    judge's prompt never does (the folder need not even hold one), and the eval records which."""
    folder = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", folder)
    (folder / "judge.md").unlink()
    rebut = folder / "rebut_claim.md"
    rebut.write_text(rebut.read_text(encoding="utf-8") + "\nKeep each argument short.\n", encoding="utf-8")
    out = tmp_path / "ev"
    result = run_cli(
        "eval", str(DATA), "--base-url", gold_server.base_url, "--out", str(out), "--limit", "2",
        key=TEST_KEY, env={"COUNTERPOINT_PROMPTS_DIR": str(folder)},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert all("Keep each argument short." in json.dumps(r.body) for r in gold_server.requests_for("C1"))
    assert all("Keep each argument" not in json.dumps(r.body) for r in gold_server.requests_for("judge"))
    prompts._template.cache_clear()
    again = evaluate(gold_server, out, "--limit", "2")  # the shipped prompts: another experiment
    assert again.exit_code == 1 and "prompts.rebut_claim" in one_error_line(again)


def test_refused_credentials_stop_the_eval_in_one_line(tmp_path: Path) -> None:
    with FakeOpenAIServer(lambda unit, body: FakeResponse(status=401, error_message=f"bad key {TEST_KEY}")) as fake:
        # One at a time: a request cancelled in flight makes the in-process server print a reset to stderr.
        result = evaluate(fake, tmp_path / "ev", "--limit", "3", "--concurrency", "1")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "refused the credentials (HTTP 401); check OPENAI_API_KEY" in line and TEST_KEY not in line
    assert list((tmp_path / "ev" / "items").iterdir()) == []  # nothing recorded as a scored or failed item


def test_data_resume_or_compare_is_needed(tmp_path: Path) -> None:
    result = run_cli("eval", key=TEST_KEY)
    assert result.exit_code == 2 and "give DATA.jsonl, --resume DIR or --compare DIR_A DIR_B" in result.stderr
    both = run_cli("eval", str(DATA), "--compare", str(tmp_path), str(tmp_path))
    assert both.exit_code == 2 and "--compare DIR_A DIR_B takes no DATA" in both.stderr
    missing = run_cli("eval", "--resume", str(tmp_path), key=TEST_KEY)
    assert missing.exit_code == 2 and "holds no eval.json" in missing.stderr


def test_the_judge_on_its_own_endpoint_gets_its_own_key(tmp_path: Path) -> None:
    judge_key = "sk-judge-Pq7wE2rT9yU4iO"
    answer = handler(gold_rebuttals)
    with FakeOpenAIServer(answer) as model, FakeOpenAIServer(answer) as judge:
        result = run_cli(
            "eval", str(DATA), "--limit", "2", "--out", str(tmp_path / "ev"),
            "--base-url", model.base_url, "--judge-base-url", judge.base_url, "--judge-model", "judge-model",
            key=TEST_KEY, env={"COUNTERPOINT_JUDGE_API_KEY": judge_key},
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert {r.unit for r in model.requests} == {"C1"} and {r.unit for r in judge.requests} == {"judge"}
        assert {r.headers["authorization"] for r in model.requests} == {f"Bearer {TEST_KEY}"}
        assert {r.headers["authorization"] for r in judge.requests} == {f"Bearer {judge_key}"}
        report = report_of(tmp_path / "ev")
        assert report["judge_endpoint"] == judge.base_url and report["endpoint"] == model.base_url
    for path in (tmp_path / "ev").rglob("*.json"):
        assert judge_key not in path.read_text(encoding="utf-8")


def test_the_evals_folder_is_not_listed_as_a_run(gold_server: FakeOpenAIServer, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from pipeline.review.app import create_app
    from pipeline.review.guard import HEADER

    runs_dir = tmp_path / "runs"
    args = ("--limit", "2", "--runs-dir", str(runs_dir), "--base-url", gold_server.base_url, "-q")
    result = run_cli("eval", str(DATA), *args, key=TEST_KEY)
    assert result.exit_code == 0, result.stderr
    assert Path(result.stdout.strip()).parent == runs_dir / "evals"  # no --out: under the runs dir
    listed = run_cli("runs", "--runs-dir", str(runs_dir), "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    app = create_app(runs_dir, token="t0ken-for-the-tests-3f9a2c71d5e8", hosts=["testserver"], reviewer=None)
    client = TestClient(app, headers={HEADER: "t0ken-for-the-tests-3f9a2c71d5e8"})
    served = client.get("/api/runs").json()
    assert served["runs"] == [] and served["total"] == 0
