"""`counterpoint export`: a run's brief for publication or the desk (pipeline/review/export.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import echo, fail, friendly_errors, runs_dir_option


@click.command()
@click.argument("run_ref", metavar="RUN", default="latest")
@runs_dir_option
@click.option("--format", "fmt", type=click.Choice(["md", "html", "docx", "json"]), default="md", show_default=True)
@click.option(
    "--reviewed", is_flag=True, help="Only accepted and edited rebuttals (edited text), with the reviewer's notes."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout.")
@friendly_errors
def export(run_ref: str, runs_dir: Path, fmt: str, reviewed: bool, output: Path | None) -> None:
    """Export a run's brief as Markdown, HTML, Word (docx) or JSON. RUN is an id, a unique prefix,
    'latest' or a run directory."""
    from ..files import atomic_write_bytes
    from ..review.export import export as render
    from ..runs import find_run

    content = render(find_run(runs_dir, run_ref), fmt, reviewed=reviewed)
    data = content if isinstance(content, bytes) else content.encode("utf-8")
    if output is not None:
        try:
            atomic_write_bytes(output, data)
        except OSError as exc:
            fail(f"cannot write {output} ({exc.strerror or exc}); check the folder exists and is writable")
        echo(f"wrote {output}", err=True)
    elif isinstance(content, bytes):
        if sys.stdout.isatty():
            fail("a .docx file is binary: give -o FILE.docx (or redirect stdout to a file)")
        sys.stdout.buffer.write(content)
    else:
        echo(content, nl=False, as_json=fmt == "json")
