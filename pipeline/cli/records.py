"""`counterpoint runs`, `show` and `validate`: reading what runs recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .common import echo, fail, friendly_errors, runs_dir_option


@click.command(name="runs")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@friendly_errors
def list_runs(runs_dir: Path, as_json: bool) -> None:
    """List runs, newest first."""
    from ..review.store import listing_progress
    from ..runs import list_runs as collect

    rows = collect(runs_dir)
    for row in rows:
        row["review"] = listing_progress(Path(row["path"]))
    if as_json:
        echo(json.dumps(rows, indent=2), as_json=True)
        return
    if not rows:
        echo(f"no runs in {runs_dir}", err=True)
        return
    for line in runs_table(rows):
        echo(line)


def runs_table(rows: list[dict[str, Any]]) -> list[str]:
    """Aligned columns, the title last so that a long one does not push the others about. Every
    cell is one line of printable text, whatever a manifest or a --model holds."""
    from ..pricing import listed_cost
    from ..terminal import clean

    header = ("ID", "STATUS", "CLAIMS", "TOKENS", "COST", "REVIEWED", "DATE", "MODEL", "TITLE")
    cells = [header] + [
        tuple(
            clean(cell, one_line=True).strip() or "-"
            for cell in (
                row["id"],
                row["status"],
                "-" if row["claims"] is None else str(row["claims"]),
                "-" if row["tokens"] is None else f"{row['tokens']:,}",
                listed_cost(row["cost_usd"], row["cost_status"]),
                f"{row['review']['decided']}/{row['review']['total']}" if row.get("review") else "-",
                (row["created"] or "-")[:16].replace("T", " "),
                model_cell(row),
                clean(row["title"] or "-", one_line=True)[:60],
            )
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in cells) for column in range(len(header) - 1)]
    right = {2, 3, 4, 5}  # numbers line up on the right
    return [
        "  ".join(
            [
                cell.rjust(width) if column in right else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(line, widths, strict=False))
            ]
            + [line[-1]]
        )
        for line in cells
    ]


def model_cell(row: dict[str, Any]) -> str:
    """The run's model, and any stage that used another: "gpt-4o, rebut: gpt-4o-mini"."""
    model = row["model"] or "-"
    others = [f"{stage}: {name}" for stage, name in (row.get("models") or {}).items() if name != row["model"]]
    return ", ".join([model, *others])


@click.command()
@click.argument("run_ref", metavar="RUN", default="latest")
@runs_dir_option
@click.option(
    "--format", "fmt", type=click.Choice(["md", "json", "html", "path", "review"]), default="md", show_default=True
)
@friendly_errors
def show(run_ref: str, runs_dir: Path, fmt: str) -> None:
    """Print a run's brief (or its review.json with --format review). RUN is an id, a unique prefix,
    'latest' or a run directory."""
    from ..runs import BRIEF_FILES, find_run

    run_dir = find_run(runs_dir, run_ref)
    if fmt == "path":
        echo(str(run_dir.path))
        return
    if fmt == "review":
        show_review(run_dir.path)
        return
    name = BRIEF_FILES[fmt]
    run_dir.require_finished(name)
    echo(run_dir.read_text(name), nl=False, as_json=fmt == "json")


def show_review(run_path: Path) -> None:
    from ..review.store import REVIEW_NAME, read_review

    review = read_review(run_path)
    if review is None:
        fail(f"run {run_path.name} has no {REVIEW_NAME} yet; review it with 'counterpoint serve'")
    echo(json.dumps(review, indent=2, ensure_ascii=False), as_json=True)


@click.command()
@click.argument("target", metavar="RUN", default="latest")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as a JSON object on stdout.")
@friendly_errors
def validate(target: str, runs_dir: Path, as_json: bool) -> None:
    """Check a brief against the schemas and the article. RUN is an id, a unique prefix, 'latest', a run
    directory or a brief.json file."""
    from ..brief import check_brief
    from ..brief.check import predates_checks
    from ..review.store import REVIEW_NAME
    from ..runs import BRIEF_JSON, RunDir, find_run, read_json, read_text_file
    from ..terminal import clean

    path = Path(target).expanduser()
    if not path.is_file():
        run_dir = RunDir(path) if path.is_dir() else find_run(runs_dir, target)
        run_dir.refuse_while_running(BRIEF_JSON)
        path = run_dir.brief_path
    brief_path = path
    article_path = RunDir(brief_path.parent).article_path  # a brief.json file is checked against the article beside it
    brief = read_json(brief_path)
    article_text = read_text_file(article_path) if article_path.is_file() else None
    in_brief, in_review = check_brief(brief, article_text), review_problems(brief_path.parent, brief)
    problems = in_brief + in_review
    checked = "schema, ids and quotes" if article_text is not None else "schema and ids (no article.txt beside it)"
    old = predates_checks(brief)
    if old:
        checked += "; written before verification checks, so none are recorded (run the article again to get them)"
    elif article_text is not None:
        checked = "schema, ids and quotes; verification checks"
    if as_json:
        echo(
            json.dumps(
                {
                    "brief": str(brief_path),
                    "ok": not problems,
                    "checked": checked,
                    "predates_checks": old,
                    "problems": problems,
                },
                indent=2,
                ensure_ascii=False,
            ),
            as_json=True,
        )
    else:
        for problem in problems:
            echo(clean(problem, one_line=True))
    if problems:
        where = [str(brief_path)] if in_brief else []
        where += [str(brief_path.parent / REVIEW_NAME)] if in_review else []
        fail(f"{len(problems)} problem(s) in {' and '.join(where)}")
    echo(f"ok: {brief_path} ({checked})", err=True)


def review_problems(folder: Path, brief: Any) -> list[str]:
    """The problems of the review.json beside a brief (its schema, ids not in the brief), prefixed
    with the file's name; none when there is no review or the brief itself is unusable."""
    from ..review.store import REVIEW_NAME, check_review
    from ..runs import read_json

    path = folder / REVIEW_NAME
    if not path.is_file() or not isinstance(brief, dict) or not isinstance(brief.get("claims"), list):
        return []
    try:
        return [f"{REVIEW_NAME}: {problem}" for problem in check_review(read_json(path), brief)]
    except (KeyError, TypeError):  # a brief that breaks its schema: its own problems are listed
        return []
