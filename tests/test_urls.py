"""URL normalisation, the URL safety filter, the duplicate priority rule and the global URL dedup."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from schema_defaults import schema_defaults, url_filter_args

from rs5m.columns import make_uid
from rs5m.pub11.crawl_pacing import host_part
from rs5m.pub11.url_filter import filter_and_dedup_urls
from rs5m.pub11.urls import (
    address_blocked,
    allowed_networks,
    check_url,
    normalise_url,
    pick_kept,
    priority_rank,
    priority_ranks,
    url_host,
)


@pytest.mark.parametrize(
    "url, key",
    [
        ("HTTP://Example.COM/a/B.jpg", "http://example.com/a/B.jpg"),
        ("http://example.com:80/x.jpg", "http://example.com/x.jpg"),
        ("https://example.com:443/x.jpg", "https://example.com/x.jpg"),
        ("http://example.com:8080/x.jpg", "http://example.com:8080/x.jpg"),
        ("https://example.com:80/x.jpg", "https://example.com:80/x.jpg"),
        ("http://example.com/x.jpg#frag", "http://example.com/x.jpg"),
        ("http://example.com", "http://example.com/"),
        ("  http://example.com./x.jpg ", "http://example.com/x.jpg"),
        ("http://example.com/%7euser/a%2fb%2F.jpg", "http://example.com/~user/a%2Fb%2F.jpg"),
        ("http://example.com/x.jpg?b=2&a=1", "http://example.com/x.jpg?b=2&a=1"),
        ("http://bücher.de/x.jpg", "http://xn--bcher-kva.de/x.jpg"),
        ("http://example\u3002com\uff0e/x.jpg", "http://example.com/x.jpg"),
        ("http://[0:0::1]:80/x", "http://[::1]/x"),
    ],
)
def test_normalise_url(url, key):
    assert normalise_url(url) == key


def test_normalise_keeps_scheme_and_path_case_distinct():
    assert normalise_url("http://a.com/X.jpg") != normalise_url("https://a.com/X.jpg")
    assert normalise_url("http://a.com/X.jpg") != normalise_url("http://a.com/x.jpg")


URLS = schema_defaults("urls")


def check(url, networks=()):
    """check_url with the configured blocked suffixes and length limit (urls.*)."""
    return check_url(url, networks, URLS["blocked_suffixes"], URLS["max_length"])


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://example.com/a.jpg", None),
        ("https://cdn.example.org:8443/a.jpg?x=1", None),
        ("http://8.8.8.8/a.jpg", None),
        ("http://demo.rs5m.test/img/rs/1.jpg", None),
        ("ftp://example.com/a.jpg", "bad_url_scheme"),
        ("file:///etc/passwd", "bad_url_scheme"),
        ("javascript:alert(1)", "bad_url_scheme"),
        ("data:image/png;base64,AAAA", "bad_url_scheme"),
        ("", "bad_url"),
        (None, "bad_url"),
        ("http://", "bad_url"),
        ("http://example.com:99999/a", "bad_url"),
        ("http://exa mple.com/a", "bad_url"),
        ("http://127.0.0.1/a", "blocked_url"),
        ("http://127.8.9.10:8080/a", "blocked_url"),
        ("http://localhost/a", "blocked_url"),
        ("http://LOCALHOST./a", "blocked_url"),
        ("http://api.localhost/a", "blocked_url"),
        ("http://printer.local/a", "blocked_url"),
        ("http://metadata.google.internal/computeMetadata/v1/", "blocked_url"),
        ("http://10.1.2.3/a", "blocked_url"),
        ("http://172.16.0.1/a", "blocked_url"),
        ("http://192.168.1.1/a", "blocked_url"),
        ("http://100.64.0.1/a", "blocked_url"),
        ("http://169.254.169.254/latest/meta-data/", "blocked_url"),
        ("http://224.0.0.1/a", "blocked_url"),
        ("http://0.0.0.0/a", "blocked_url"),
        ("http://[::1]/a", "blocked_url"),
        ("http://[::]/a", "blocked_url"),
        ("http://[fe80::1%25eth0]/a", "blocked_url"),
        ("http://[fc00::1]/a", "blocked_url"),
        ("http://[ff02::1]/a", "blocked_url"),
        ("http://[::ffff:127.0.0.1]/a", "blocked_url"),
        ("http://[::ffff:169.254.169.254]/a", "blocked_url"),
        ("http://[2001:4860:4860::8888]/a", None),
        # inet_aton spellings of 127.0.0.1 and 169.254.169.254
        ("http://2130706433/a", "blocked_url"),
        ("http://0x7f000001/a", "blocked_url"),
        ("http://0177.0.0.1/a", "blocked_url"),
        ("http://127.1/a", "blocked_url"),
        ("http://0x7f.0.0.1/a", "blocked_url"),
        ("http://2852039166/a", "blocked_url"),
        ("http://0xA9FEA9FE/a", "blocked_url"),
        ("http://user@169.254.169.254/a", "blocked_url"),
        ("http://example.com@127.0.0.1/a", "blocked_url"),
        # numeric spellings of a public address pass, malformed ones are bad
        ("http://134744072/a", "blocked_url"),  # 8.8.8.8 as a decimal trick: blocked too
        ("http://999.1.1.1/a", "bad_url"),
        ("http://08.1.1.1/a", "bad_url"),
        # other full stops, a trailing dot, empty and over-long labels and hosts, long URLs
        ("http://169.254.169.254\u3002/latest/", "blocked_url"),
        ("http://169\uff0e254\uff0e169\uff0e254/latest/", "blocked_url"),
        ("http://169\uff61254.169.254/latest/", "blocked_url"),
        ("http://127.0.0.1./a", "blocked_url"),
        ("http://example\u3002com/a.jpg", None),
        ("http://example.com./a.jpg", None),
        ("http://example..com/a", "bad_url"),
        ("http://.example.com/a", "bad_url"),
        ("http://example.com../a", "bad_url"),
        ("http://" + "a" * 64 + ".com/a", "bad_url"),
        ("http://" + "a" * 63 + ".com/a", None),
        ("http://" + ".".join(["a" * 60] * 5) + "/a", "bad_url"),
        ("http://example.com/" + "a" * 4100, "bad_url"),
        # user info, backslashes, % in the host
        ("http://127.0.0.1\\@example.com/", "blocked_url"),
        ("http://example.com\\@127.0.0.1/", "blocked_url"),
        ("http://user:pass@example.com/a.jpg", "blocked_url"),
        ("http://exa%6dple.com/a", "blocked_url"),
        ("http://%31%32%37.0.0.1/a", "blocked_url"),
        # single labels (search domains) and internal suffixes
        ("http://metadata/computeMetadata/v1/", "blocked_url"),
        ("http://instance-data/latest/", "blocked_url"),
        ("http://printer.lan/a", "blocked_url"),
        ("http://wiki.corp/a", "blocked_url"),
        ("http://intranet.example.intranet/a", "blocked_url"),
        ("http://router.home.arpa/a", "blocked_url"),
        ("http://kubernetes.default.svc/a", "blocked_url"),
        ("http://api.default.svc.cluster.local/a", "blocked_url"),
        ("http://vault.service.consul/a", "blocked_url"),
        ("http://db.localdomain/a", "blocked_url"),
        ("http://LAN/a", "blocked_url"),
        ("http://plan.com/a", None),  # a suffix matches whole labels only
        # IPv6 forms that embed IPv4
        ("http://[64:ff9b::7f00:1]/a", "blocked_url"),
        ("http://[64:ff9b::a9fe:a9fe]/a", "blocked_url"),
        ("http://[64:ff9b::808:808]/a", None),
        ("http://[64:ff9b:1::808:808]/a", "blocked_url"),
        ("http://[2002:a9fe:a9fe::1]/a", "blocked_url"),
        ("http://[2002:808:808::1]/a", None),
        ("http://[::7f00:1]/a", "blocked_url"),
        ("http://[::ffff:10.0.0.1]/a", "blocked_url"),
        ("http://[fec0::1]/a", "blocked_url"),
    ],
)
def test_check_url(url, reason):
    assert check(url) == reason


def test_allowed_networks_are_exact():
    loopback_one = allowed_networks(["127.0.0.1/32"])
    for url in ("http://127.0.0.1:8000/a", "http://[::ffff:127.0.0.1]/a"):
        assert check(url, loopback_one) is None
        assert check(url) == "blocked_url"
    for url in ("http://2130706433/a", "http://0x7f.0.0.1/a", "http://127.1/a"):  # the same address, as a trick
        assert check(url, loopback_one) == "blocked_url"
    for url in (
        "http://127.0.0.2/a",
        "http://localhost:8000/a",
        "http://[::1]/a",
        "http://10.0.0.1/a",
        "http://169.254.169.254/a",
        "http://0.0.0.0/a",
        "http://x.local/a",
    ):
        assert check(url, loopback_one) == "blocked_url", url
    mirror = allowed_networks(["10.20.0.0/16"])
    assert check("http://10.20.3.4/a.jpg", mirror) is None
    assert check("http://10.21.3.4/a.jpg", mirror) == "blocked_url"


@pytest.mark.parametrize(
    "address, blocked",
    [
        ("8.8.8.8", False),
        ("1.1.1.1", False),
        ("2606:4700:4700::1111", False),
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("10.0.0.1", True),
        ("172.16.0.1", True),
        ("192.168.0.1", True),
        ("100.64.0.1", True),
        ("169.254.169.254", True),
        ("198.18.0.1", True),
        ("192.0.2.1", True),
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("255.255.255.255", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("fec0::1", True),
        ("ff02::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:8.8.8.8", False),
        ("64:ff9b::a9fe:a9fe", True),
        ("64:ff9b::808:808", False),
        ("64:ff9b:1::1", True),
        ("2002:7f00:1::1", True),
        ("2002:808:808::1", False),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", True),  # Teredo, client 127.0.0.1
        ("::a9fe:a9fe", True),
        ("::808:808", False),  # IPv4-compatible
        ("2001:db8::1", True),  # documentation
    ],
)
def test_address_rules(address, blocked):
    assert address_blocked(address) is blocked


def test_url_host():
    assert url_host("http://Example\u3002COM./a") == "example.com"
    assert url_host("https://bücher.de:8443/x") == "xn--bcher-kva.de"
    assert url_host("http://[::1]:80/") == "::1"


def test_priority_rule():
    # LAION-COCO goes first whatever the hash; then the three preferred sources beat the rest.
    assert priority_rank("laioncoco", "a" * 16) > priority_rank("cc3m", "b" * 16)
    assert priority_rank("cc3m", "c" * 16) > priority_rank("coyo700m", "d" * 16)
    for preferred in ("laion2b", "laion400m", "coyo700m"):
        for other in ("wit", "yfcc15m", "cc12m", "redcaps", "cc3m", "sbu", "vg"):
            assert pick_kept([(other, make_uid(other, "u")), (preferred, make_uid(preferred, "u"))]) == make_uid(
                preferred, "u"
            )
    assert pick_kept([("laioncoco", "0" * 16), ("vg", "f" * 16)]) == "f" * 16


def test_priority_ties_are_deterministic_and_not_input_order():
    copies = [("laion2b", make_uid("laion2b", f"u{i}")) for i in range(20)]
    kept = pick_kept(copies)
    assert pick_kept(list(reversed(copies))) == kept
    # the pick is by stable hash, not the smallest uid (which a naive min would take)
    picks = {pick_kept([copies[i], copies[i + 1]]) for i in range(0, 20, 2)}
    smallest = {min(copies[i][1], copies[i + 1][1]) for i in range(0, 20, 2)}
    assert picks != smallest
    assert priority_ranks(["laion2b", "laioncoco"], [copies[0][1], copies[1][1]]).tolist() == [
        priority_rank("laion2b", copies[0][1]),
        priority_rank("laioncoco", copies[1][1]),
    ]


def _metadata(path, source, urls, native=None):
    uids = [make_uid(source, u or "", i) for i, u in enumerate(urls)]
    columns = {
        "uid": uids,
        "source": [source] * len(urls),
        "url": urls,
        "caption": [f"aerial view {i}" for i in range(len(urls))],
        "captions": [[f"aerial view {i}"] for i in range(len(urls))],
        "matched_keywords": [["aerial view"]] * len(urls),
        "width": pa.array([256] * len(urls), pa.int64()),
        "height": pa.array([256] * len(urls), pa.float64()),
    }
    columns.update(native or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return uids


def test_url_filter_and_dedup(tmp_path):
    coco = _metadata(
        tmp_path / "laioncoco/00000.parquet",
        "laioncoco",
        ["http://a.com/1.jpg", "http://b.com/2.jpg", "http://169.254.169.254/x", "ftp://a.com/y"],
        {"src_top_caption": ["t1", "t2", "t3", "t4"]},
    )
    cc3m = _metadata(tmp_path / "cc3m/00000.parquet", "cc3m", ["HTTP://A.com:80/1.jpg#top", "http://c.com/3.jpg", None])
    laion = _metadata(
        tmp_path / "laion2b/00000.parquet",
        "laion2b",
        ["http://b.com/2.jpg", "http://c.com/3.jpg", "http://2130706433/z"],
        {"src_similarity": [0.3, 0.31, 0.32], "src_punsafe": [0.0, 0.1, 0.2]},
    )
    parts = [str(tmp_path / f"urldedup/{i:04d}.parquet") for i in range(3)]
    stats_file, drops_file = tmp_path / "urldedup.stats.json", tmp_path / "urldedup.drops.parquet"
    metadata = [str(tmp_path / f"{s}/00000.parquet") for s in ("laioncoco", "cc3m", "laion2b")]
    filter_and_dedup_urls(metadata, parts, str(stats_file), str(drops_file), **url_filter_args())

    kept = pa.concat_tables([pq.read_table(p) for p in parts]).to_pylist()
    kept_uids = {row["uid"] for row in kept}
    # a.com/1.jpg: laioncoco vs cc3m -> cc3m; b.com/2.jpg and c.com/3.jpg: laion2b wins.
    assert kept_uids == {cc3m[0], laion[0], laion[1]}
    for part_index, path in enumerate(parts):
        table = pq.read_table(path)
        for uid, url in zip(table.column("uid").to_pylist(), table.column("url").to_pylist()):
            assert host_part(url_host(url), uid, 3, 4) == part_index
    by_uid = {row["uid"]: row for row in kept}
    assert by_uid[cc3m[0]]["url"] == "HTTP://A.com:80/1.jpg#top"  # the original is downloaded
    assert json.loads(by_uid[laion[0]]["native"]) == {"similarity": 0.3, "punsafe": 0.0}
    assert by_uid[cc3m[0]]["native"] is None
    assert by_uid[laion[1]]["captions"] == ["aerial view 1"] and by_uid[laion[1]]["height"] == 256

    drops = {row["uid"]: row for row in pq.read_table(drops_file).to_pylist()}
    assert drops[coco[0]]["reason"] == "duplicate_url" and drops[coco[0]]["detail"] == cc3m[0]
    assert drops[coco[1]]["detail"] == laion[0]
    assert drops[cc3m[1]]["reason"] == "duplicate_url" and drops[cc3m[1]]["detail"] == laion[1]
    assert drops[coco[2]]["reason"] == "blocked_url"
    assert drops[laion[2]]["reason"] == "blocked_url"
    assert drops[coco[3]]["reason"] == "bad_url_scheme"
    assert drops[cc3m[2]]["reason"] == "bad_url"
    assert len(drops) + len(kept) == 10  # no row lost

    stats = {entry["source"]: entry for entry in json.loads(stats_file.read_text())}
    assert stats["laioncoco"] == {
        "stage": "url_filter",
        "source": "laioncoco",
        "rows_in": 4,
        "kept": 0,
        "dropped": {"blocked_url": 1, "duplicate_url": 2, "bad_url_scheme": 1},
    }
    assert stats["cc3m"]["kept"] == 1 and stats["cc3m"]["dropped"] == {"duplicate_url": 1, "bad_url": 1}
    assert stats["laion2b"]["kept"] == 2 and stats["laion2b"]["dropped"] == {"blocked_url": 1}


def test_url_filter_without_rows_writes_empty_parts(tmp_path):
    parts = [str(tmp_path / f"{i:04d}.parquet") for i in range(2)]
    filter_and_dedup_urls([], parts, str(tmp_path / "s.json"), str(tmp_path / "d.parquet"), **url_filter_args())
    assert [pq.read_table(p).num_rows for p in parts] == [0, 0]
    assert "native" in pq.read_schema(parts[0]).names
    assert json.loads((tmp_path / "s.json").read_text()) == []
