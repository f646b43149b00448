"""Server tests for `rs5m browse`: every route, bad input, CSRF, path traversal, ratings and export."""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browse_run import make_run, write_shard  # noqa: E402

from rs5m.browse import BrowseApp, add_browse_parser, main_browse  # noqa: E402
from rs5m.browse.cli import make_browse_server  # noqa: E402
from rs5m.browse.ratings import RatingError, RatingStore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


class Client:
    """Calls the WSGI app in-process and keeps its cookies, like a browser tab."""

    def __init__(self, app):
        self.app = app
        self.cookies: dict[str, str] = {}

    def request(self, method, path, query="", body=b"", headers=None):
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
        setup_testing_defaults(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        if method == "POST":
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for name, value in (headers or {}).items():
            environ[name] = value
        result = {}

        def start_response(status, response_headers):
            result["status"] = int(status.split()[0])
            result["headers"] = response_headers

        data = b"".join(self.app(environ, start_response))
        for name, value in result["headers"]:
            if name == "Set-Cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";")[0]
        return Response(result["status"], result["headers"], data)

    def get(self, path, **query):
        return self.request("GET", path, urlencode(query))

    def post(self, path, data, headers=None):
        return self.request("POST", path, body=urlencode(data).encode(), headers=headers)

    def token(self, path="/rate"):
        page = self.get(path)
        return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body
        self.text = body.decode("utf-8", errors="replace")

    def header(self, name):
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def uids(self):
        return re.findall(r'data-uid="([0-9a-f]{16})"', self.text)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    expected = make_run(root)
    return root, expected


@pytest.fixture()
def fresh(tmp_path):
    """A run folder of its own, for tests that write ratings or change files."""
    expected = make_run(tmp_path)
    app = BrowseApp(tmp_path)
    return tmp_path, expected, app, Client(app)


@pytest.fixture(scope="module")
def client(run):
    return Client(BrowseApp(run[0]))


# -- the index --------------------------------------------------------------------------------------
def test_image_route_returns_each_image_exactly(run, client):
    _, expected = run
    for sample in expected["train"] + expected["val"]:
        response = client.get(f"/image/{sample['uid']}")
        assert response.status == 200
        assert response.body == sample["image"]
        assert response.header("Content-Type") == "image/jpeg"


def test_requests_read_through_the_index_without_reopening_tars(run, monkeypatch):
    root, expected = run
    app = BrowseApp(root)
    client = Client(app)

    def no_scan(*args, **kwargs):
        raise AssertionError("a request scanned a tar")

    monkeypatch.setattr(tarfile, "open", no_scan)
    sample = expected["rs3_val"][1]
    assert client.get(f"/image/{sample['uid']}").body == sample["image"]
    assert client.get("/samples", split="val").status == 200
    assert client.get(f"/download-image/{expected['dropped'][0]['uid']}").body == expected["dropped"][0]["image"]


def test_index_reads_only_changed_files(fresh):
    root, expected, app, _ = fresh
    assert len(app.refresh.indexed) == 6
    again = BrowseApp(root)
    assert again.refresh.indexed == [] and again.refresh.unchanged == 6
    kept = expected["rs3_val"][:1]
    write_shard(root / "results/shards/val/rs3-val-0000.tar", kept, "wds")
    os.utime(root / "results/shards/val/rs3-val-0000.tar", ns=(1, 1))
    third = BrowseApp(root)
    assert third.refresh.indexed == ["results/shards/val/rs3-val-0000.tar"]
    client = Client(third)
    assert client.get(f"/image/{expected['rs3_val'][0]['uid']}").body == expected["rs3_val"][0]["image"]
    assert client.get(f"/image/{expected['rs3_val'][2]['uid']}").status == 404
    (root / "results/pub11/final.drops.parquet").unlink()
    fourth = BrowseApp(root)
    assert fourth.refresh.removed == ["results/pub11/final.drops.parquet"]
    assert Client(fourth).get("/dropped").uids() == [expected["never_downloaded"], expected["dropped"][0]["uid"]]


# -- browse ------------------------------------------------------------------------------------------
def test_overview_lists_counts_funnel_and_figures(client):
    page = client.get("/")
    assert page.status == 200
    assert re.search(r"<td>val</td><td>rs3</td><td><a [^>]*>fmow</a></td><td>1</td>", page.text)
    assert re.search(r"<td>train</td><td>pub11</td><td><a [^>]*>laion2b</a></td><td>2</td>", page.text)
    assert "<td>image_dedup</td><td>laion2b</td><td>9</td><td>8</td>" in page.text  # funnel.csv
    assert '<img src="/files/results/stats/funnel.png"' in page.text


def test_samples_filters(run, client):
    _, expected = run
    val = {s["uid"] for s in expected["val"]}
    assert set(client.get("/samples", split="val").uids()) == val
    assert set(client.get("/samples", split="train").uids()) == {s["uid"] for s in expected["train"]}
    assert set(client.get("/samples", subset="rs3").uids()) == {s["uid"] for s in expected["rs3_val"]}
    cc3m_val = {s["uid"] for s in expected["pub11_val"] if s["source"] == "cc3m"}
    assert set(client.get("/samples", split="val", source="cc3m").uids()) == cc3m_val
    airport = {s["uid"] for s in expected["train"] + expected["val"] if "airport" in s.get("matched_keywords", [])}
    assert len(airport) == 2 and set(client.get("/samples", keyword="airport").uids()) == airport
    in_range = {s["uid"] for s in expected["train"] + expected["val"] if 0.255 <= s.get("clip_score", -1) <= 0.305}
    assert len(in_range) == 3
    assert set(client.get("/samples", score="clip_score", min="0.255", max="0.305").uids()) == in_range
    high_rs = {s["uid"] for s in expected["pub11_val"] if s["rs_score"] >= 0.75}
    assert set(client.get("/samples", score="rs_score", min="0.75").uids()) == high_rs
    assert client.get("/samples", q="number 4").uids() == [expected["pub11_val"][1]["uid"]]
    assert client.get("/samples", q="%").uids() == []  # LIKE wildcards are matched literally


def test_samples_paging(run, client):
    everything = client.get("/samples", per="200").uids()
    assert len(everything) == 10
    second = client.get("/samples", per="3", page="2")
    assert second.uids() == everything[3:6]
    assert "page 2 of 4" in second.text
    assert client.get("/samples", per="3", page="9").uids() == []


@pytest.mark.parametrize(
    "query",
    [
        {"min": "abc"},
        {"max": "nan"},
        {"min": "inf"},
        {"score": "uid"},
        {"score": "clip_score; DROP TABLE samples"},
        {"page": "0"},
        {"page": "x"},
        {"per": "1000"},
        {"per": "-1"},
        {"source": "x" * 300},
    ],
)
def test_samples_bad_input_is_400(client, query):
    assert client.get("/samples", **query).status == 400


def test_filter_values_are_data_not_sql(client):
    assert client.get("/samples", source="laion2b' OR '1'='1").uids() == []
    assert client.get("/samples", keyword="x') OR 1=1 --").uids() == []
    assert client.get("/dropped", stage="' OR 1=1 --").uids() == []
    assert len(client.get("/samples", per="200").uids()) == 10  # the table is still there


def test_sample_detail(run, client):
    _, expected = run
    rs3 = expected["rs3_val"][0]
    page = client.get(f"/sample/{rs3['uid']}")
    assert page.status == 200
    assert "a satellite view of an airport, with &quot;two&quot; runways" in page.text
    assert "fmow_airport_0_0_rgb.jpg" in page.text and "&quot;country&quot;: &quot;US&quot;" in page.text
    pub = expected["pub11_val"][2]
    page = client.get(f"/sample/{pub['uid']}")
    assert f"<th>clip_score</th><td>{pub['clip_score']:.3f}</td>" in page.text
    assert f"<th>rs_score</th><td>{pub['rs_score']:.3f}</td>" in page.text
    assert pub["url"] in page.text
    assert client.get("/sample/0123456789abcdef").status == 404
    assert client.get("/sample/..%2f..%2fetc").status == 404


def test_captions_are_escaped(tmp_path):
    sample = {
        "uid": "00000000000000aa",
        "source": "laion2b",
        "img_name": "x.jpg",
        "caption": "<script>alert(1)</script>",
        "image": b"\xff\xd8\xff\xe0fake",
    }
    write_shard(tmp_path / "results/shards/val/pub11-val-0000.tar", [sample], "rs5m")
    client = Client(BrowseApp(tmp_path))
    for page in (client.get("/samples"), client.get("/sample/00000000000000aa")):
        assert "<script>alert" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_dropped_view(run, client):
    _, expected = run
    page = client.get("/dropped")
    assert re.search(r"<td>outliers</td><td><a [^>]*>clip_score_low</a></td><td>1</td><td>1</td>", page.text)
    assert re.search(r"<td>image_dedup</td><td><a [^>]*>invalid_image</a></td><td>1</td><td>0</td>", page.text)
    outlier = client.get("/dropped", stage="outliers")
    uid = expected["dropped"][1]["uid"]
    assert outlier.uids() == [uid]
    assert f'src="/download-image/{uid}"' in outlier.text and "clip 0.11 &lt; 0.20" in outlier.text
    missing = client.get("/dropped", reason="invalid_image")
    assert missing.uids() == [expected["never_downloaded"]] and "image not downloaded" in missing.text
    assert set(client.get("/dropped", with_image="1").uids()) == {d["uid"] for d in expected["dropped"]}
    assert client.get("/dropped", source="cc3m").uids() == [expected["never_downloaded"]]
    assert client.get("/dropped", page="-1").status == 400
    assert "phash_duplicate: 1" in page.text  # the ledger table from the stats files


def test_download_image_route(run, client):
    _, expected = run
    for row in expected["dropped"]:
        response = client.get(f"/download-image/{row['uid']}")
        assert response.status == 200 and response.body == row["image"]
    assert client.get(f"/download-image/{expected['never_downloaded']}").status == 404
    assert client.get("/download-image/not-a-uid").status == 404


# -- files and security ------------------------------------------------------------------------------
def test_files_route_serves_run_outputs(run, client):
    root, _ = run
    png = client.get("/files/results/stats/funnel.png")
    assert png.status == 200 and png.body == (root / "results/stats/funnel.png").read_bytes()
    assert png.header("Content-Type") == "image/png"
    md = client.get("/files/results/stats/funnel.md")
    assert md.header("Content-Type") == "text/plain; charset=utf-8" and md.body.startswith(b"| stage")


@pytest.mark.parametrize(
    "path",
    [
        "/files/../pyproject.toml",
        "/files/results/../../outside.txt",
        "/files/results/stats/../../../outside.txt",
        "/files//etc/passwd",
        "/files/results//stats/funnel.md",
        "/files/outside.txt",
        "/files/results\\..\\outside.txt",
        "/files/results/stats",
        "/files/results/stats/link-out",
        "/files/results/stats/link-up/outside.txt",
    ],
)
def test_files_route_cannot_leave_results(run, path):
    root, _ = run
    (root.parent / "outside.txt").write_text("secret")
    (root / "outside.txt").write_text("secret")
    for name, target in (("link-out", root.parent / "outside.txt"), ("link-up", root)):
        link = root / "results/stats" / name
        if not link.is_symlink():
            link.symlink_to(target)
    response = Client(BrowseApp(root)).get(path)
    assert response.status == 404 and b"secret" not in response.body


def test_nul_in_path_is_refused(client):
    assert client.get("/files/results/stats/funnel.md\x00.png").status == 400


def test_assets_are_a_fixed_list(client):
    assert client.get("/assets/app.js").header("Content-Type").startswith("text/javascript")
    assert b"keydown" in client.get("/assets/app.js").body
    assert client.get("/assets/app.css").status == 200
    assert client.get("/assets/web.py").status == 404
    assert client.get("/assets/../web.py").status == 404


def test_host_header_is_checked(client):
    assert client.request("GET", "/", headers={"HTTP_HOST": "evil.example"}).status == 400
    assert client.request("GET", "/", headers={"HTTP_HOST": "evil.example:8765"}).status == 400
    assert client.request("GET", "/", headers={"HTTP_HOST": "127.0.0.1:8765"}).status == 200
    assert client.request("GET", "/", headers={"HTTP_HOST": "localhost:8765"}).status == 200
    assert client.request("GET", "/", headers={"HTTP_HOST": "[::1]:8765"}).status == 200


def test_security_headers_and_cookie(run):
    page = Client(BrowseApp(run[0])).get("/rate")
    assert "default-src 'none'" in page.header("Content-Security-Policy")
    assert page.header("X-Content-Type-Options") == "nosniff"
    cookie = page.header("Set-Cookie")
    assert cookie.startswith("rs5m_csrf=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_unknown_routes_and_methods(client):
    assert client.get("/nope").status == 404
    assert client.get("/rate/abc").status == 404
    assert client.request("POST", "/samples").status == 405
    response = client.request("PUT", "/rate")
    assert response.status == 405 and response.header("Allow") == "GET, POST"
    assert client.request("HEAD", "/").status == 200


# -- rating ------------------------------------------------------------------------------------------
def expected_order(uids, seed):
    return sorted(uids, key=lambda u: (hashlib.blake2b(f"{seed}\x1f{u}".encode(), digest_size=8).digest(), u))


def test_rate_start_needs_a_valid_csrf_token(fresh):
    _, _, app, client = fresh
    token = client.token()
    assert client.post("/rate", {"rater": "ana"}).status == 403
    assert client.post("/rate", {"rater": "ana", "csrf_token": "0" * 64}).status == 403
    cross = client.post("/rate", {"rater": "ana", "csrf_token": token}, headers={"HTTP_ORIGIN": "http://evil.example"})
    assert cross.status == 403
    stranger = Client(app)  # no cookie: a token copied from another browser is worthless
    assert stranger.post("/rate", {"rater": "ana", "csrf_token": token}).status == 403
    assert app.ratings.sessions() == []
    # The Origin is this server's own scheme://host:port (the Host the browser sent).
    ok = client.post(
        "/rate",
        {"rater": "ana", "csrf_token": token},
        headers={"HTTP_ORIGIN": "http://127.0.0.1:8765", "HTTP_HOST": "127.0.0.1:8765"},
    )
    assert ok.status == 303 and ok.header("Location") == "/rate/1"


@pytest.mark.parametrize(
    "form",
    [
        {"rater": ""},
        {"rater": "x" * 101},
        {"rater": "ana", "size": "0"},
        {"rater": "ana", "size": "abc"},
        {"rater": "ana", "seed": "s" * 101},
    ],
)
def test_rate_start_bad_input(fresh, form):
    _, _, app, client = fresh
    response = client.post("/rate", {**form, "csrf_token": client.token()})
    assert response.status == 400 and 'class="error"' in response.text
    assert app.ratings.sessions() == []


def test_sessions_draw_reproducibly_from_validation(fresh):
    _, expected, app, client = fresh
    token = client.token()
    client.post("/rate", {"rater": "ana", "seed": "s1", "size": "5", "csrf_token": token})
    client.post("/rate", {"rater": "ben", "seed": "s1", "size": "5", "csrf_token": token})
    client.post("/rate", {"rater": "ana", "seed": "s2", "size": "7", "csrf_token": token})
    val = [s["uid"] for s in expected["val"]]
    ana, ben, other = ([i["uid"] for i in app.ratings.items(n)] for n in (1, 2, 3))
    assert ana == ben == expected_order(val, "s1")[:5]
    assert sorted(other) == sorted(val) and other == expected_order(val, "s2") and other[:5] != ana
    page = client.get("/rate/1")
    assert f'name="uid" value="{ana[0]}"' in page.text and "sample 1 of 5" in page.text
    resumed = client.post("/rate", {"rater": "ana", "seed": "s1", "size": "5", "csrf_token": token})
    assert resumed.header("Location") == "/rate/1" and len(app.ratings.sessions()) == 3


def start(client, rater="ana", size="500"):
    token = client.token()
    location = client.post("/rate", {"rater": rater, "size": size, "csrf_token": token}).header("Location")
    return token, location


def test_rate_save_resume_and_export(fresh):
    root, expected, app, client = fresh
    token, location = start(client)
    by_uid = {s["uid"]: s for s in expected["val"]}
    order = [i["uid"] for i in app.ratings.items(1)]
    scores = [(5, 4, 3), (1, 2, 5), (3, 3, 4)]
    for uid, (rel, hal, flu) in zip(order, scores):
        page = client.get(location)
        assert f'name="uid" value="{uid}"' in page.text
        response = client.post(
            location, {"csrf_token": token, "uid": uid, "relevance_detail": rel, "hallucination": hal, "fluency": flu}
        )
        assert response.status == 303 and response.header("Location") == location
    page = client.get(location)
    assert f'name="uid" value="{order[3]}"' in page.text and '<span id="rated-count">3</span> rated' in page.text
    first = client.get(location, pos="0").text
    assert re.search(r'name="relevance_detail" value="5" checked', first)
    assert re.search(r'name="fluency" value="3" checked', first)
    # A revision replaces the earlier answer instead of adding a row.
    client.post(
        location, {"csrf_token": token, "uid": order[0], "relevance_detail": 4, "hallucination": 4, "fluency": 3}
    )
    exported = client.get("/export.csv", session="1")
    assert exported.header("Content-Type") == "text/csv; charset=utf-8"
    assert 'filename="ratings_session1.csv"' in exported.header("Content-Disposition")
    lines = exported.text.split("\n")
    assert lines[0] == "image_path,description,relevance_detail,hallucination,fluency"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    want = [(4, 4, 3), (1, 2, 5), (3, 3, 4)]
    assert [(r["image_path"], r["description"]) for r in rows] == [
        (f"static/{by_uid[u]['img_name']}", by_uid[u]["caption"]) for u in order[:3]
    ]
    assert [(int(r["relevance_detail"]), int(r["hallucination"]), int(r["fluency"])) for r in rows] == want
    assert "\r" not in exported.text and exported.text.endswith("\n")
    assert (root / "results/ratings.sqlite").is_file()


def test_export_matches_the_authors_csv_form(fresh):
    _, expected, app, client = fresh
    token, location = start(client)
    rs3 = {s["uid"]: s for s in expected["rs3_val"]}
    for item in app.ratings.items(1):
        if item["uid"] in rs3:
            client.post(
                location,
                {"csrf_token": token, "uid": item["uid"], "relevance_detail": 5, "hallucination": 4, "fluency": 5},
            )
    text = client.get("/export.csv").text
    written = {row["image_path"]: row for row in csv.DictReader(io.StringIO(text))}
    assert set(written) == {f"static/{s['img_name']}" for s in rs3.values()}
    # A caption with a comma, quotes and a line break survives the round trip.
    assert (
        written["static/fmow_airport_0_0_rgb.jpg"]["description"]
        == 'a satellite view of an airport, with "two" runways'
    )
    assert written["static/ben_12345.jpg"]["description"] == "broad-leaved forest beside a river\nin summer"
    assert '"a satellite view of an airport, with ""two"" runways",5,4,5\n' in text
    record = FIXTURES / "rs5m_repo" / "record" / "ratings_1_500.csv"
    if record.is_file():
        assert text.split("\n", 1)[0] == record.read_text().split("\n", 1)[0]


@pytest.mark.parametrize(
    "scores",
    [
        {"relevance_detail": "0", "hallucination": "3", "fluency": "3"},
        {"relevance_detail": "3", "hallucination": "6", "fluency": "3"},
        {"relevance_detail": "3", "hallucination": "3", "fluency": "-1"},
        {"relevance_detail": "3", "hallucination": "3", "fluency": "3.5"},
        {"relevance_detail": "x", "hallucination": "3", "fluency": "3"},
        {"relevance_detail": "", "hallucination": "3", "fluency": "3"},
        {"hallucination": "3", "fluency": "3"},
        {"relevance_detail": "99999999999999999999", "hallucination": "3", "fluency": "3"},
    ],
)
def test_scores_outside_1_to_5_are_rejected(fresh, scores):
    _, _, app, client = fresh
    token, location = start(client)
    uid = app.ratings.items(1)[0]["uid"]
    response = client.post(location, {"csrf_token": token, "uid": uid, **scores})
    assert response.status == 400
    assert client.get("/export.csv").text == "image_path,description,relevance_detail,hallucination,fluency\n"


def test_rating_other_samples_or_sessions_is_refused(fresh):
    _, expected, app, client = fresh
    token, location = start(client, size="2")
    good = {"relevance_detail": 3, "hallucination": 3, "fluency": 3, "csrf_token": token}
    outside = next(i for i in expected["val"] if i["uid"] not in {x["uid"] for x in app.ratings.items(1)})
    assert client.post(location, {**good, "uid": outside["uid"]}).status == 400
    assert client.post(location, {**good, "uid": expected["train"][0]["uid"]}).status == 400
    assert client.post(location, {**good, "uid": "'; DROP TABLE ratings; --"}).status == 400
    assert client.post("/rate/99", {**good, "uid": app.ratings.items(1)[0]["uid"]}).status == 404
    assert client.get("/rate/99").status == 404
    assert client.get(location, pos="2").status == 400
    uid = app.ratings.items(1)[0]["uid"]
    assert client.post(location, {"relevance_detail": 3, "hallucination": 3, "fluency": 3, "uid": uid}).status == 403
    assert app.ratings.summary()["overall"] == []


def test_store_refuses_bad_scores_itself(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    session = store.open_session("ana", "s", 1, ["00000000000000aa"])
    sample = {"img_name": "a.jpg", "caption": "c", "subset": "pub11", "source": "cc3m"}
    with pytest.raises(RatingError):
        store.rate(session.id, "00000000000000aa", sample, {"relevance_detail": 6, "hallucination": 1, "fluency": 1})
    with pytest.raises(RatingError):
        store.rate(session.id, "00000000000000aa", sample, {"relevance_detail": True, "hallucination": 1, "fluency": 1})


def test_session_completes(fresh):
    _, _, app, client = fresh
    token, location = start(client, size="1")
    uid = app.ratings.items(1)[0]["uid"]
    client.post(location, {"csrf_token": token, "uid": uid, "relevance_detail": 2, "hallucination": 2, "fluency": 2})
    page = client.get(location)
    assert "is complete: 1 of 1 rated" in page.text and "rate-form" not in page.text


def test_summary_means_per_subset_source_and_rater(fresh):
    _, expected, app, client = fresh
    token = client.token()
    plan = {}
    for rater in ("ana", "ben"):
        location = client.post("/rate", {"rater": rater, "csrf_token": token}).header("Location")
        for n, item in enumerate(app.ratings.items(int(location.rsplit("/", 1)[1]))):
            scores = (1 + (n % 5), 5 - (n % 3), 3 if rater == "ana" else 5)
            plan[(rater, item["uid"])] = scores
            client.post(
                location,
                {
                    "csrf_token": token,
                    "uid": item["uid"],
                    "relevance_detail": scores[0],
                    "hallucination": scores[1],
                    "fluency": scores[2],
                },
            )
    subset_of = {s["uid"]: ("rs3" if s in expected["rs3_val"] else "pub11") for s in expected["val"]}
    source_of = {s["uid"]: s.get("dataset") or s["source"] for s in expected["val"]}

    def mean(rows, i):
        return sum(r[i] for r in rows) / len(rows)

    summary = app.ratings.summary()
    rs3 = [v for (_, uid), v in plan.items() if subset_of[uid] == "rs3"]
    got = next(r for r in summary["subset"] if r["subset"] == "rs3")
    assert got["n"] == len(rs3) == 6
    assert got["relevance_detail"] == pytest.approx(mean(rs3, 0)) and got["hallucination"] == pytest.approx(
        mean(rs3, 1)
    )
    cc3m = [v for (_, uid), v in plan.items() if source_of[uid] == "cc3m"]
    got = next(r for r in summary["source"] if r["source"] == "cc3m")
    assert got["n"] == len(cc3m) and got["relevance_detail"] == pytest.approx(mean(cc3m, 0))
    assert {r["rater"]: r["fluency"] for r in summary["rater"]} == {"ana": 3.0, "ben": 5.0}
    page = client.get("/summary")
    overall = list(plan.values())
    assert re.search(
        rf'class="summary-overall">.*?<td>{len(overall)}</td><td>{mean(overall, 0):.2f}</td>'
        rf"<td>{mean(overall, 1):.2f}</td><td>{mean(overall, 2):.2f}</td>",
        page.text,
    )
    assert f"<td>rs3</td><td>{len(rs3)}</td><td>{mean(rs3, 0):.2f}</td>" in page.text
    only_ben = client.get("/summary", rater="ben")
    assert re.search(r'class="summary-overall">.*?<td>7</td>', only_ben.text) and "<td>ana</td>" not in only_ben.text
    assert len(list(csv.reader(io.StringIO(client.get("/export.csv", rater="ben").text)))) == 8
    assert client.get("/summary", session="abc").status == 400
    assert client.get("/export.csv", session="0").status == 400


def test_summary_without_ratings(client):
    page = client.get("/summary")
    assert page.status == 200 and "No ratings yet." in page.text


# -- the command -------------------------------------------------------------------------------------
def test_cli_parser_defaults_to_loopback():
    parser = argparse.ArgumentParser(prog="rs5m")
    add_browse_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["browse"])
    assert (args.run_dir, args.host, args.port, args.func) == (".", "127.0.0.1", 8765, main_browse)
    args = parser.parse_args(["browse", "runs/demo", "--port", "9000"])
    assert (args.run_dir, args.port) == ("runs/demo", 9000)


def test_missing_run_folder_is_a_clear_error(tmp_path):
    args = argparse.Namespace(run_dir=str(tmp_path / "nope"), host="127.0.0.1", port=0, reindex=False, verbose=False)
    with pytest.raises(SystemExit, match="does not exist"):
        make_browse_server(args)


def raw_get(port, target):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_server_binds_loopback_and_refuses_traversal_over_http(run):
    root, expected = run
    (root.parent / "outside.txt").write_text("secret")
    args = argparse.Namespace(run_dir=str(root), host="127.0.0.1", port=0, reindex=False, verbose=False)
    _, server = make_browse_server(args)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/samples?split=val", timeout=10) as response:
            assert response.status == 200 and expected["rs3_val"][0]["uid"].encode() in response.read()
        for target in (
            "/files/%2e%2e/%2e%2e/outside.txt",
            "/files/results/%2e%2e/%2e%2e/outside.txt",
            "/files/..%2f..%2foutside.txt",
            "/files/%2fetc%2fpasswd",
            "/image/..%2f..%2foutside.txt",
        ):
            status, body = raw_get(port, target)
            assert status == 404 and b"secret" not in body and b"root:" not in body
        status, body = raw_get(port, f"/image/{expected['train'][0]['uid']}")
        assert status == 200 and body == expected["train"][0]["image"]
    finally:
        server.shutdown()
        server.server_close()


def test_python_m_rs5m_browse_serves(run):
    root, _ = run
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rs5m.browse", str(root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        url = None
        for line in proc.stdout:
            match = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
                break
        assert url, "the server did not report its address"
        with urllib.request.urlopen(url + "rate", timeout=10) as response:
            assert b"Rater name" in response.read()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
