"""`counterpoint eval`: score a model against gold counter-perspectives, or compare two evals.

Exit codes: 0 every item scored; 3 report written but some items failed (left out of the means);
1 nothing scored (every item failed), or a configuration, input or endpoint error; 2 usage error.
The last line on stdout is the eval directory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import defaults
from .common import (
    EXIT_OK,
    EXIT_PARTIAL,
    BaseURL,
    FiniteFloatRange,
    defaulted,
    echo,
    fail,
    friendly_errors,
    max_retries_option,
    model_option,
    reasks_option,
    response_format_option,
    runs_dir_option,
    timeout_option,
)

if TYPE_CHECKING:
    from ..evaldata import EvalDir

# Options a rerun with --resume DIR takes from the directory's eval.json when they are not given.
RECORDED = (
    "model",
    "base_url",
    "judge_model",
    "judge_base_url",
    "seed",
    "reasks",
    "temperature",
    "judge_temperature",
    "response_format",
    "limit",
)


@click.command("eval")
@click.argument("data", required=False, type=click.Path(dir_okay=False, path_type=Path))
@model_option()
@click.option(
    "--base-url", envvar="OPENAI_BASE_URL", show_envvar=True, type=BaseURL(), help="OpenAI-compatible endpoint."
)
@click.option("--judge-model", help="Model that judges the rebuttals. [default: --model]")
@click.option(
    "--judge-base-url",
    type=BaseURL(),
    help="Endpoint of the judge (its key: COUNTERPOINT_JUDGE_API_KEY, else OPENAI_API_KEY). [default: --base-url]",
)
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N items of DATA.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the order the judge sees things in.")
@click.option(
    "--concurrency",
    envvar="COUNTERPOINT_CONCURRENCY",
    show_envvar=True,
    default=defaults.CONCURRENCY,
    show_default=True,
    type=click.IntRange(*defaults.INT_BOUNDS["concurrency"]),
    help="Items in flight at once.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Eval directory. [default: RUNS_DIR/evals/<UTC time>]",
)
@runs_dir_option
@click.option(
    "--resume",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Continue the eval in this directory.",
)
@reasks_option
@timeout_option
@max_retries_option
@response_format_option
@click.option(
    "--temperature",
    type=FiniteFloatRange(*defaults.FLOAT_BOUNDS["temperature"]),
    help="Sampling temperature. [default: the server's]",
)
@click.option(
    "--judge-temperature",
    type=FiniteFloatRange(*defaults.FLOAT_BOUNDS["temperature"]),
    help="The judge's temperature. [default: --temperature]",
)
@click.option(
    "--cache-dir", envvar="COUNTERPOINT_CACHE_DIR", show_envvar=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option(
    "--compare", nargs=2, type=click.Path(exists=True, path_type=Path), metavar="DIR_A DIR_B", help="Compare two evals."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress or summary on stderr.")
@friendly_errors
def eval_command(**given: Any) -> None:
    """Score --model against the gold counter-perspectives in DATA.jsonl (PERSPECTRUM format).

    For each claim the rebut stage writes rebuttals; the judge decides which gold perspectives they
    make and scores each 1-5. Writes DIR/report.json and DIR/report.md; the last line is DIR.
    """
    if given["compare"]:
        if given["data"] is not None or given["resume"] is not None:
            raise click.UsageError("--compare DIR_A DIR_B takes no DATA or --resume")
        compare(given["compare"][0], given["compare"][1], seed=given["seed"])
        return
    run_eval(given)


def run_eval(given: dict[str, Any]) -> None:
    from .. import api, evaluate
    from ..engine import Settings
    from ..evaldata import load_items

    out, recorded = _out_and_record(given)
    data = given["data"] or _recorded_data(recorded)
    if data is None:
        raise click.UsageError("give DATA.jsonl, --resume DIR or --compare DIR_A DIR_B")
    items, sha = load_items(data)
    items = items[: given["limit"]] if given["limit"] else items
    settings = evaluate.EvalSettings(**{name: given[name] for name in RECORDED if name != "limit"})
    for url, key, temperature, flag in (
        (settings.base_url, None, settings.temperature, "--base-url"),
        (
            settings.judge_url,
            os.environ.get(evaluate.JUDGE_KEY_ENV) or None,
            settings.judge_temperature,
            "--judge-base-url",
        ),
    ):  # both endpoints usable before the directory is made
        api.check_client(Settings(temperature=temperature), url, key, given["timeout"], flag=flag)
    options = evaluate.EvalOptions(
        timeout=given["timeout"],
        max_retries=given["max_retries"],
        cache_dir=given["cache_dir"],
        use_cache=not given["no_cache"],
        concurrency=given["concurrency"],
    )
    report = evaluate.evaluate(
        items,
        settings,
        options,
        out,
        data=(str(data.resolve()), sha),
        limit=given["limit"],
        on_item=None if given["quiet"] else _progress,
    )
    if not given["quiet"]:
        scored = f"{report['scored']} of {report['n']} items"
        echo(f"coverage {_figure(report['coverage'])} over {scored}; cost {report['cost']}", err=True)
    echo(str(out.path))
    if report["scored"] == 0:
        fail(_nothing_scored(report, out.path))
    raise SystemExit(EXIT_PARTIAL if report["failed"] else EXIT_OK)


def _nothing_scored(report: dict[str, Any], path: Path) -> str:
    """Why no item was scored (the last failure stands for the rest) and how to continue."""
    errors = [item["error"] for item in report["per_item"] if item.get("error")]
    why = f" (the last: {errors[-1]['stage']}: {errors[-1]['message']})" if errors else ""
    return f"no item was scored{why}; the report is in {path}; once that is fixed, continue with --resume {path}"


def _recorded_data(recorded: dict[str, Any] | None) -> Path | None:
    path = ((recorded or {}).get("data") or {}).get("path")
    return Path(path) if isinstance(path, str) else None


def _out_and_record(given: dict[str, Any]) -> tuple[EvalDir, dict[str, Any] | None]:
    """The eval directory, and its record when continuing one: options left at their defaults take
    the recorded values."""
    import secrets  # here: it pulls in hmac and random, which `counterpoint --help` need not pay for

    from ..evaldata import EvalDir
    from ..runs import EVALS_DIR

    if given["resume"] is not None and given["out"] is not None and given["resume"] != given["out"]:
        raise click.UsageError("--resume DIR already names the eval directory; drop --out")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = given["resume"] or given["out"] or given["runs_dir"] / EVALS_DIR / f"{stamp}-{secrets.token_hex(2)}"
    out = EvalDir(path)
    recorded = out.manifest()
    if given["resume"] is not None and recorded is None:
        raise click.UsageError(f"{path} holds no eval.json; give a directory written by counterpoint eval")
    if given["resume"] is not None and recorded is not None:
        for name, value in (recorded.get("options") or {}).items():
            if name in RECORDED and defaulted(name):
                given[name] = value
    return out, recorded


def _progress(done: int, total: int, result: dict[str, Any]) -> None:
    if result["status"] == "ok":
        what = f"coverage {_figure(result['coverage'])}"
    else:
        what = f"failed ({result['error']['stage']}: {result['error']['kind']})"
    echo(f"[{done}/{total}] {result['id']}: {what}", err=True)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def compare(dir_a: Path, dir_b: Path, *, seed: int) -> None:
    from .. import evalreport
    from ..errors import InputError
    from ..evaldata import read_report

    a, b = read_report(dir_a), read_report(dir_b)
    rows = evalreport.compare(a, b, seed=seed)
    if not rows:
        raise InputError(f"no item is scored in both {dir_a} and {dir_b}; compare evals of the same data")
    echo(evalreport.compare_table(a, b, rows, resamples=evalreport.RESAMPLES, seed=seed))
