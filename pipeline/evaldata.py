"""The eval's inputs and record: gold items from a PERSPECTRUM-format JSONL file, and the eval
directory (eval.json, items/<id>.json written atomically as each item finishes, report.json/.md).

A directory is resumable: an item whose stored result is complete and was made from the same
item is never asked again; one that failed is asked again (keeping any rebuttals it already has).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, ResumeMismatch, RunDirError
from .files import atomic_write, json_text
from .runs import read_json

MAX_DATA_BYTES = 50_000_000
MAX_CLUSTERS = 24  # the judge schema's bound on perspectives (a contract test checks they agree)
MANIFEST = "eval.json"
ITEMS = "items"
LOCK = ".lock"


@dataclass(frozen=True)
class Item:
    """One claim and its gold counter-perspective clusters (each a list of paraphrases)."""

    id: str
    claim: str
    clusters: list[list[str]]
    index: int  # position in the data file; the item's presentation seed is seed + index

    def digest(self) -> str:
        raw = json.dumps([self.id, self.claim, self.clusters], ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def load_items(path: Path) -> tuple[list[Item], str]:
    """Every item of a PERSPECTRUM-format file, and the file's sha256. One line per item:
    {"id": str, "claim": str, "undermine": [[paraphrase, ...], ...], ...}; other keys are ignored."""
    try:
        if path.stat().st_size > MAX_DATA_BYTES:
            raise InputError(f"{path} is larger than {MAX_DATA_BYTES:,} bytes; give a smaller JSONL file")
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror}); give a JSONL file of eval items") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; give a JSONL file of eval items") from None
    items: list[Item] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item = _item(line, f"{path} line {number}", len(items))
        if item.id in seen:
            raise InputError(f"{path} line {number}: id {item.id!r} is used twice; give each item its own id")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise InputError(f"{path} holds no items; give one JSON object a line (see evals/README.md)")
    return items, hashlib.sha256(raw).hexdigest()


def _item(line: str, where: str, index: int) -> Item:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        raise InputError(f"{where} is not JSON; give one JSON object a line (see evals/README.md)") from None
    if not isinstance(data, dict):
        raise InputError(f"{where} is not a JSON object; give one JSON object a line")
    item_id, claim, clusters = data.get("id"), data.get("claim"), data.get("undermine")
    if not isinstance(item_id, str) or not item_id.strip():
        raise InputError(f"{where}: 'id' must be a non-empty string")
    if not isinstance(claim, str) or not claim.strip():
        raise InputError(f"{where}: 'claim' must be a non-empty string")
    if (
        not isinstance(clusters, list)
        or not clusters
        or not all(isinstance(c, list) and c and all(isinstance(p, str) and p.strip() for p in c) for c in clusters)
    ):
        raise InputError(
            f"{where}: 'undermine' must be a non-empty list of clusters, each a non-empty list of paraphrases"
        )
    if len(clusters) > MAX_CLUSTERS:
        raise InputError(f"{where}: {len(clusters)} 'undermine' clusters, more than the judge takes ({MAX_CLUSTERS})")
    return Item(item_id, claim.strip(), [[p.strip() for p in cluster] for cluster in clusters], index)


class EvalDir:
    """One eval's directory; every file is written atomically (files.py)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def open(self, manifest: dict[str, Any]) -> None:
        """Start the directory, or check that a recorded one was made with the same fingerprint (its
        record then says what this run was given: the data file, the limit)."""
        recorded = self.manifest()
        if recorded is None:
            if self.path.is_dir() and any(entry.name != LOCK for entry in self.path.iterdir()):
                raise RunDirError(f"{self.path} is not empty and holds no {MANIFEST}; give a new --out")
            (self.path / ITEMS).mkdir(parents=True, exist_ok=True)
            self._write(MANIFEST, manifest)
            return
        old, new = recorded.get("fingerprint") or {}, manifest["fingerprint"]
        changed = differences(old, new)
        if changed:
            raise ResumeMismatch(
                f"{self.path} was evaluated with other settings ({', '.join(changed)}); "
                "give the options it was started with, or a new --out"
            )
        (self.path / ITEMS).mkdir(parents=True, exist_ok=True)
        self._write(MANIFEST, {**manifest, "created": recorded.get("created"), "continued": manifest.get("created")})

    def manifest(self) -> dict[str, Any] | None:
        """eval.json, or None when there is none; a damaged one is a one-line error."""
        path = self.path / MANIFEST
        if not path.is_file():
            return None
        return self._read(path)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory for the block: two evals never write the same items at once."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot write to {self.path} ({exc.strerror}); give a writable --out") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirError(f"{self.path} is in use by another counterpoint eval; wait for it") from None
            yield
        finally:
            os.close(fd)

    def load(self, item: Item) -> dict[str, Any] | None:
        """The stored result for `item`, or None when there is none or it was made from other data."""
        path = self._item_path(item)
        if not path.is_file():
            return None
        stored = self._read(path)
        return stored if stored.get("item_digest") == item.digest() else None

    def save(self, item: Item, result: dict[str, Any]) -> None:
        self._write(f"{ITEMS}/{self._item_path(item).name}", {**result, "item_digest": item.digest()})

    def write_report(self, report: dict[str, Any], markdown: str) -> None:
        self._write("report.json", report)
        self._write_text("report.md", markdown)

    def _item_path(self, item: Item) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", item.id)[:60].strip("._") or "item"
        return self.path / ITEMS / f"{slug}-{hashlib.sha256(item.id.encode('utf-8')).hexdigest()[:8]}.json"

    def _write(self, name: str, data: dict[str, Any]) -> None:
        self._write_text(name, json_text(data, indent=2) + "\n")

    def _write_text(self, name: str, text: str) -> None:
        try:
            atomic_write(self.path / name, text)
        except OSError as exc:
            raise RunDirError(
                f"cannot write {self.path / name} ({exc.strerror}); free space or fix permissions, "
                f"then rerun with --out {self.path} to continue"
            ) from None

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            data = read_json(path)
        except RunDirError:
            raise RunDirError(f"{path} is damaged or unreadable; delete it to redo that part") from None
        if not isinstance(data, dict):
            raise RunDirError(f"{path} is damaged (not a JSON object); delete it to redo that part")
        return data


def differences(old: Any, new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fingerprint entries that differ (a damaged record differs in everything)."""
    old = old if isinstance(old, dict) else {}
    changed = []
    for key in sorted(old.keys() | new.keys()):
        if isinstance(new.get(key), dict):
            changed += differences(old.get(key), new[key], f"{prefix}{key}.")
        elif old.get(key) != new.get(key):
            changed.append(f"{prefix}{key}")
    return changed


def read_report(ref: Path) -> dict[str, Any]:
    """A report.json, given it or its eval directory (for --compare)."""
    path = ref / "report.json" if ref.is_dir() else ref
    if not path.is_file():
        raise InputError(f"{ref} holds no report.json; give an eval directory written by counterpoint eval")
    try:
        report = EvalDir._read(path)
    except RunDirError:  # not ours to delete: whatever it is, it is not a report
        raise InputError(f"{path} is not an eval report (not JSON); give a counterpoint eval directory") from None
    if not isinstance(report.get("per_item"), list):
        raise InputError(f"{path} is not an eval report (no per_item list); give a counterpoint eval directory")
    return report
