"""Real img2dataset downloads from the loopback demo web: every bad case ends as a named reason, no row
is lost, and a retry fetches only what failed. Loopback only (127.0.0.1), nothing else is contacted."""

from __future__ import annotations

import dataclasses
import json
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from schema_defaults import download_settings

from rs5m.columns import make_uid
from rs5m.demo.web import BAD_CASES, DemoWebServer, bad_body
from rs5m.pub11.download_part import download_part, read_status
from rs5m.pub11.download_retry import retry_failed
from rs5m.pub11.images_part import inspect_part
from rs5m.pub11.settings import ImageSettings

# What each bad case must end as: (stage, reason) or kept.
EXPECTED = {
    "corrupt": ("invalid", "invalid_decode"),
    "truncated": ("invalid", "invalid_decode"),
    "empty": ("invalid", "invalid_empty"),
    "html": ("invalid", "invalid_decode"),
    "huge": ("invalid", "invalid_too_many_pixels"),
    "cmyk": "kept",
    "16bit": "kept",
    "palette": "kept",
    "alpha": "kept",
    "animated": "kept",
    "exif-rotated": "kept",
    "tiny": ("invalid", "invalid_too_small"),
    "noai": ("download", "robots_disallowed"),
    "404": ("download", "download_failed"),
    "500": ("download", "download_failed"),
    "429": ("download", "rate_limited"),
    "stall": ("download", "download_failed"),
    "drop": ("download", "download_failed"),
    "redirect-loop": ("download", "download_failed"),
}
SETTINGS = download_settings(
    thread_count=8,
    timeout=2,
    retries=0,
    max_pixels=50_000_000,
    allowed_networks=["127.0.0.1/32"],
    per_host_rate=1000,
    per_host_burst=100,
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_urls(path, urls, source="laion2b"):
    uids = [make_uid(source, url) for url in urls]
    pq.write_table(pa.table({"uid": uids, "source": [source] * len(urls), "url": urls}), path)
    return uids


@pytest.fixture(scope="module")
def direct_run(tmp_path_factory):
    """One download of good images, every bad case and a refused connection, straight to 127.0.0.1."""
    root = tmp_path_factory.mktemp("download")
    assert set(EXPECTED) == set(BAD_CASES)
    for case in BAD_CASES:  # rendered before the clock runs: a loaded machine must not turn them into timeouts
        try:
            bad_body(case)
        except KeyError:
            pass
    with DemoWebServer(stall_seconds=30) as server:
        cases = {f"{server.url}/img/rs/{n}.jpg": "kept" for n in range(4)}
        cases[f"{server.url}/img/photo/1.jpg?copy=2"] = "kept"
        cases.update({f"{server.url}/bad/{case}": expected for case, expected in EXPECTED.items()})
        cases[f"http://127.0.0.1:{_free_port()}/img/rs/1.jpg"] = ("download", "download_failed")
        urls = list(cases)
        uids = _write_urls(root / "urls.parquet", urls)
        download_part(
            str(root / "urls.parquet"),
            str(root / "0000"),
            str(root / "0000.stats.json"),
            str(root / "0000.drops.parquet"),
            threads=1,
            settings=SETTINGS,
        )
    inspect_part(
        str(root / "0000"),
        str(root / "images.parquet"),
        str(root / "images.stats.json"),
        str(root / "images.drops.parquet"),
        ImageSettings(max_pixels=50_000_000, min_side=32, phash_exact=True),
        threads=2,
    )
    return root, dict(zip(uids, urls)), {uid: cases[url] for uid, url in zip(uids, urls)}


def test_every_row_ends_in_its_named_state(direct_run):
    root, url_of, expected = direct_run
    outcome = {}
    for stage, drops in (("download", "0000.drops.parquet"), ("invalid", "images.drops.parquet")):
        for row in pq.read_table(root / drops).to_pylist():
            assert row["uid"] not in outcome, f"{url_of[row['uid']]} dropped twice"
            assert row["stage"] == stage
            outcome[row["uid"]] = (stage, row["reason"])
    for uid in pq.read_table(root / "images.parquet").column("uid").to_pylist():
        assert uid not in outcome
        outcome[uid] = "kept"
    assert {url_of[u]: o for u, o in outcome.items()} == {url_of[u]: e for u, e in expected.items()}


def test_failure_details_carry_img2dataset_messages(direct_run):
    root, url_of, _ = direct_run
    detail = {
        url_of[r["uid"]].rsplit("/", 1)[-1]: r["detail"] for r in pq.read_table(root / "0000.drops.parquet").to_pylist()
    }
    assert "404" in detail["404"] and "429" in detail["429"] and "500" in detail["500"]
    assert "timed out" in detail["stall"]
    assert "redirect" in detail["redirect-loop"]
    assert "X-Robots-Tag" in detail["noai"]
    assert "refused" in detail["1.jpg"].lower()


def test_ledgers_add_up_and_chain(direct_run):
    root, _, expected = direct_run
    (download,) = json.loads((root / "0000.stats.json").read_text())
    (invalid,) = json.loads((root / "images.stats.json").read_text())
    n_download_drops = sum(1 for e in expected.values() if e != "kept" and e[0] == "download")
    assert download["rows_in"] == len(expected)
    assert download["kept"] == len(expected) - n_download_drops
    assert download["dropped"] == {"download_failed": n_download_drops - 2, "robots_disallowed": 1, "rate_limited": 1}
    assert invalid["rows_in"] == download["kept"]
    assert invalid["kept"] == sum(1 for e in expected.values() if e == "kept")


def test_kept_images_point_at_their_shard_members(direct_run):
    root, url_of, _ = direct_run
    images = pq.read_table(root / "images.parquet").to_pylist()
    status = {r["uid"]: r for r in read_status(root / "0000").to_pylist()}
    for row in images:
        assert row["tar"] == str(root / "0000" / "00000.tar")
        assert row["member"] == status[row["uid"]]["key"] + ".jpg"
    sizes = {url_of[r["uid"]].rsplit("/", 1)[-1]: (r["width"], r["height"]) for r in images}
    assert sizes["exif-rotated"] == (96, 160)  # original bytes kept (skip_reencode), EXIF applied


def test_retry_fetches_only_failed_urls_through_the_proxy(tmp_path):
    """Proxy mode as in the demo: demo.rs5m.test URLs answered by the loopback server."""
    urls = [f"http://demo.rs5m.test/img/rs/{n}.jpg" for n in range(3)]
    urls += [f"http://demo.rs5m.test/flaky/rs/{n}.jpg" for n in range(10, 12)]
    urls += ["http://demo.rs5m.test/bad/404", "https://demo.rs5m.test/img/rs/5.jpg"]
    uids = _write_urls(tmp_path / "urls.parquet", urls, source="cc3m")
    paths = [
        str(tmp_path / "urls.parquet"),
        str(tmp_path / "0001"),
        str(tmp_path / "0001.stats.json"),
        str(tmp_path / "0001.drops.parquet"),
    ]
    with DemoWebServer() as server:
        download_part(*paths, threads=1, settings=dataclasses.replace(SETTINGS, proxy=server.url))
        (first,) = json.loads((tmp_path / "0001.stats.json").read_text())
        assert first["kept"] == 3 and first["dropped"] == {"download_failed": 4}
        https = {r["uid"]: r["detail"] for r in pq.read_table(tmp_path / "0001.drops.parquet").to_pylist()}[uids[-1]]
        assert "502" in https  # the proxy refuses tunnels: https cannot leave the machine either
        summary = retry_failed(
            *paths,
            report=str(tmp_path / "0001.retry.json"),
            threads=1,
            settings=dataclasses.replace(SETTINGS, proxy=server.url),
        )
        asked = dict(server.requests)
    assert summary == {"retried": 4, "fetched": 5, "dropped": 2}
    assert all(asked[f"/img/rs/{n}.jpg"] == 1 for n in range(3))  # nothing fetched twice
    assert asked["/flaky/rs/10.jpg"] == 2 and asked["/bad/404"] == 2
    (after,) = json.loads((tmp_path / "0001.stats.json").read_text())
    assert after == {"stage": "download", "source": "cc3m", "rows_in": 7, "kept": 5, "dropped": {"download_failed": 2}}
    status = {r["uid"]: r for r in read_status(tmp_path / "0001").to_pylist()}
    assert status[uids[3]]["status"] == "success" and status[uids[3]]["shard"] == 1
    assert status[uids[0]]["shard"] == 0
    assert sorted(p.name for p in (tmp_path / "0001").glob("*.tar")) == ["00000.tar", "00001.tar"]
