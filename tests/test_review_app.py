"""The review app's routes, its guard (Host, token, cookie, header) and review.json writes: Starlette's
TestClient for the routes, and `counterpoint serve` in a real process for the whole path."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from pipeline.review import app as review_app
from pipeline.review.app import create_app
from pipeline.review.guard import COOKIE, CSP, HEADER, PAGE_CSP

from .conftest import read_brief, run_subprocess
from .htmltree import parse
from .review_helpers import Served, copy_run, make_run, older_brief, rebuttals

TOKEN = "t0ken-for-the-tests-3f9a2c71d5e8"
HOST = "testserver"  # TestClient's Host header


@pytest.fixture
def run_dir(cli) -> Path:
    return make_run(cli)


@pytest.fixture
def client(run_dir: Path) -> TestClient:
    app = create_app(run_dir.parent, token=TOKEN, hosts=[HOST], reviewer="Ana Editor")
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def api(client: TestClient) -> TestClient:
    client.headers[HEADER] = TOKEN
    return client


def routes(run_id: str) -> list[str]:
    return [
        "/",
        f"/runs/{run_id}",
        "/static/review.js",
        "/api/runs",
        f"/api/runs/{run_id}",
        f"/api/runs/{run_id}/review",
    ]


# -- the guard -------------------------------------------------------------------------------


def test_every_route_needs_the_token_and_every_answer_has_a_csp(client: TestClient, run_dir: Path) -> None:
    for path in routes(run_dir.name):
        bare = client.get(path)
        assert bare.status_code == 401, path
        assert bare.headers["content-security-policy"] == CSP
        for wrong in ({"headers": {HEADER: "nope"}}, {"params": {"token": "nope"}}):
            refused = client.get(path, **wrong)  # type: ignore[arg-type]
            assert refused.status_code == 403, (path, wrong)
            assert refused.headers["content-security-policy"] == CSP
        client.cookies.set(COOKIE, "nope")
        assert client.get(path).status_code == 401, path
        client.cookies.clear()
        ok = client.get(path, headers={HEADER: TOKEN})
        assert ok.status_code == 200, (path, ok.text)
        assert ok.headers["content-security-policy"] == CSP and ok.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP


def test_the_token_in_the_address_sets_a_strict_httponly_cookie_and_leaves_the_address(
    client: TestClient, run_dir: Path
) -> None:
    first = client.get(f"/runs/{run_dir.name}", params={"token": TOKEN, "view": "x"})
    assert first.status_code == 303
    assert first.headers["location"] == f"/runs/{run_dir.name}?view=x", "the token leaves the address"
    cookie = first.headers["set-cookie"].lower()
    assert f"{COOKIE}={TOKEN}".lower() in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert client.get(f"/runs/{run_dir.name}").status_code == 200, "the cookie lets the page in"
    assert client.get("/api/runs").status_code == 200
    # A write with the cookie alone (what a cross-site form would send) is refused: it needs the header.
    posted = client.post(f"/api/runs/{run_dir.name}/review", json={"decisions": {}})
    assert posted.status_code == 403 and HEADER in posted.json()["error"]
    assert not (run_dir / "review.json").exists()
    # A token in the address of a write is refused too.
    assert client.post(f"/api/runs/{run_dir.name}/review", params={"token": TOKEN}, json={}).status_code == 403


def test_a_foreign_host_header_is_refused_whatever_the_token(client: TestClient, run_dir: Path) -> None:
    for host in ("evil.example", "evil.example:8765", "localhost", "127.0.0.1.nip.io", ""):
        for path in routes(run_dir.name):
            answer = client.get(path, headers={"host": host, HEADER: TOKEN})
            assert answer.status_code == 403, (host, path)
            assert answer.headers["content-security-policy"] == CSP
    posted = client.post(
        f"/api/runs/{run_dir.name}/review",
        headers={"host": "evil.example", HEADER: TOKEN},
        json={"decisions": {rebuttals(run_dir)[0]["id"]: {"decision": "accept"}}},
    )
    assert posted.status_code == 403 and not (run_dir / "review.json").exists()


def test_run_ids_cannot_reach_outside_the_runs_dir(api: TestClient, run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "brief.json").write_text("{}")
    (run_dir.parent / "batches").mkdir()
    half = run_dir.parent / "20990101T000000Z-no-brief-aaaaaa"
    half.mkdir()
    # httpx would resolve a literal ".." itself; the real-server test sends those as they are.
    for run_id in (
        "..%2Fsecret",
        "%2e%2e",
        "%2E%2E%2Fsecret",
        "secret",
        "batches",
        run_dir.name[:20],
        half.name,
        "nope",
    ):
        for path in (f"/runs/{run_id}", f"/api/runs/{run_id}", f"/api/runs/{run_id}/review"):
            answer = api.get(path)
            assert answer.status_code == 404, (path, answer.status_code)
            assert "secret" not in answer.text or "no run" in answer.text
    assert api.post("/api/runs/..%2Fsecret/review", json={}).status_code == 404
    assert not (tmp_path / "secret" / "review.json").exists()
    assert api.get("/api/runs/nope").json()["error"].startswith("no run 'nope'")


# -- the API ----------------------------------------------------------------------------------


def test_api_runs_lists_runs_with_review_progress_filter_and_pages(
    api: TestClient, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_run(run_dir, "20200101T000000Z-older-aaaaaa", "An older piece on ports", status="partial")
    copy_run(run_dir, "20100101T000000Z-oldest-bbbbbb", "The oldest piece on ports")
    ids = [r["id"] for r in rebuttals(run_dir)]
    assert api.post(f"/api/runs/{run_dir.name}/review", json={"decisions": {ids[0]: {"decision": "accept"}}}).is_success

    listed = api.get("/api/runs").json()
    assert [r["id"] for r in listed["runs"]] == [
        run_dir.name,
        "20200101T000000Z-older-aaaaaa",
        "20100101T000000Z-oldest-bbbbbb",
    ]
    assert listed["total"] == 3 and listed["pages"] == 1
    first = listed["runs"][0]
    assert first["title"].startswith("Russia may be leaving Syria") and first["status"] == "complete"
    assert first["cost"].startswith("$") and first["created"] and "path" not in first
    assert first["review"] == {"decided": 1, "total": len(ids), "accept": 1, "reject": 0, "edit": 0}
    assert listed["runs"][1]["review"] is None

    assert [r["id"] for r in api.get("/api/runs", params={"q": "PORTS"}).json()["runs"]] == [
        "20200101T000000Z-older-aaaaaa",
        "20100101T000000Z-oldest-bbbbbb",
    ]
    assert [r["id"] for r in api.get("/api/runs", params={"status": "partial"}).json()["runs"]] == [
        "20200101T000000Z-older-aaaaaa"
    ]
    monkeypatch.setattr(review_app, "PER_PAGE", 2)
    second = api.get("/api/runs", params={"page": "2"}).json()
    assert (
        second["page"] == 2
        and second["pages"] == 2
        and [r["id"] for r in second["runs"]] == ["20100101T000000Z-oldest-bbbbbb"]
    )
    assert api.get("/api/runs", params={"page": "99"}).json()["page"] == 2


def test_api_run_returns_the_brief_and_its_review_progress(api: TestClient, run_dir: Path) -> None:
    answer = api.get(f"/api/runs/{run_dir.name}").json()
    assert answer["id"] == run_dir.name and answer["brief"] == read_brief(run_dir) and answer["review"]["decided"] == 0


def post(api: TestClient, run_dir: Path, change: dict[str, Any]) -> Any:
    return api.post(f"/api/runs/{run_dir.name}/review", json=change)


def test_decisions_and_notes_land_in_review_json_and_merge(api: TestClient, run_dir: Path) -> None:
    first, second, third = (r["id"] for r in rebuttals(run_dir)[:3])
    empty = api.get(f"/api/runs/{run_dir.name}/review").json()
    assert empty["revision"] == 0 and empty["decisions"] == {} and empty["rebuttals_total"] == len(rebuttals(run_dir))

    saved = post(
        api,
        run_dir,
        {
            "decisions": {
                first: {"decision": "accept", "note": "Solid; cite the base treaty."},
                second: {"decision": "reject"},
            },
            "claim_notes": {"C1": "Check the date of the drawdown."},
            "revision": 0,
        },
    )
    assert saved.status_code == 200, saved.text
    stored = json.loads((run_dir / "review.json").read_text(encoding="utf-8"))
    assert stored == saved.json() == api.get(f"/api/runs/{run_dir.name}/review").json()
    assert stored["revision"] == 1 and stored["reviewer"] == "Ana Editor" and stored["updated"]
    assert stored["decisions"][first]["decision"] == "accept"
    assert stored["decisions"][first]["note"] == "Solid; cite the base treaty."
    assert stored["decisions"][second] | {"updated": None} == {
        "decision": "reject",
        "note": None,
        "text": None,
        "reviewer": "Ana Editor",
        "updated": None,
    }
    assert stored["claim_notes"]["C1"]["note"] == "Check the date of the drawdown."

    # Merging: a field left out is kept, a decision of null clears it; a script may leave out the revision.
    merged = post(api, run_dir, {"decisions": {first: {"note": "Cite the 2017 lease."}, second: {"decision": None}}})
    assert merged.status_code == 200
    review = merged.json()
    assert review["revision"] == 2
    assert (
        review["decisions"][first]["decision"] == "accept"
        and review["decisions"][first]["note"] == "Cite the 2017 lease."
    )
    assert second not in review["decisions"], "no decision and no note: the entry goes"
    edited = post(
        api,
        run_dir,
        {"decisions": {third: {"decision": "edit", "text": "A tighter version."}}, "claim_notes": {"C1": ""}},
    )
    review = edited.json()
    assert review["decisions"][third]["text"] == "A tighter version." and review["claim_notes"] == {}
    assert review["revision"] == 3
    # The brief itself never changes.
    assert read_brief(run_dir)["claims"][0]["rebuttals"] == [
        {key: value for key, value in r.items() if key != "claim"} for r in rebuttals(run_dir) if r["claim"] == "C1"
    ]


def test_a_stale_revision_gets_409_and_writes_nothing(api: TestClient, run_dir: Path) -> None:
    first, second = (r["id"] for r in rebuttals(run_dir)[:2])
    assert post(api, run_dir, {"decisions": {first: {"decision": "accept"}}, "revision": 0}).status_code == 200
    before = (run_dir / "review.json").read_bytes()
    stale = post(
        api, run_dir, {"decisions": {first: {"decision": "reject"}, second: {"decision": "accept"}}, "revision": 0}
    )
    assert stale.status_code == 409
    assert stale.json()["revision"] == 1 and "reload" in stale.json()["error"]
    assert (run_dir / "review.json").read_bytes() == before
    assert post(api, run_dir, {"decisions": {second: {"decision": "accept"}}, "revision": 1}).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"decisions": {"C9-R1": {"decision": "accept"}}}, "not in this brief: C9-R1"),
        ({"claim_notes": {"C9": "x"}}, "not in this brief: C9"),
        ({"decisions": {"C1-R1": {"decision": "edit"}}}, "an edit needs the edited text"),
        ({"decisions": {"C1-R1": {"decision": "maybe"}}}, "is not one of"),
        ({"decisions": {"C1-R1": {"verdict": "accept"}}}, "Additional properties"),
        ({"decisions": {"../x": {"decision": "accept"}}}, "does not match"),
        ({"revision": "1"}, "is not of type"),
        ([], "is not of type 'object'"),
    ],
)
def test_a_bad_change_is_400_with_the_reason(api: TestClient, run_dir: Path, body: Any, message: str) -> None:
    answer = api.post(f"/api/runs/{run_dir.name}/review", json=body)
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text
    assert not (run_dir / "review.json").exists()


def test_a_body_that_is_not_json_or_too_big_is_refused(api: TestClient, run_dir: Path) -> None:
    path = f"/api/runs/{run_dir.name}/review"
    assert api.post(path, content=b"{not json").status_code == 400
    assert api.post(path, content=b"\xff\xfe").status_code == 400
    assert api.post(path, content=b" " * (review_app.MAX_BODY + 1)).status_code == 413
    assert not (run_dir / "review.json").exists()


# -- the pages ---------------------------------------------------------------------------------


def test_the_index_page_lists_runs_with_progress_and_a_filter_form(api: TestClient, run_dir: Path) -> None:
    copy_run(run_dir, "20200101T000000Z-older-aaaaaa", "An <b>older</b> piece", status="partial")
    first = rebuttals(run_dir)[0]["id"]
    post(api, run_dir, {"decisions": {first: {"decision": "reject"}}})
    page = api.get("/", params={"q": "older"})
    dom = parse(page.text)
    rows = dom.by_id("runs").find_all("tr")[1:]
    assert len(rows) == 1 and "An <b>older</b> piece" in rows[0].text(), "titles are text, not markup"
    assert rows[0].find_all("a", href="/runs/20200101T000000Z-older-aaaaaa")
    assert dom.find_all("form", method="get") and dom.find_all("input", name="q", value="older")
    everything = parse(api.get("/").text).by_id("runs").find_all("tr")[1:]
    assert f"1/{len(rebuttals(run_dir))}" in everything[0].text() and "complete" in everything[0].text()
    assert not parse(page.text).find_all("script"), "the index needs no script"


def test_the_review_page_has_tools_on_every_rebuttal_and_claim(api: TestClient, run_dir: Path) -> None:
    first = rebuttals(run_dir)[0]["id"]
    post(api, run_dir, {"decisions": {first: {"decision": "edit", "text": "My wording.", "note": "tightened"}}})
    page = api.get(f"/runs/{run_dir.name}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    dom = parse(page.text)
    assert [s.attrs.get("src") for s in dom.find_all("script")] == ["/static/review.js"]
    metas = {m.attrs.get("name"): m.attrs.get("content") for m in dom.find_all("meta")}
    assert metas["counterpoint-run"] == run_dir.name and metas["counterpoint-revision"] == "1"
    assert metas["counterpoint-token"] == TOKEN and metas["counterpoint-token-header"] == HEADER
    csp = [m.attrs["content"] for m in dom.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [PAGE_CSP] and "script-src 'self'" in PAGE_CSP, "the page's own CSP must not block its script"
    for rebuttal in rebuttals(run_dir):
        (tools,) = [d for d in dom.find_all("div") if d.attrs.get("data-rebuttal") == rebuttal["id"]]
        assert {b.attrs["data-decision"] for b in tools.find_all("button") if "data-decision" in b.attrs} == {
            "accept",
            "reject",
            "edit",
            "",
        }
        assert rebuttal["argument"] in dom.by_id(f"rebuttal-{rebuttal['id']}").text(), "the original stays"
    edited = next(d for d in dom.find_all("div") if d.attrs.get("data-rebuttal") == first)
    assert edited.attrs["data-state"] == "edit" and "My wording." in edited.text() and "tightened" in edited.text()
    claims = read_brief(run_dir)["claims"]
    assert sorted(d.attrs["data-claim"] for d in dom.find_all("div") if "data-claim" in d.attrs) == sorted(
        c["id"] for c in claims
    )
    assert dom.by_id("summary"), "the review page is the brief page, summary first"


def test_the_script_is_served_from_the_app(api: TestClient) -> None:
    script = api.get("/static/review.js")
    assert script.headers["content-type"].startswith("text/javascript") and "X-Counterpoint-Token" not in script.text
    assert "fetch(" in script.text and "409" in script.text


# -- the real server ----------------------------------------------------------------------------


def raw(served: Served, method: str, path: str, headers: dict[str, str], body: str | None = None) -> tuple[int, str]:
    """One request exactly as given (no client normalising the path or the Host header)."""
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        data = body.encode() if body is not None else None
        if data is not None:
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(len(data)))
        connection.endheaders(data)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def test_counterpoint_serve_end_to_end(cli, runs_dir: Path) -> None:
    run_dir = make_run(cli)
    accepted, rejected = rebuttals(run_dir)[0], rebuttals(run_dir)[-1]
    served = Served(runs_dir, "--reviewer", "Ana Editor")
    try:
        host = {"Host": f"127.0.0.1:{served.port}"}
        assert raw(served, "GET", "/api/runs", host)[0] == 401
        assert raw(served, "GET", "/api/runs", {"Host": "attacker.example", HEADER: served.token})[0] == 403
        assert raw(served, "GET", f"/api/runs/..%2F..%2F{run_dir.name}", {**host, HEADER: served.token})[0] == 404
        assert raw(served, "GET", "/runs/../../etc/passwd", {**host, HEADER: served.token})[0] == 404
        status, _ = raw(served, "GET", f"/?token={served.token}", host)
        assert status == 303
        change = {
            "decisions": {
                accepted["id"]: {"decision": "accept", "note": "Keep this one; add the lease date."},
                rejected["id"]: {"decision": "reject"},
            },
            "revision": 0,
        }
        status, body = raw(
            served, "POST", f"/api/runs/{run_dir.name}/review", {**host, HEADER: served.token}, json.dumps(change)
        )
        assert status == 200, body
        assert (
            raw(served, "POST", f"/api/runs/{run_dir.name}/review", {**host, HEADER: served.token}, json.dumps(change))[
                0
            ]
            == 409
        )
    finally:
        after = served.stop()
    assert after == "", "the address is the last line on stdout"
    assert served.process.returncode == 0, "Ctrl-C is the normal way to stop it"
    stored = json.loads((run_dir / "review.json").read_text(encoding="utf-8"))
    assert stored["reviewer"] == "Ana Editor" and stored["revision"] == 1
    assert stored["decisions"][accepted["id"]]["decision"] == "accept"

    exported = run_subprocess(["export", run_dir.name, "--runs-dir", str(runs_dir), "--reviewed", "--format", "md"])
    assert exported.returncode == 0, exported.stderr
    assert accepted["argument"] in exported.stdout and "Keep this one; add the lease date." in exported.stdout
    assert rejected["argument"] not in exported.stdout
    assert "Reviewed by Ana Editor" in exported.stdout


def test_serve_refuses_a_port_in_use_in_one_line(cli, runs_dir: Path) -> None:
    served = Served(runs_dir)
    try:
        busy = run_subprocess(["serve", "--runs-dir", str(runs_dir), "--port", str(served.port)], timeout=60)
    finally:
        served.stop()
    assert busy.returncode == 1 and busy.stdout == ""
    assert busy.stderr.strip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{served.port}")
    assert "--port 0" in busy.stderr


def test_each_start_has_its_own_token(runs_dir: Path) -> None:
    tokens = []
    for _ in range(2):
        served = Served(runs_dir)
        tokens.append(served.token)
        served.stop()
    assert tokens[0] != tokens[1]


def test_a_damaged_review_is_reported_and_never_overwritten(api: TestClient, run_dir: Path) -> None:
    (run_dir / "review.json").write_text('{"revision": "three"}', encoding="utf-8")
    for answer in (
        api.get(f"/api/runs/{run_dir.name}/review"),
        post(api, run_dir, {"decisions": {rebuttals(run_dir)[0]["id"]: {"decision": "accept"}}}),
    ):
        assert answer.status_code == 500
        assert (
            "review.json is not a valid review" in answer.json()["error"]
            and "fix or remove it" in answer.json()["error"]
        )
        assert answer.headers["content-security-policy"] == CSP
    assert (run_dir / "review.json").read_text(encoding="utf-8") == '{"revision": "three"}'
    page = api.get(f"/runs/{run_dir.name}")
    assert page.status_code == 500 and "review.json" in page.text


def test_a_brief_that_breaks_its_schema_is_a_one_line_500_and_nothing_is_written(
    api: TestClient, run_dir: Path
) -> None:
    (run_dir / "brief.json").write_text(json.dumps(older_brief(run_dir)), encoding="utf-8")
    assert api.get(f"/runs/{run_dir.name}").status_code == 200  # written before verification checks: fine
    (run_dir / "brief.json").write_text('{"status": "complete"}', encoding="utf-8")
    for answer in (
        api.get(f"/runs/{run_dir.name}"),
        api.get(f"/api/runs/{run_dir.name}"),
        api.get(f"/api/runs/{run_dir.name}/review"),
        api.post(f"/api/runs/{run_dir.name}/review", json={"decisions": {"C1-R1": {"decision": "accept"}}}),
    ):
        assert answer.status_code == 500
        assert "brief.json is damaged ($: " in answer.text and f"counterpoint validate {run_dir.name}" in answer.text
    assert not (run_dir / "review.json").exists()
    assert api.get("/api/runs").status_code == 200  # the listing still works


def test_batches_are_listed_from_their_manifests(api: TestClient, run_dir: Path) -> None:
    batches = run_dir.parent / "batches"
    good, broken = batches / "20261129T100000Z-batch-aaaaaa", batches / "20261128T100000Z-batch-bbbbbb"
    good.mkdir(parents=True)
    broken.mkdir()
    totals = {"articles": 3, "complete": 2, "partial": 0, "failed": 1}
    (good / "manifest.json").write_text(
        json.dumps({"status": "complete", "updated": "2026-11-29T10:05:00+00:00", "totals": totals})
    )
    (broken / "manifest.json").write_text("{not json")
    listed = api.get("/api/runs").json()
    assert [r["id"] for r in listed["runs"]] == [run_dir.name], "a batch is not a run"
    assert listed["batches"] == [
        {"id": good.name, "status": "complete", "updated": "2026-11-29T10:05:00+00:00", **totals},
        {
            "id": broken.name,
            "status": "unknown",
            "updated": None,
            "articles": None,
            "complete": None,
            "partial": None,
            "failed": None,
        },
    ]
    rows = parse(api.get("/").text).by_id("batches").find_all("tr")[1:]
    assert [cell.text() for cell in rows[0].find_all("td")] == [
        good.name,
        "complete",
        "2026-11-29 10:05",
        "3",
        "2",
        "0",
        "1",
    ]
