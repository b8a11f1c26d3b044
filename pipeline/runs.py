"""The run record and its directory: `RunRecord` (calls log, usage totals, finished units, the
manifest), `Attempt` (a calls.jsonl line), `RunDir` (ids, layout, lock, safe reads and writes),
finding and listing runs.

    runs/<id>/
      article.txt      the normalised article (quote offsets refer to it)
      source.html      the original page, when the input was HTML or a URL
      manifest.json    settings, endpoint, hashes, timings, usage, cost, status
      .lock            held (flock) by the process running or resuming the run; holds its pid
      calls.jsonl      one line per model attempt (append-only)
      units/*.json     each finished unit's validated output, written as soon as it finishes
      brief.json / brief.md / brief.html
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import defaults
from .errors import RunDirError
from .files import atomic_write, json_text
from .usage import Usage, clamp_usage
from .version import __version__

LOCK_NAME = ".lock"
# The run directory's files (ARCHITECTURE.md, "The run directory"): only this module spells them;
# everyone else goes through these names or RunDir's helpers.
ARTICLE = "article.txt"
SOURCE_HTML = "source.html"
MANIFEST = "manifest.json"
CALLS = "calls.jsonl"
UNITS = "units"
BRIEF_JSON = "brief.json"
BRIEF_MD = "brief.md"
BRIEF_HTML = "brief.html"
BRIEF_FILES = {"json": BRIEF_JSON, "md": BRIEF_MD, "html": BRIEF_HTML}  # the brief in each format
BATCHES_DIR = "batches"  # runs/batches/<id>/ holds batch records (batch_record.py), not a run
EVALS_DIR = "evals"  # runs/evals/<id>/ holds `counterpoint eval` records (evaldata.py), not a run
NOT_RUNS = frozenset({BATCHES_DIR, EVALS_DIR})
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
# What resume reads from a manifest, and the JSON type each must have.
_MANIFEST_SHAPE = {"article": dict, "fingerprint": dict, "settings": dict}
_CALL_SHAPE = {"stage": str, "unit": str, "cache_hit": bool, "usage": dict}
RAW_KEEP = 64_000  # calls.jsonl keeps this much of a reply (more than any stage's size limit) and its length
STAGES = ("extract", "rebut", "synthesize")
# Runs recorded before a claim's unit took the name the calls log gives it (C3) saved it as rebut-C3.
_FORMER_UNIT_PREFIX = "rebut-"


def read_text_file(path: Path, *, kind: str = "") -> str:
    """A record's text; a missing, unreadable or non-UTF-8 file is a RunDirError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        why = exc.strerror or str(exc)
    except UnicodeDecodeError as exc:
        why = f"not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}"
    raise RunDirError(f"cannot read {path}{kind} ({why})")


def parse_json(text: str, source: Path | str) -> Any:
    """JSON that may be hostile (nested 100,000 deep, a leading BOM): a RunDirError, never a crash."""
    try:
        return json.loads(text.removeprefix("\ufeff"))
    except RecursionError:
        raise RunDirError(f"cannot read {source} as JSON (nested too deeply)") from None
    except ValueError as exc:
        raise RunDirError(f"cannot read {source} as JSON ({exc})") from None


def read_json(path: Path) -> Any:
    """The one reader of JSON records (manifests, units, briefs): see `parse_json`."""
    return parse_json(read_text_file(path, kind=" as JSON"), path)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json_text(data, indent=2) + "\n")


def slugify(title: str | None, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", (title or "article").lower()).strip("-")
    return words[:limit].rstrip("-") or "article"


def new_run_id(title: str | None, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{slugify(title)}-{secrets.token_hex(3)}"


def check_runs_dir(runs_dir: Path) -> None:
    """Fail before any model call when the runs directory cannot be written."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=runs_dir, prefix=".write-test-", delete=True):
            pass
    except OSError as exc:
        raise RunDirError(
            f"cannot write to the runs directory {runs_dir} ({exc.strerror}); "
            "pass --runs-dir or set COUNTERPOINT_RUNS_DIR to a writable folder"
        ) from None


@dataclass
class RunDir:
    path: Path
    _lock_fd: int | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, runs_dir: Path, title: str | None) -> RunDir:
        check_runs_dir(runs_dir)
        run = cls(runs_dir / new_run_id(title))
        with run.writing(run.path / UNITS):
            (run.path / UNITS).mkdir(parents=True)
        return run

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run for the length of the block, so two processes never run it at once.

        flock is released by the kernel when the process dies, however it dies: a killed run
        never leaves a stale lock. Re-entrant for this object (the CLI locks before starting
        llama.cpp, the library again around the run).
        """
        if self._lock_fd is not None:
            yield
            return
        with self.writing(self.path / LOCK_NAME):
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                raise RunDirError(
                    f"run {self.id} is already running (pid {holder}); wait for it to finish, "
                    "or stop it, before resuming it"
                ) from None
            with suppress(OSError):  # on a full disk the lock holds without the pid it names
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            self._lock_fd = fd
            try:
                yield
            finally:
                self._lock_fd = None
        finally:
            os.close(fd)  # releases the lock

    def running_pid(self) -> str | None:
        """The pid of the process running this run now ('unknown' if it could not write it), or None."""
        try:
            fd = os.open(self.path / LOCK_NAME, os.O_RDONLY)
        except OSError:  # never locked: an old run, or not started
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released with the descriptor below
        except BlockingIOError:
            return os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        finally:
            os.close(fd)
        return None

    def refuse_while_running(self, name: str) -> None:
        """A RunDirError when `name` is missing because the run is still going (its lock is held)."""
        pid = None if (self.path / name).exists() else self.running_pid()
        if pid is not None:
            raise RunDirError(f"run {self.id} is still running (pid {pid}); its {name} is written when it finishes")

    def require_finished(self, name: str) -> None:
        """A RunDirError saying why the run has no `name` yet: still running, or stopped early."""
        self.refuse_while_running(name)
        if not (self.path / name).exists():
            raise RunDirError(
                f"{self.path} has no {name} (the run may have been interrupted; "
                f"finish it with '{resume_command(self)}')"
            )

    # -- records --------------------------------------------------------------------------

    @contextmanager
    def writing(self, path: Path) -> Iterator[None]:
        """A failed write of the record (a full disk, most often) is one line that says what to do.

        A run is resumable once its manifest exists. Before that, the folder could only mislead
        (`latest` would pick it, resume would fail): it is removed and the message says so.
        """
        try:
            yield
        except OSError as exc:
            why = exc.strerror or str(exc)
            fix = "free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"
            if not (self.path / MANIFEST).is_file():
                shutil.rmtree(self.path, ignore_errors=True)
                raise RunDirError(
                    f"cannot write {path} ({why}); nothing was saved: {fix} (or pass --runs-dir), then run again"
                ) from None
            raise RunDirError(
                f"cannot write {path} ({why}); what finished is saved in {self.path}: {fix}, "
                f"then continue with '{resume_command(self)}'"
            ) from None

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def article_path(self) -> Path:
        return self.path / ARTICLE

    @property
    def brief_path(self) -> Path:
        """brief.json; `brief_file(fmt)` for the brief in another format."""
        return self.path / BRIEF_JSON

    def brief_file(self, fmt: str) -> Path:
        """The brief in `fmt` (json, md or html)."""
        return self.path / BRIEF_FILES[fmt]

    def is_run(self) -> bool:
        """Whether the folder holds a run (its manifest is written as the run starts)."""
        return self.manifest_path.is_file()

    def discard_unstarted(self) -> bool:
        """Remove the folder if the run never got its manifest (stopped as it was being made): such a
        folder could only mislead `runs` and `latest`. True if it was removed."""
        if self.is_run():
            return False
        shutil.rmtree(self.path, ignore_errors=True)
        return True

    def has_brief(self) -> bool:
        return self.brief_path.is_file()

    def read_brief(self) -> Any:
        """brief.json as stored (a RunDirError when the run has not finished it, or it is not JSON);
        its shape is the reader's to check."""
        self.require_finished(BRIEF_JSON)
        return read_json(self.brief_path)

    def article_text(self) -> str:
        """article.txt: the text every offset in the brief refers to."""
        return self.read_text(ARTICLE)

    def write_article(self, text: str, page: str | None = None) -> None:
        """article.txt, and source.html for a page."""
        self.write_text(ARTICLE, text)
        if page is not None:
            self.write_text(SOURCE_HTML, page)

    def source_html(self) -> str | None:
        """source.html, for a run read from a page; None otherwise."""
        return self.read_text(SOURCE_HTML) if (self.path / SOURCE_HTML).is_file() else None

    def write_briefs(self, by_format: dict[str, str]) -> None:
        """The brief in each of its formats (json, md, html), each written atomically."""
        for fmt, text in by_format.items():
            self.write_text(BRIEF_FILES[fmt], text)

    def write_text(self, name: str, text: str) -> None:
        with self.writing(self.path / name):
            atomic_write(self.path / name, text)

    def read_text(self, name: str) -> str:
        return read_text_file(self.path / name)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        with self.writing(self.path / MANIFEST):
            write_json(self.path / MANIFEST, manifest)

    def manifest(self) -> dict[str, Any]:
        """The manifest, checked to hold what resume reads; a damaged one is a one-line RunDirError."""
        path = self.path / MANIFEST
        try:
            manifest = read_json(path)
        except RunDirError as exc:
            raise RunDirError(f"{exc}; is {self.path} a counterpoint run?") from None
        wrong = ([] if isinstance(manifest, dict) else ["it is not a JSON object"]) or [
            f"'{key}' is not a JSON {'object' if kind is dict else kind.__name__}"
            for key, kind in _MANIFEST_SHAPE.items()
            if not isinstance(manifest.get(key, kind()), kind)
        ]
        if wrong:
            raise RunDirError(
                f"{path} is damaged ({wrong[0]}); the run cannot be resumed: start a new run "
                f"with '{shlex.join(['counterpoint', 'run', str(self.article_path)])}'"
            )
        return manifest

    def append_call(self, record: dict[str, Any]) -> None:
        """One line per attempt, flushed at once so a killed run keeps its log."""
        path = self.path / CALLS
        with self.writing(path), open(path, "a", encoding="utf-8") as handle:
            handle.write(json_text(record) + "\n")

    def calls(self) -> list[dict[str, Any]]:
        """The calls log; a line cut short by a kill, damaged or of the wrong shape is skipped."""
        path = self.path / CALLS
        if not path.exists():
            return []
        records = []
        for number, line in enumerate(read_text_file(path).splitlines(), 1):
            try:
                record = parse_json(line, f"{path} line {number}")
            except RunDirError:
                continue
            if isinstance(record, dict) and all(isinstance(record.get(key), kind) for key, kind in _CALL_SHAPE.items()):
                records.append(record)
        return records

    def check_resumable(self) -> None:
        """Before a resume makes any call: the article can be read, units/ is a folder, and the calls
        log ends with a whole line (a run stopped mid-write must not glue the next line onto it)."""
        self.read_text(ARTICLE)
        units = self.path / UNITS
        if units.exists() and not units.is_dir():
            raise RunDirError(f"{units} is not a folder; move it aside, then resume again")
        calls = self.path / CALLS
        if calls.is_file() and calls.stat().st_size:
            with self.writing(calls), open(calls, "rb+") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")

    # -- finished units (for resume) -------------------------------------------------------

    def save_unit(self, name: str, unit: dict[str, Any]) -> None:
        path = self.path / UNITS / f"{name}.json"
        with self.writing(path):
            path.parent.mkdir(exist_ok=True)
            write_json(path, unit)

    def load_unit(self, name: str) -> dict[str, Any] | None:
        """A finished unit (under its former name in an older run); None when there is none. A
        damaged one is a RunDirError naming it."""
        path = self.path / UNITS / f"{name}.json"
        if not path.is_file():
            path = self.path / UNITS / f"{_FORMER_UNIT_PREFIX}{name}.json"
        if not path.is_file():
            return None
        unit = read_json(path)
        if not isinstance(unit, dict):
            raise RunDirError(f"{path} is not a JSON object")
        return unit


@dataclass(frozen=True)
class Attempt:
    """One model attempt: a line of calls.jsonl. The model adapter fills it in; `line` is the format."""

    stage: str
    unit: str
    attempt: int
    outcome: str
    response_format: str
    model: str | None = None  # the model the request named (stages may use different ones)
    latency_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    cache_hit: bool = False
    finish_reason: str | None = None
    raw: str | None = None  # the reply's text, as it came
    usage_clamped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # what went wrong: `errors` or `error`
    time: float = field(default_factory=time.time)

    def line(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "time": self.time,
            "stage": self.stage,
            "unit": self.unit,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "model": self.model,
            "response_format": self.response_format,
            "latency_s": self.latency_s,
            "usage": asdict(self.usage),
            "cache_hit": self.cache_hit,
            "finish_reason": self.finish_reason,
            "raw": None,
        }
        if self.raw is not None:  # a lone surrogate is written as its escape, so the line is UTF-8
            entry["raw"] = self.raw[:RAW_KEEP].encode("utf-8", "backslashreplace").decode("utf-8")
            if len(self.raw) > RAW_KEEP:
                entry["raw_chars"] = len(self.raw)
        if self.usage_clamped:
            entry["usage_clamped"] = True
        return {**entry, **self.extra}


class RunRecord:
    """What one run records: the calls log and its usage totals, finished units, the manifest.

    With a run directory everything is written there as it happens; without one (a library call
    that records nothing) the calls are kept in memory, for the brief's usage figures.
    """

    def __init__(
        self, run_dir: RunDir | None = None, *, on_call: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.run_dir = run_dir
        self.on_call = on_call or (lambda line: None)
        self.calls: list[dict[str, Any]] = []
        self.created = created_stamp()
        self.resumed: dict[str, Any] | None = None
        self.timings: dict[str, float] = {}
        self.reused: list[str] = []

    @property
    def id(self) -> str | None:
        return self.run_dir.id if self.run_dir else None

    def resume(self, manifest: dict[str, Any]) -> None:
        """Carry on a recorded run: its creation time and calls so far are kept."""
        created = manifest.get("created")
        self.created = created if isinstance(created, str) and created else self.created
        self.resumed = {"status": manifest.get("status"), "at": utc_now()}
        self.calls = self.run_dir.calls() if self.run_dir else []

    # -- the calls log --------------------------------------------------------------------

    def log(self, attempt: Attempt) -> None:
        """The model client's attempt log: one line per attempt, written at once."""
        line = attempt.line()
        self.calls.append(line)
        if self.run_dir is not None:
            self.run_dir.append_call(line)
        self.on_call(line)

    def usage(self, stage: str | None = None, *, model: str | None = None, default_model: str = "") -> dict[str, int]:
        """Totals of the calls log, of one stage's calls, or of the calls that named `model` (a
        line written before calls named their model counts as `default_model`'s)."""
        calls = [
            c
            for c in self.calls
            if (stage is None or c["stage"] == stage) and (model is None or (c.get("model") or default_model) == model)
        ]
        # Clamped again here: a calls log written before clamping existed may hold negative counts.
        total = sum((clamp_usage(c["usage"])[0] for c in calls), Usage())
        return {
            "calls": sum(1 for c in calls if not c["cache_hit"]),
            "cache_hits": sum(1 for c in calls if c["cache_hit"]),
            **asdict(total),
        }

    def _usage_by_model(self, default_model: str) -> dict[str, dict[str, int]]:
        models = sorted({str(c.get("model") or default_model) for c in self.calls})
        return {name: self.usage(model=name, default_model=default_model) for name in models}

    def clamped_calls(self) -> int:
        """Calls whose token counts were not non-negative whole numbers (figures then approximate)."""
        return sum(1 for c in self.calls if c.get("usage_clamped") or clamp_usage(c["usage"])[1])

    # -- finished units -------------------------------------------------------------------

    def stored_output(self, name: str, inputs: str) -> Any | None:
        """A resumed run's stored output of unit `name` if it was computed from `inputs` (a digest);
        a damaged unit is a RunDirError naming it."""
        if self.resumed is None or self.run_dir is None:
            return None
        unit = self.run_dir.load_unit(name)
        if not unit or unit.get("inputs") != inputs:
            return None
        return unit.get("output")

    def save_unit(self, name: str, inputs: str, output: Any) -> None:
        if self.run_dir is not None:
            self.run_dir.save_unit(name, {"unit": name, "inputs": inputs, "output": output, "saved": utc_now()})

    # -- the manifest ---------------------------------------------------------------------

    def write_manifest(
        self,
        status: str,
        run: dict[str, Any],
        *,
        brief: dict[str, Any] | None = None,
        cost: tuple[float | None, str] | None = None,
        cost_by_stage: dict[str, Any] | None = None,
    ) -> None:
        """manifest.json: `run` (what the engine ran: article, model, endpoint, settings, fingerprint,
        nonce…) plus what the record knows: status, times, usage, cache hits, reused units, cost, summary."""
        if self.run_dir is None:
            return
        total = self.usage()
        self.run_dir.write_manifest(
            {
                "manifest_version": 1,
                "counterpoint_version": __version__,
                "run_id": self.run_dir.id,
                "status": status,
                "created": self.created,
                "updated": utc_now(),
                "resumed": self.resumed,
                **run,
                "timings_s": {**self.timings, "total": round(sum(self.timings.values()), 4)},
                "usage": {
                    "total": total,
                    "by_stage": {stage: self.usage(stage) for stage in STAGES},
                    "by_model": self._usage_by_model(str(run.get("model") or "")),
                },
                "cache": {
                    "hits": total["cache_hits"],
                    "hit_units": sorted({c["unit"] for c in self.calls if c["cache_hit"]}),
                },
                "reused_units": self.reused,
                "cost": (
                    {"usd": cost[0], "status": cost[1], "by_stage": cost_by_stage, "prices": "pipeline/pricing.py"}
                    if cost
                    else None
                ),
                "summary": _summary(brief, total, cost),
            }
        )


def _summary(
    brief: dict[str, Any] | None, total: dict[str, int], cost: tuple[float | None, str] | None
) -> dict[str, Any]:
    """The manifest's summary, what `counterpoint runs` lists without opening the brief."""
    claims = brief["claims"] if brief else []
    return {
        "claims": len(claims),
        "claims_ok": sum(1 for c in claims if c["status"] == "ok"),
        "claims_failed": sum(1 for c in claims if c["status"] == "failed"),
        "claims_refused": sum(1 for c in claims if c["status"] == "refused"),
        "synthesis": brief["synthesis"]["status"] if brief else None,
        "tokens": total["prompt_tokens"] + total["completion_tokens"],
        "cost_usd": cost[0] if cost else None,
        "cost_status": cost[1] if cost else None,
        "checks": brief["run"]["checks"]["total"] if brief else None,
    }


def find_run(runs_dir: Path, ref: str) -> RunDir:
    """A run from an id, a unique id prefix, 'latest', or a run directory's path."""
    as_path = Path(ref).expanduser()
    if ("/" in ref or os.sep in ref) and (as_path / MANIFEST).is_file():
        return RunDir(as_path)
    if ("/" in ref or os.sep in ref) and as_path.is_dir():
        raise RunDirError(
            f"{ref} is not a run directory (no {MANIFEST}); give a run's folder, an id from 'counterpoint runs', "
            "or 'latest'"
        )
    if ".." in ref or "/" in ref or os.sep in ref or not _SAFE_ID.match(ref):
        raise RunDirError(f"{ref!r} is not a run id; give an id from 'counterpoint runs', 'latest', or a run directory")
    if ref == "latest":
        return latest(runs_dir)
    ids = run_ids(runs_dir)
    if ref in ids:
        return RunDir(runs_dir / ref)
    matches = [run_id for run_id in ids if run_id.startswith(ref)]
    if len(matches) == 1:
        return RunDir(runs_dir / matches[0])
    if matches:
        raise RunDirError(f"{ref!r} matches {len(matches)} runs; give more of the id")
    raise RunDirError(f"no run {ref!r} in {runs_dir}; see 'counterpoint runs'")


def latest(runs_dir: Path) -> RunDir:
    """The run created last that has a readable manifest. A directory left without one (a run that
    failed before it started) is not a run to show or resume; ids order runs only to the second."""
    stamps = []
    for run_id in run_ids(runs_dir):
        created = _created(runs_dir / run_id / MANIFEST)
        if created is not None:
            stamps.append((created, run_id))
    if not stamps:
        raise RunDirError(f"there are no runs in {runs_dir}")
    return RunDir(runs_dir / max(stamps)[1])


def _created(manifest_path: Path) -> datetime | None:
    """When a run was created, from its manifest; None when the manifest cannot be read."""
    try:
        manifest = read_json(manifest_path)
    except RunDirError:
        return None
    if not isinstance(manifest, dict):
        return None
    try:
        created = datetime.fromisoformat(str(manifest.get("created")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # readable but undated: oldest
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def run_ids(runs_dir: Path) -> list[str]:
    """Run ids, newest first (ids start with a UTC timestamp)."""
    try:
        entries = [
            entry.name
            for entry in os.scandir(runs_dir)
            if entry.is_dir() and not entry.name.startswith(".") and entry.name not in NOT_RUNS
        ]
    except FileNotFoundError:
        return []
    return sorted(entries, reverse=True)


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """One summary per run, newest first, from each manifest alone (fast on hundreds of runs).

    A directory whose manifest is missing or unreadable is listed with status 'unknown', so a
    damaged run is visible rather than silently dropped.
    """
    rows = []
    for run_id in run_ids(runs_dir):
        try:
            manifest = read_json(runs_dir / run_id / MANIFEST)
        except RunDirError:
            manifest = None
        if not isinstance(manifest, dict):
            manifest = {"status": "unknown"}
        summary = _typed(manifest.get("summary"), dict) or {}
        article = _typed(manifest.get("article"), dict) or {}
        rows.append(
            {
                "id": run_id,
                "title": _typed(article.get("title"), str),
                "model": _typed(manifest.get("model"), str),
                "models": _stage_models(manifest.get("models")),
                "status": _typed(manifest.get("status"), str) or "unknown",
                "claims": _typed(summary.get("claims"), int),
                "tokens": _typed(summary.get("tokens"), int),
                "cost_usd": _typed(summary.get("cost_usd"), (int, float)),
                "cost_status": _typed(summary.get("cost_status"), str),
                "created": _typed(manifest.get("created"), str),
                "path": str(runs_dir / run_id),
            }
        )
    return rows


def _stage_models(value: Any) -> dict[str, str] | None:
    """A manifest's model per stage (runs before stage models have none)."""
    if not isinstance(value, dict):
        return None
    return {stage: model for stage, model in value.items() if isinstance(stage, str) and isinstance(model, str)}


def _typed(value: Any, kind: type | tuple[type, ...]) -> Any:
    """`value` if it has the type a listing expects (a damaged manifest's field is left out)."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def resume_command(run_dir: RunDir) -> str:
    """The command that continues `run_dir`, runnable as written (with --runs-dir unless default)."""
    if not _SAFE_ID.match(run_dir.id):  # a folder renamed by hand: only its path finds it again
        return shlex.join(["counterpoint", "run", "--resume", str(run_dir.path.resolve())])
    args = ["counterpoint", "run", "--resume", run_dir.id]
    if run_dir.path.parent != Path(defaults.RUNS_DIR):
        args += ["--runs-dir", str(run_dir.path.parent)]
    return shlex.join(args)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def created_stamp() -> str:
    """A run's creation time, precise enough to order runs started within the same second."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
