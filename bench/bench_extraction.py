"""Extraction yardstick: how much of each saved page's article text counterpoint keeps, and how much
else it lets in, scored as the article-extraction benchmarks score (word 4-shingles, precision,
recall and F1 per page, averaged), with refusals counted.

    python bench/bench_extraction.py            # every configuration, tuning and held-out pages
    COUNTERPOINT_SOURCE=/path/to/other/checkout python bench/bench_extraction.py   # another web.py

Pages and their hand-made ground truth are in bench/extraction/ (see its README). Tune extractor
choices on the pages listed under "tune" in split.json; the "held-out" figures are the ones to
report. A second, independent check: trafilatura's own test snippets (snippets.json), counted as
must-contain hits and must-not-contain misses.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The extractor measured: this checkout's, or another's (to compare a change with main's).
sys.path.insert(0, os.environ.get("COUNTERPOINT_SOURCE", str(ROOT)))

from pipeline import web  # noqa: E402
from pipeline.errors import InputError  # noqa: E402

DATA = ROOT / "bench" / "extraction"
SHINGLE = 4


def shingles(text: str) -> Counter[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < SHINGLE:
        return Counter([tuple(words)]) if words else Counter()
    return Counter(tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1))


def score(truth: str, got: str) -> tuple[float, float, float]:
    """(precision, recall, F1) of `got` against `truth`, on shingle multisets; empty output scores 0."""
    want, have = shingles(truth), shingles(got)
    common = sum((want & have).values())
    precision = common / sum(have.values()) if have else 0.0
    recall = common / sum(want.values()) if want else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def snippet_checks(name: str, got: str, snippets: dict[str, dict[str, list[str]]]) -> tuple[int, int, int, int]:
    """(must-contain found, must-contain total, must-not-contain absent, must-not-contain total)."""
    checks = snippets.get(name, {"contains": [], "excludes": []})
    found = sum(snippet in got for snippet in checks["contains"])
    absent = sum(snippet not in got for snippet in checks["excludes"])
    return found, len(checks["contains"]), absent, len(checks["excludes"])


def counterpoint(html: str, name: str) -> str:
    """What `counterpoint run page.html` would quote from (its article.txt)."""
    return web.from_html(html, name).text


def trafilatura_defaults(html: str, name: str) -> str:
    import trafilatura

    return trafilatura.extract(html) or ""


CONFIGURATIONS: dict[str, Callable[[str, str], str]] = {
    "counterpoint (web.py)": counterpoint,
    "trafilatura.extract defaults": trafilatura_defaults,
}


def main() -> None:
    split = json.loads((DATA / "split.json").read_text("utf-8"))
    snippets = json.loads((DATA / "snippets.json").read_text("utf-8"))
    for label, extract in CONFIGURATIONS.items():
        print(f"\n{label}")
        for part in ("tune", "held-out"):
            rows, refused, checks = [], 0, [0, 0, 0, 0]
            for name in split[part]:
                html = (DATA / "pages" / f"{name}.html").read_text("utf-8")
                truth = (DATA / "truth" / f"{name}.txt").read_text("utf-8")
                try:
                    got = extract(html, name)
                except InputError:
                    refused, got = refused + 1, ""
                rows.append(score(truth, got))
                checks = [a + b for a, b in zip(checks, snippet_checks(name, got, snippets), strict=True)]
                print(f"  {part:8} {name:32} P {rows[-1][0]:.3f} R {rows[-1][1]:.3f} F1 {rows[-1][2]:.3f}")
            mean = [sum(column) / len(rows) for column in zip(*rows, strict=True)]
            print(
                f"  {part:8} {len(rows)} pages: P {mean[0]:.3f} R {mean[1]:.3f} F1 {mean[2]:.3f}, {refused} refused;"
                f" snippets {checks[0]}/{checks[1]} present, {checks[2]}/{checks[3]} kept out"
            )


if __name__ == "__main__":
    main()
