"""The run directory: ids, layout, manifest, calls log, finished units, atomic writes, listing.

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

import contextlib
import fcntl
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import RunDirError

DEFAULT_RUNS_DIR = "runs"
LOCK_NAME = ".lock"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; briefs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def slugify(title: str | None, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", (title or "article").lower()).strip("-")
    return (words[:limit].rstrip("-") or "article")


def new_run_id(title: str | None, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{slugify(title)}-{secrets.token_hex(3)}"


def check_runs_dir(runs_dir: Path) -> None:
    """Fail before any model call when the runs directory cannot be written."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=runs_dir, prefix=".write-test-", delete=True)
        probe.close()
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
        path = runs_dir / new_run_id(title)
        (path / "units").mkdir(parents=True)
        return cls(path)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run for the length of the block, so two processes never run it at once.

        flock is released by the kernel when the process dies, however it dies: a killed run
        never leaves a stale lock. Re-entrant for this object (the CLI locks before starting
        llama.cpp, the library again around the run).
        """
        if self._lock_fd is not None:
            yield
            return
        try:
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot lock run {self.id} ({exc.strerror}); check that {self.path} is a run "
                              "directory you can write to") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                raise RunDirError(f"run {self.id} is already running (pid {holder}); wait for it to finish, "
                                  "or stop it, before resuming it") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            self._lock_fd = fd
            try:
                yield
            finally:
                self._lock_fd = None
        finally:
            os.close(fd)  # releases the lock

    # -- records --------------------------------------------------------------------------

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text)

    def read_text(self, name: str) -> str:
        return (self.path / name).read_text(encoding="utf-8")

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json(self.path / "manifest.json", manifest)

    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.read_text("manifest.json"))
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{self.path} has no readable manifest.json ({exc}); is it a counterpoint run?") from None

    def append_call(self, record: dict[str, Any]) -> None:
        """One line per attempt, flushed at once so a killed run keeps its log."""
        with open(self.path / "calls.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def calls(self) -> list[dict[str, Any]]:
        """The calls log; a line cut short by a kill is skipped."""
        records = []
        try:
            lines = self.read_text("calls.jsonl").splitlines()
        except FileNotFoundError:
            return records
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    # -- finished units (for resume) -------------------------------------------------------

    def save_unit(self, name: str, unit: dict[str, Any]) -> None:
        (self.path / "units").mkdir(exist_ok=True)
        write_json(self.path / "units" / f"{name}.json", unit)

    def load_unit(self, name: str) -> dict[str, Any] | None:
        try:
            unit = json.loads((self.path / "units" / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return unit if isinstance(unit, dict) else None


def resolve(runs_dir: Path, ref: str) -> RunDir:
    """A run from an id, a unique id prefix, 'latest', or a run directory's path."""
    as_path = Path(ref).expanduser()
    if ("/" in ref or os.sep in ref) and (as_path / "manifest.json").is_file():
        return RunDir(as_path)
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
        created = _created(runs_dir / run_id / "manifest.json")
        if created is not None:
            stamps.append((created, run_id))
    if not stamps:
        raise RunDirError(f"there are no runs in {runs_dir}")
    return RunDir(runs_dir / max(stamps)[1])


def _created(manifest_path: Path) -> datetime | None:
    """When a run was created, from its manifest; None when the manifest cannot be read."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(manifest, dict):
        return None
    try:
        created = datetime.fromisoformat(str(manifest.get("created")))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)  # readable but undated: oldest
    return created if created.tzinfo else created.replace(tzinfo=timezone.utc)


def run_ids(runs_dir: Path) -> list[str]:
    """Run ids, newest first (ids start with a UTC timestamp)."""
    try:
        entries = [entry.name for entry in os.scandir(runs_dir)
                   if entry.is_dir() and not entry.name.startswith(".")]
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
            manifest = json.loads((runs_dir / run_id / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
        if not isinstance(manifest, dict):
            manifest = {"status": "unknown"}
        summary = manifest.get("summary") if isinstance(manifest.get("summary"), dict) else {}
        article = manifest.get("article") if isinstance(manifest.get("article"), dict) else {}
        rows.append({
            "id": run_id,
            "title": article.get("title"),
            "model": manifest.get("model"),
            "status": manifest.get("status") or "unknown",
            "claims": summary.get("claims"),
            "tokens": summary.get("tokens"),
            "cost_usd": summary.get("cost_usd"),
            "cost_status": summary.get("cost_status"),
            "created": manifest.get("created"),
            "path": str(runs_dir / run_id),
        })
    return rows


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def created_stamp() -> str:
    """A run's creation time, precise enough to order runs started within the same second."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
