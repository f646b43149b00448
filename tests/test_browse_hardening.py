"""`rs5m browse` against what an adversarial review found (issue 14, items 8-11): formula cells in
the CSV export, Host/Origin checks on a non-loopback bind, the app's own files under /files, and
tars that are corrupt, replaced or deleted."""

from __future__ import annotations

import argparse
import csv
import io
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browse_run import make_run  # noqa: E402
from test_browse import Client, start  # noqa: E402

from rs5m.browse import BrowseApp  # noqa: E402
from rs5m.browse.cli import LISTEN_BACKLOG, REQUEST_TIMEOUT, allowed_hosts, make_browse_server  # noqa: E402
from rs5m.browse.ratings import spreadsheet_safe  # noqa: E402


@pytest.fixture()
def fresh(tmp_path):
    expected = make_run(tmp_path)
    app = BrowseApp(tmp_path)
    return tmp_path, expected, app, Client(app)


# -- item 8: CSV export ----------------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://evil.invalid","click")', "+1+2", "-2+3", "@SUM(A1:A9)", "\tcmd", "\r=1+1"]


def test_export_neutralises_formula_cells_unless_exact(fresh):
    _, _, app, client = fresh
    token, location = start(client)
    items = app.ratings.items(1)[: len(FORMULAS)]
    for item, caption in zip(items, FORMULAS):
        sample = dict(app.index.sample(item["uid"]), caption=caption)
        app.ratings.rate(1, item["uid"], sample, {"relevance_detail": 3, "hallucination": 3, "fluency": 3})
    rows = list(csv.DictReader(io.StringIO(client.get("/export.csv", session="1").text)))
    assert [r["description"] for r in rows] == ["'" + c for c in FORMULAS]
    assert all(r["image_path"].startswith("static/") for r in rows)
    exact = list(csv.DictReader(io.StringIO(client.get("/export.csv", session="1", format="exact").text)))
    assert [r["description"] for r in exact] == FORMULAS
    assert spreadsheet_safe("an aerial view") == "an aerial view" and spreadsheet_safe(5) == 5


# -- item 9: Host and Origin on a non-loopback bind --------------------------------------------------
def test_wildcard_bind_keeps_an_allow_list(tmp_path):
    make_run(tmp_path)
    args = argparse.Namespace(
        run_dir=str(tmp_path), host="0.0.0.0", port=0, reindex=False, verbose=False, allowed_host=["rs5m.lab.example"]
    )
    app, server = make_browse_server(args, log=io.StringIO())
    try:
        assert app.allowed_hosts is not None
        assert {"127.0.0.1", "localhost", socket.gethostname().lower(), "rs5m.lab.example"} <= app.allowed_hosts
        assert "0.0.0.0" not in app.allowed_hosts
        client = Client(app)
        port = server.server_address[1]
        assert client.request("GET", "/", headers={"HTTP_HOST": "evil.example"}).status == 400
        assert client.request("GET", "/", headers={"HTTP_HOST": f"rs5m.lab.example:{port}"}).status == 200
        token = client.token()

        def post(origin):
            return client.post(
                "/rate",
                {"rater": "ana", "size": "3", "csrf_token": token},
                headers={"HTTP_ORIGIN": origin, "HTTP_HOST": f"rs5m.lab.example:{port}"},
            ).status

        # Only the whole scheme://host:port of this server passes.
        assert post(f"http://evil.example:{port}") == 403
        assert post(f"http://rs5m.lab.example:{port + 1}") == 403
        assert post(f"https://rs5m.lab.example:{port}") == 403
        assert post("http://rs5m.lab.example") == 403
        assert post(f"http://rs5m.lab.example:{port}") == 303
    finally:
        server.server_close()


def test_allowed_hosts_of_a_named_bind():
    hosts = allowed_hosts("192.0.2.7", ["Browse.Example"])
    assert {"192.0.2.7", "browse.example", "localhost"} <= hosts
    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost", "::1"}


def test_origin_port_is_compared_without_a_server(fresh):
    _, _, app, client = fresh
    token = client.token()
    status = client.post(
        "/rate",
        {"rater": "ana", "size": "3", "csrf_token": token},
        headers={"HTTP_ORIGIN": "http://127.0.0.1:9999", "HTTP_HOST": "127.0.0.1:8765"},
    ).status
    assert status == 403
    status = client.post(
        "/rate",
        {"rater": "ana", "size": "3", "csrf_token": token},
        headers={"HTTP_ORIGIN": "http://127.0.0.1:8765", "HTTP_HOST": "127.0.0.1:8765"},
    ).status
    assert status == 303


# -- item 10: the app's own files -------------------------------------------------------------------
def test_files_route_hides_ratings_and_index(fresh):
    root, _, _, client = fresh
    start(client)  # the ratings database now holds a rater name and the secret
    assert (root / "results/ratings.sqlite").is_file() and (root / "results/browse/index.sqlite").is_file()
    (root / "results/ratings.sqlite-journal").write_bytes(b"x")
    for rel in ("results/ratings.sqlite", "results/ratings.sqlite-journal", "results/browse/index.sqlite"):
        response = client.get(f"/files/{rel}")
        assert response.status == 404 and b"SQLite" not in response.body
    assert client.get("/files/results/stats/funnel.csv").status == 200


# -- item 11: corrupt, replaced and deleted tars; long paths; timeouts --------------------------------
def test_corrupt_tar_at_start_is_reported_and_skipped(tmp_path):
    expected = make_run(tmp_path)
    bad = tmp_path / "results/shards/train/pub11-train-9999.tar"
    bad.write_bytes(b"this is not a tar archive" * 40)
    log = io.StringIO()
    args = argparse.Namespace(run_dir=str(tmp_path), host="127.0.0.1", port=0, reindex=False, verbose=False)
    app, server = make_browse_server(args, log=log)
    server.server_close()
    assert [rel for rel, _ in app.refresh.failed] == ["results/shards/train/pub11-train-9999.tar"]
    assert "pub11-train-9999.tar could not be read" in log.getvalue()
    sample = expected["train"][0]
    assert Client(app).get(f"/image/{sample['uid']}").body == sample["image"]


def _first_shard(root, expected):
    sample = expected["train"][0]
    app = BrowseApp(root)
    ref = app.index.sample_image(sample["uid"])
    return app, sample, root / ref.tar


def test_replaced_shard_is_410_not_another_image(fresh):
    root, expected, _, _ = fresh
    app, sample, tar = _first_shard(root, expected)
    data = bytearray(tar.read_bytes())
    start_at = data.find(sample["image"][:64])
    data[start_at + 100 : start_at + 110] = b"\x00" * 10  # same size, other bytes: a rewritten shard
    stat = tar.stat()
    tar.write_bytes(bytes(data))
    os.utime(tar, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    response = Client(app).get(f"/image/{sample['uid']}")
    assert response.status == 410 and response.body != sample["image"]


def test_deleted_shard_and_file_are_410_and_404(fresh):
    root, expected, _, _ = fresh
    app, sample, tar = _first_shard(root, expected)
    client = Client(app)
    tar.unlink()
    assert client.get(f"/image/{sample['uid']}").status == 410
    assert client.get("/files/results/stats/" + "x" * 5000).status == 404
    assert client.get("/files/results/" + "/".join(["d" * 250] * 30)).status == 404
    funnel = root / "results/stats/funnel.csv"
    funnel.unlink()
    assert client.get("/files/results/stats/funnel.csv").status == 404


def test_request_timeout_and_backlog():
    from rs5m.browse.cli import QuietHandler, ThreadingWSGIServer

    assert QuietHandler.timeout == REQUEST_TIMEOUT and 0 < REQUEST_TIMEOUT <= 60
    assert ThreadingWSGIServer.request_queue_size == LISTEN_BACKLOG >= 64


def test_a_silent_client_is_dropped_after_the_timeout(tmp_path, monkeypatch):
    make_run(tmp_path)
    from rs5m.browse import cli

    monkeypatch.setattr(cli.QuietHandler, "timeout", 1)
    args = argparse.Namespace(run_dir=str(tmp_path), host="127.0.0.1", port=0, reindex=False, verbose=False)
    _, server = make_browse_server(args, log=io.StringIO())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\n")  # and then nothing
            began = time.monotonic()
            assert conn.recv(1024) == b""  # the server closes the connection
            assert time.monotonic() - began < 8
    finally:
        server.shutdown()
        server.server_close()
