"""The review app (`counterpoint serve`): a Starlette application over a runs directory.

Pages: `/` lists runs and batches (filter, paging) and `/runs/<id>` is a run's review page (the brief
page with accept / reject / edit and a note on every rebuttal, a note on every claim). The JSON API
the page uses, and scripts can too: `GET /api/runs`, `GET /api/runs/<id>`, `GET|POST
/api/runs/<id>/review`. `guard.Guard` checks Host and token before any of these run. The app writes
nothing but review.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..batch_record import BatchDir, batch_ids
from ..brief import check_brief
from ..brief.html import render_html, template
from ..errors import CounterpointError, RunDirError
from ..pricing import listed_cost
from ..resources import resource_dir
from ..runs import BATCHES_DIR, RunDir, list_runs, parse_json, read_json, run_ids
from .guard import HEADER, PAGE_CSP, Guard
from .store import InvalidReview, StaleRevision, listing_progress, load_review, progress, update_review

PER_PAGE = 50
MAX_BODY = 1_000_000  # bytes of a POSTed review change


@dataclass(frozen=True)
class Settings:
    runs_dir: Path
    token: str
    reviewer: str | None


def create_app(runs_dir: Path, *, token: str, hosts: list[str], reviewer: str | None) -> Starlette:
    """The application, guarded: only `hosts` (host:port as browsers send it) and `token` get in."""
    settings = Settings(runs_dir, token, reviewer)
    routes = [
        Route("/", index),
        Route("/runs/{run_id}", review_page),
        Route("/static/review.js", script),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/runs/{run_id}/review", api_review, methods=["GET", "POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=token, hosts=hosts)],
        exception_handlers={HTTPException: http_error, CounterpointError: broken_record},
    )
    app.state.settings = settings
    return app


async def http_error(request: Request, exc: Exception) -> Response:
    """404, 405 and the like: JSON for the API, a line of text for pages."""
    status, detail = (exc.status_code, exc.detail) if isinstance(exc, HTTPException) else (500, "internal error")
    return _answer(request, status, detail)


def _answer(request: Request, status: int, detail: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": detail}, status_code=status)
    return PlainTextResponse(f"{status}: {detail}\n", status_code=status)


async def broken_record(request: Request, exc: Exception) -> Response:
    """A record that cannot be read (a damaged review.json or article.txt): its one-line error, and
    nothing written, so a damaged review is never replaced by a new one."""
    return _answer(request, 500, str(exc))


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _run(request: Request) -> tuple[RunDir, dict[str, Any]]:
    """The run the path names and its brief. Only a name found in the runs directory is used, so
    `..`, slashes and other paths cannot reach outside it; anything else is 404."""
    runs_dir, run_id = _settings(request).runs_dir, request.path_params["run_id"]
    if run_id not in run_ids(runs_dir):  # run_ids leaves out runs/batches/ and runs/evals/
        raise HTTPException(404, f"no run {run_id!r} in the runs directory")
    run_dir = RunDir(runs_dir / run_id)
    try:
        brief = run_dir.read_brief()
    except RunDirError as exc:
        raise HTTPException(404, str(exc)) from None
    problems = check_brief(brief, None)  # as Brief.load checks it: older briefs pass
    if problems:  # every page and write below relies on the brief's shape
        raise RunDirError(
            f"{run_dir.brief_path} is damaged ({problems[0]}); check it with 'counterpoint validate {run_id}'"
        )
    return run_dir, brief


def listing(request: Request) -> dict[str, Any]:
    """Runs (newest first) and batches, filtered by `q` (id, title or model) and `status`, one page."""
    runs_dir, params = _settings(request).runs_dir, request.query_params
    query, status = params.get("q", "").strip().lower(), params.get("status", "").strip()
    rows = list_runs(runs_dir)
    if query:
        rows = [r for r in rows if any(query in (r[key] or "").lower() for key in ("id", "title", "model"))]
    if status:
        rows = [r for r in rows if r["status"] == status]
    pages = max(1, math.ceil(len(rows) / PER_PAGE))
    page = min(max(1, int(params["page"]) if params.get("page", "").isdigit() else 1), pages)
    shown = rows[(page - 1) * PER_PAGE : page * PER_PAGE]
    for row in shown:
        row.pop("path")
        row["cost"] = listed_cost(row["cost_usd"], row["cost_status"])
        row["review"] = listing_progress(runs_dir / row["id"])
    return {"runs": shown, "batches": _batches(runs_dir), "page": page, "pages": pages, "total": len(rows)}


def _batches(runs_dir: Path) -> list[dict[str, Any]]:
    """The batch records (batch_record.py) from their manifests: status, last update and how many
    articles ended how; a damaged manifest shows as unknown."""
    rows = []
    for batch_id in batch_ids(runs_dir):
        try:
            read = read_json(BatchDir(runs_dir / BATCHES_DIR / batch_id).manifest_path)
        except RunDirError:
            read = None
        manifest: dict[str, Any] = read if isinstance(read, dict) else {}
        totals = manifest["totals"] if isinstance(manifest.get("totals"), dict) else {}
        counts = {key: totals.get(key) for key in ("articles", "complete", "partial", "failed")}
        status, updated = manifest.get("status"), manifest.get("updated")
        rows.append(
            {
                "id": batch_id,
                "status": status if isinstance(status, str) else "unknown",
                "updated": updated if isinstance(updated, str) else None,
                **{key: value if isinstance(value, int) else None for key, value in counts.items()},
            }
        )
    return rows


def index(request: Request) -> Response:
    params = request.query_params
    page = template("runs.html.j2").render(
        **listing(request), q=params.get("q", ""), status=params.get("status", ""), csp=PAGE_CSP
    )
    return HTMLResponse(page)


def review_page(request: Request) -> Response:
    run_dir, brief = _run(request)
    settings = _settings(request)
    article = run_dir.article_text()
    extra = {
        "review": load_review(run_dir.path, brief),
        "run_id": run_dir.id,
        "token": settings.token,
        "token_header": HEADER,
        "reviewer": settings.reviewer,
        "csp": PAGE_CSP,
    }
    return HTMLResponse(render_html(brief, article, name="review.html.j2", extra=extra))


def script(request: Request) -> Response:
    return FileResponse(resource_dir("templates") / "review.js", media_type="text/javascript")


def api_runs(request: Request) -> Response:
    return JSONResponse(listing(request))


def api_run(request: Request) -> Response:
    run_dir, brief = _run(request)
    review = load_review(run_dir.path, brief)
    return JSONResponse({"id": run_dir.id, "brief": brief, "review": progress(review)})


async def api_review(request: Request) -> Response:
    run_dir, brief = await run_in_threadpool(_run, request)
    if request.method == "GET":
        return JSONResponse(await run_in_threadpool(load_review, run_dir.path, brief))
    body = await request.body()
    if len(body) > MAX_BODY:
        return JSONResponse({"error": f"a review change is at most {MAX_BODY:,} bytes"}, status_code=413)
    try:
        change = _json(body)
        review = await run_in_threadpool(update_review, run_dir.path, brief, change, _settings(request).reviewer)
    except InvalidReview as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except StaleRevision as exc:
        return JSONResponse({"error": str(exc), "revision": exc.current}, status_code=409)
    return JSONResponse(review)


def _json(body: bytes) -> Any:
    try:
        return parse_json(body.decode("utf-8"), "the request body")
    except (UnicodeDecodeError, RunDirError) as exc:
        raise InvalidReview(f"the body is not JSON ({exc})") from None
