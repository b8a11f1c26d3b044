"""Benchmark `counterpoint batch`: many articles in one process against FakeOpenAIServer.

    .venv/bin/python bench/bench_batch.py [--latency 0.3] [--articles 20] [--many 200] [--concurrency 16]

It writes `--many` variants of seeds/putin-assad-syria.txt (each under its own title line, so the
seed script's quotes hold and no reply comes from the cache), then runs the installed console
script in a child process twice: on the first `--articles` of them and on all `--many`. Each
figure of issue 14 is printed beside its target. Not a test: the figures vary with the load.

How it measures:
- The model path is the fake server's own clock: from the first request's arrival to the last
  answer. Its floor is what the endpoint needs at that concurrency: calls × latency ÷ concurrency.
- CPU and peak RSS are the child's own, from os.wait4's rusage (waiting for the model uses no CPU).
  CPU per article is the difference between the two batches divided by the difference in
  articles, so the one-time start-up (interpreter, imports) is not spread over the articles.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_pipeline import Child, run_child  # noqa: E402  (the same child-process measurement)

from pipeline.testing import FakeOpenAIServer, ReceivedRequest, max_in_flight, scripted_handler  # noqa: E402

SEED = ROOT / "seeds" / "putin-assad-syria.txt"
SEED_SCRIPT = ROOT / "tests" / "data" / "seed_script.json"
BIN = Path(sys.executable).parent
KEY = "sk-bench-not-a-real-key"

# Targets from issue 14.
PATH_FACTOR = 1.5  # model path ≤ 1.5 × calls × latency ÷ concurrency
CPU_PER_ARTICLE = 0.15  # seconds of CPU per article in a batch process
PEAK_RSS_MB = 150.0  # for --many articles


def write_articles(folder: Path, count: int) -> None:
    seed = SEED.read_text(encoding="utf-8")
    folder.mkdir(parents=True)
    for n in range(1, count + 1):
        (folder / f"oped-{n:04d}.txt").write_text(f"Op-ed {n:04d}: {seed}", encoding="utf-8")


def batch(
    server: FakeOpenAIServer, folder: Path, concurrency: int, workdir: Path
) -> tuple[Child, list[ReceivedRequest]]:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    for name in ("OPENAI_BASE_URL", "COUNTERPOINT_CONCURRENCY", "COUNTERPOINT_CACHE_DIR", "COUNTERPOINT_RUNS_DIR"):
        env.pop(name, None)
    seen = len(server.requests)
    child = run_child(
        [
            str(BIN / "counterpoint"),
            "batch",
            str(folder),
            "--base-url",
            server.base_url,
            "--runs-dir",
            str(workdir / "runs"),
            "--concurrency",
            str(concurrency),
            "--no-cache",
            "--quiet",
        ],
        env,
        workdir,
    )
    if child.exit_code != 0:
        raise SystemExit(f"counterpoint batch failed ({child.exit_code}):\n{child.stderr}")
    return child, server.requests[seen:]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per model call")
    parser.add_argument("--articles", type=int, default=20, help="articles in the timed batch")
    parser.add_argument("--many", type=int, default=200, help="articles in the batch whose peak RSS is checked")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    script = json.loads(SEED_SCRIPT.read_text(encoding="utf-8"))
    with (
        tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp,
        FakeOpenAIServer(scripted_handler(script), latency=args.latency) as server,
    ):
        workdir = Path(tmp)
        write_articles(workdir / "few", args.articles)
        write_articles(workdir / "many", args.many)
        few, requests = batch(server, workdir / "few", args.concurrency, workdir)
        many, _ = batch(server, workdir / "many", args.concurrency, workdir)

    calls = len(requests)
    path = max(r.answered or r.received for r in requests) - min(r.received for r in requests)
    floor = calls * args.latency / args.concurrency
    per_article = (many.cpu - few.cpu) / (args.many - args.articles)
    print(
        f"{args.articles} articles, {calls} calls, {args.latency * 1000:.0f} ms per call, "
        f"--concurrency {args.concurrency} (most in flight at the server: {max_in_flight(requests)})"
    )
    rows = [
        (
            "model path (first request → last answer)",
            f"{path:.2f} s = {path / floor:.2f} × floor {floor:.2f} s",
            f"≤ {PATH_FACTOR} × floor",
            path <= PATH_FACTOR * floor,
        ),
        ("wall (whole process)", f"{few.wall:.2f} s", "", None),
        (
            "CPU per article",
            f"{per_article:.3f} s ({few.cpu:.2f} s for {args.articles}, {many.cpu:.2f} s for {args.many})",
            f"< {CPU_PER_ARTICLE} s",
            per_article < CPU_PER_ARTICLE,
        ),
        (
            f"peak RSS, {args.many} articles",
            f"{many.max_rss_mb:.0f} MB ({few.max_rss_mb:.0f} MB for {args.articles})",
            f"< {PEAK_RSS_MB:.0f} MB",
            many.max_rss_mb < PEAK_RSS_MB,
        ),
        (f"wall, {args.many} articles", f"{many.wall:.1f} s", "", None),
    ]
    for label, measured, target, ok in rows:
        mark = "" if ok is None else f"  [{verdict(ok)}]"
        print(f"  {label:<42} {measured:<52} {target}{mark}")


if __name__ == "__main__":
    main()
