"""The batch record: its directory's layout and files, written only here (atomically, via files.py).

    runs/batches/<id>/
      manifest.json   the sources, the settings every article ran with, the endpoint, status, totals
      batch.jsonl     one line per source (see `row`); appended as articles start and finish, the
                      last line for a source wins, and it is rewritten with one line per source when
                      the batch ends
      summary.csv     the same rows as a spreadsheet
      index.html      one self-contained page: a table of the articles linking to each brief, totals
      .lock           held (flock) by the process running or resuming the batch

Each article is an ordinary run directory under the runs dir (runs.py), named in its row.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import defaults
from .errors import RunDirError
from .files import atomic_write, json_text
from .pricing import format_cost, tier_note
from .runs import BATCHES_DIR, RunDir, check_runs_dir, new_run_id, parse_json, read_json, utc_now
from .version import __version__

BATCH_MANIFEST = "manifest.json"  # the batch's own manifest (a run's is runs.MANIFEST)

if TYPE_CHECKING:
    from jinja2 import Template

CSV_COLUMNS = (
    "n",
    "id",
    "source",
    "title",
    "status",
    "claims_ok",
    "claims_failed",
    "tokens",
    "cost_usd",
    "error",
    "run",
)
FINISHED = "complete"  # a row with this status is never asked again
NOT_STARTED = "not started"  # a source the batch stopped before reaching: a resume starts it
STATUSES = ("complete", "partial", "failed", NOT_STARTED)
TEMPLATE = "batch_index.html.j2"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def row(
    key: str,
    n: int,
    source: str,
    item_id: str,
    *,
    status: str,
    run: Path | None = None,
    brief: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """A batch.jsonl line: the source, its run directory, and what its brief says (if it has one)."""
    claims = brief["claims"] if brief else []
    run_info = brief["run"] if brief else {}
    usage = run_info.get("usage") or {}
    return {
        "key": key,
        "n": n,
        "source": source,
        "id": item_id,
        "title": (brief or {}).get("article", {}).get("title"),
        "run": str(run) if run else None,
        "status": status,
        "claims_ok": sum(1 for claim in claims if claim["status"] == "ok"),
        "claims_failed": sum(1 for claim in claims if claim["status"] != "ok"),
        "error": error,
        "tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
        "cost_usd": run_info.get("cost_usd"),
    }


@dataclass
class BatchDir:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, runs_dir: Path) -> BatchDir:
        check_runs_dir(runs_dir)
        batch = cls(runs_dir / BATCHES_DIR / new_run_id("batch"))
        with batch.writing(batch.path):
            batch.path.mkdir(parents=True)
        return batch

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Held while the batch runs, so two processes never run (or resume) it at once."""
        holder = RunDir(self.path).running_pid()
        if holder is not None:  # RunDir.lock would refuse too, speaking of a run
            raise RunDirError(f"batch {self.id} is already running (pid {holder}); wait for it to finish, or stop it")
        with RunDir(self.path).lock():
            yield

    @contextmanager
    def writing(self, path: Path) -> Iterator[None]:
        """A failed write (a full disk, most often) is one line that says how to go on."""
        try:
            yield
        except OSError as exc:
            fix = "free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"
            raise RunDirError(
                f"cannot write {path} ({exc.strerror or exc}); the articles that finished are saved: {fix}, "
                f"then continue with '{resume_command(self)}'"
            ) from None

    # -- the manifest ---------------------------------------------------------------------------

    def write_manifest(self, status: str, fields: dict[str, Any], totals: dict[str, Any] | None = None) -> None:
        manifest = {
            "manifest_version": 1,
            "counterpoint_version": __version__,
            "batch_id": self.id,
            "status": status,
            "updated": utc_now(),
            **fields,
            "totals": totals,
        }
        path = self.manifest_path
        with self.writing(path):
            atomic_write(path, json_text(manifest, indent=2) + "\n")

    @property
    def manifest_path(self) -> Path:
        return self.path / BATCH_MANIFEST

    def manifest(self) -> dict[str, Any]:
        """The manifest; a damaged one is a one-line RunDirError naming it."""
        path = self.manifest_path
        manifest = read_json(path)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict):
            raise RunDirError(f"{path} is damaged (no settings); the batch cannot be resumed: start a new one")
        return manifest

    # -- rows -----------------------------------------------------------------------------------

    def append(self, line: dict[str, Any]) -> None:
        """One line, flushed at once, so a killed batch keeps what it knew."""
        path = self.path / "batch.jsonl"
        with self.writing(path), open(path, "a", encoding="utf-8") as handle:
            handle.write(json_text(line) + "\n")

    def rows(self) -> dict[str, dict[str, Any]]:
        """The last line for each source, by key; a line cut short by a kill or damaged is skipped."""
        path = self.path / "batch.jsonl"
        found: dict[str, dict[str, Any]] = {}
        if not path.is_file():
            return found
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    data = parse_json(line, path)
                except RunDirError:
                    continue
                if isinstance(data, dict) and isinstance(data.get("key"), str) and isinstance(data.get("n"), int):
                    found[data["key"]] = data
        return found

    def finish(self, rows: dict[str, dict[str, Any]], price_tier: str = "standard") -> dict[str, Any]:
        """Rewrite batch.jsonl with one line per source (in source order), write summary.csv and
        index.html, and return the totals. `price_tier`: the prices the articles' costs are at."""
        ordered = sorted(rows.values(), key=lambda line: line["n"])
        totals = {**batch_totals(ordered), "price_tier": price_tier}
        jsonl = "".join(json_text(line) + "\n" for line in ordered)
        for name, text in (
            ("batch.jsonl", jsonl),
            ("summary.csv", summary_csv(ordered)),
            ("index.html", self.index_html(ordered, totals)),
        ):
            with self.writing(self.path / name):
                atomic_write(self.path / name, text)
        return totals

    def index_html(self, rows: list[dict[str, Any]], totals: dict[str, Any]) -> str:
        articles = [
            {
                **line,
                "title": line.get("title") or line["id"],
                "cost": format_cost(line.get("cost_usd")) if line.get("run") else "",
                "link": self._brief_link(line.get("run")),
            }
            for line in rows
        ]
        return template().render(
            batch_id=self.id,
            articles=articles,
            totals=totals,
            total_cost=format_cost(totals["cost_usd"]),
            tier_note=tier_note(totals.get("price_tier", "standard")),
        )

    def _brief_link(self, run: str | None) -> str | None:
        page = RunDir(Path(run)).brief_file("html") if run else None
        if page is None or not page.is_file():
            return None
        return Path(os.path.relpath(page, self.path)).as_posix()


def batch_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by status, claims, tokens and cost (None when any article's cost is unknown)."""
    costs = [line.get("cost_usd") for line in rows if line.get("run")]
    return {
        "articles": len(rows),
        **{_total_key(status): sum(1 for line in rows if line["status"] == status) for status in STATUSES},
        "claims_ok": sum(line["claims_ok"] for line in rows),
        "claims_failed": sum(line["claims_failed"] for line in rows),
        "tokens": sum(line["tokens"] for line in rows),
        "cost_usd": None if any(cost is None for cost in costs) else round(sum(cost or 0.0 for cost in costs), 6),
    }


def _total_key(status: str) -> str:
    return status.replace(" ", "_")


def summary_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@lru_cache(maxsize=1)
def template() -> Template:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from .resources import resource_dir

    environment = Environment(
        loader=FileSystemLoader(resource_dir("templates")),
        autoescape=True,  # titles and errors come from the articles: every {{ }} is escaped
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE)


# -- finding batches --------------------------------------------------------------------------------


def batch_ids(runs_dir: Path) -> list[str]:
    """Batch ids, newest first (ids start with a UTC timestamp)."""
    try:
        return sorted((entry.name for entry in os.scandir(runs_dir / BATCHES_DIR) if entry.is_dir()), reverse=True)
    except FileNotFoundError:
        return []


def find_batch(runs_dir: Path, ref: str) -> BatchDir:
    """A batch from its id, a unique id prefix, 'latest', or its directory's path."""
    as_path = Path(ref).expanduser()
    if (as_path / BATCH_MANIFEST).is_file() and ("/" in ref or os.sep in ref):
        return BatchDir(as_path)
    if not _SAFE_ID.match(ref) or ".." in ref:
        raise RunDirError(f"{ref!r} is not a batch id; give an id, 'latest', or a batch directory")
    ids = [
        batch_id for batch_id in batch_ids(runs_dir) if (runs_dir / BATCHES_DIR / batch_id / BATCH_MANIFEST).is_file()
    ]
    if not ids:
        raise RunDirError(f"there are no batches in {runs_dir / BATCHES_DIR}; start one with 'counterpoint batch'")
    matches = ids[:1] if ref == "latest" else [batch_id for batch_id in ids if batch_id.startswith(ref)]
    if len(matches) == 1:
        return BatchDir(runs_dir / BATCHES_DIR / matches[0])
    if matches:
        raise RunDirError(f"{ref!r} matches {len(matches)} batches; give more of the id")
    raise RunDirError(f"no batch {ref!r} in {runs_dir / BATCHES_DIR}")


def resume_command(batch: BatchDir) -> str:
    """The command that continues `batch`, runnable as written (with --runs-dir unless default)."""
    runs_dir = batch.path.parent.parent
    args = ["counterpoint", "batch", "--resume", batch.id]
    if runs_dir != Path(defaults.RUNS_DIR):
        args += ["--runs-dir", str(runs_dir)]
    return shlex.join(args)
