"""The crawl guard of the download stage (rs5m.pub11.crawl_guard, rs5m.pub11.crawl_pacing).

Everything that opens a connection runs inside a sealed network namespace (tests/sealed.py:
`unshare --net --mount`, loopback only, a private /etc/hosts that gives the test names 127.0.0.1
or 127.0.0.2, a resolv.conf pointing at 127.0.0.1): the real download stage (img2dataset with two
spawned workers) against loopback servers, tests/crawl_scenarios.py. Rules about other addresses
are tested as pure functions here and in test_urls.py.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import socket
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from schema_defaults import guard_settings
from sealed import run_sealed

from rs5m.configured import defaults
from rs5m.pub11.crawl_guard import (
    MAX_INFORMATIONAL,
    MAX_TRAILER_LINES,
    PERMANENT,
    REASONS,
    CrawlError,
    _Response,
    error_message,
    outcome_of,
    reason_of,
    retry_after_seconds,
)
from rs5m.pub11.crawl_pacing import (
    ANSWERED,
    BACK_OFF,
    FAILED,
    RECOVERY,
    AdaptiveBounds,
    AdaptivePacer,
    HostPace,
    HostPacer,
    host_key,
    host_part,
    next_pace,
    part_rate,
    robots_delay,
    spread_order,
)
from rs5m.pub11.download_part import DownloadSettings

TESTS = Path(__file__).resolve().parent
ROBOTS_HOSTS = ("rfc", "token", "bom", "big", "gone", "down", "slow", "rate")
HOSTS = {
    "www.rs5m.test": "127.0.0.1",
    **{f"{name}.rs5m.test": "127.0.0.1" for name in ROBOTS_HOSTS},
    **{f"{name}.rs5m.test": "127.0.0.1" for name in ("t", "a0", "a1", "a2", "a3")},
    "secret.rs5m.test": "127.0.0.2",
    **{f"h{i:02d}.rs5m.test": "127.0.0.1" for i in range(20)},
    **{f"{name}.rs5m.test": "127.0.0.1" for name in ("fast", "medium", "slow", "busy")},
}
# Scheduling jitter between a request's reserved slot and the server's clock on a loaded machine:
# a request that leaves late arrives up to that much closer to the next one. 1 s covers a busy
# 2-core CI machine; unpaced, a host's nine requests arrive within a fraction of a second and break
# the bound below at any allowance under 2.5 s (9 > 2 * (0.1 + 2.5) + 2 fails only above it).
JITTER = 1.0


def _scenario(name: str, folder: Path) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(TESTS.parent / "workflow"), str(TESTS)]),
        NO_ALBUMENTATIONS_UPDATE="1",
    )
    result = run_sealed(
        [sys.executable, str(TESTS / "crawl_scenarios.py"), name, str(folder / "run")],
        folder / "namespace",
        HOSTS,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return json.loads((folder / "run" / "result.json").read_text())


@pytest.fixture(scope="module")
def guard_run(tmp_path_factory):
    return _scenario("guard", tmp_path_factory.mktemp("guard"))


@pytest.mark.parametrize(
    "case, reason",
    [
        ("redirect_internal_ip", "blocked_redirect"),
        ("redirect_decimal_ip", "blocked_redirect"),
        ("redirect_localhost", "blocked_redirect"),
        ("redirect_ftp", "blocked_redirect"),
        ("redirect_internal_name", "blocked_redirect"),
        ("internal_name", "blocked_address"),
        ("drip", "download_timeout"),
        ("oversized", "download_too_large"),
        ("oversized_stream", "download_too_large"),
        ("retry_after_too_long", "rate_limited"),
        ("robots_disallowed", "robots_disallowed"),
    ],
)
def test_each_case_ends_in_its_named_reason(guard_run, case, reason):
    drop = guard_run["drops"].get(guard_run["cases"][case])
    assert drop is not None and drop["reason"] == reason, drop


def test_blocked_redirect_detail_is_the_hop(guard_run):
    drops, cases, secret = guard_run["drops"], guard_run["cases"], guard_run["secret"]
    assert drops[cases["redirect_internal_ip"]]["detail"] == f"http://{secret}/secret.jpg"
    assert drops[cases["redirect_ftp"]]["detail"] == f"ftp://{secret}/secret.jpg"
    assert drops[cases["redirect_decimal_ip"]]["detail"].startswith("http://2130706434:")


def test_internal_server_receives_nothing(guard_run):
    assert guard_run["internal_connections"] == []


def test_kept_images_are_the_bytes_served(guard_run):
    cases = guard_run["cases"]
    expected = {cases[c] for c in ("plain", "direct_ip", "retry_after_then_success", "redirect_same_host")}
    assert set(guard_run["kept"]) == expected
    assert set(guard_run["kept"].values()) == {guard_run["image_sha256"]}


def test_retry_after_is_waited_for_and_asked_again(guard_run):
    asked = [e["time"] for e in guard_run["web_log"] if e["path"] == "/once-429.jpg"]
    assert len(asked) == 2 and asked[1] - asked[0] >= 0.95  # Retry-After: 1


def test_robots_txt_fetched_once_per_origin_with_the_user_agent(guard_run):
    robots = Counter(e["host"] for e in guard_run["web_log"] if e["path"] == "/robots.txt")
    assert sorted(robots.values()) == [1, 1]  # www.rs5m.test and 127.0.0.1: two origins, two processes
    assert not any(e["path"].startswith("/private/") for e in guard_run["web_log"])
    agents = {e["user_agent"] for e in guard_run["web_log"]}
    assert agents == {"rs5m-test/0.1.0 (+https://example.org/contact)"}


def test_ledger_adds_up(guard_run):
    (stats,) = guard_run["stats"]
    assert stats["rows_in"] == len(guard_run["cases"])
    assert stats["kept"] + sum(stats["dropped"].values()) == stats["rows_in"]
    assert set(stats["dropped"]) <= set(REASONS) | {"download_failed"}


def test_pacing_holds_per_host_and_the_stage_finishes(tmp_path):
    run = _scenario("pacing", tmp_path)
    (stats,) = run["stats"]
    assert stats["kept"] == stats["rows_in"] == 160
    rate, burst = run["rate"], run["burst"]
    times = defaultdict(list)
    for entry in run["web_log"]:
        times[entry["host"].split(":")[0]].append(entry["time"])
    assert len(times) == 20
    for host, stamps in times.items():
        stamps.sort()
        assert len(stamps) == 9  # 8 images and robots.txt
        for i in range(len(stamps)):
            for j in range(i, len(stamps)):
                window = stamps[j] - stamps[i]
                assert j - i + 1 <= rate * (window + JITTER) + burst, (host, i, j, window)
        # and requests were spread: the host's run took at least its paced length
        assert stamps[-1] - stamps[0] >= (len(stamps) - burst) / rate - JITTER


def test_tarpits_end_at_the_deadline_with_the_connection_closed(tmp_path):
    """A server that trickles 100 Continue, trailer lines or header bytes (robots.txt too) holds
    neither the worker nor the connection past the attempt's deadline (+ 1 s)."""
    run = _scenario("tarpit", tmp_path)
    deadline = run["deadline"]
    for case, url in run["cases"].items():
        assert run["drops"].get(url, {}).get("reason") == "download_timeout", (case, run["drops"].get(url))
    held = [e for e in run["pit_log"] + run["robots_pit_log"] if e["path"] != "/robots.txt" or e["closed"] is None]
    held += [e for e in run["robots_pit_log"] if e["path"] == "/robots.txt"]
    paths = {e["path"] for e in held}
    assert {"/continue.jpg", "/trailers.jpg", "/drip.jpg", "/robots.txt"} <= paths, paths
    for entry in held:
        assert entry["closed"] is not None and entry["closed"] - entry["opened"] <= deadline + 1.0, entry
    assert run["seconds"] < 30  # was: until the servers gave up


@pytest.fixture(scope="module")
def robots_run(tmp_path_factory):
    return _scenario("robots", tmp_path_factory.mktemp("robots"))


@pytest.mark.parametrize(
    "host, path, expected",
    [
        # RFC 9309 2.2.3: `*` and `$`
        ("rfc", "/a.gif", "robots_disallowed"),
        ("rfc", "/a.gif?x=1", "fetched"),
        ("rfc", "/a.GIF", "fetched"),  # paths match case-sensitively
        ("rfc", "/fish.php", "robots_disallowed"),
        ("rfc", "/fishheads/catfish.php?p=1", "robots_disallowed"),  # `*` spans slashes too
        ("rfc", "/Fish.PHP", "fetched"),
        # 2.2.2: the longest match wins, allow on a tie
        ("rfc", "/page", "fetched"),
        ("rfc", "/page.html", "robots_disallowed"),
        ("rfc", "/folder/x", "fetched"),
        # 2.2.1: groups of the same agent are merged; another agent's group does not apply
        ("rfc", "/second-group/x", "robots_disallowed"),
        ("rfc", "/other", "fetched"),
        ("token", "/mine/x", "robots_disallowed"),  # our product token's group, not `*`
        ("token", "/yours", "fetched"),
        ("bom", "/private/x", "robots_disallowed"),  # a UTF-8 BOM does not hide the first group
        ("bom", "/public", "fetched"),
        ("big", "/early/x", "robots_disallowed"),  # the first 500 KiB of a larger file are parsed
        ("big", "/late/x", "fetched"),
        ("gone", "/x", "fetched"),  # 4xx: unavailable, all allowed
        ("down", "/private/x", "OSError"),  # 5xx: unreachable, all disallowed for a while (download_failed)
        ("down", "/private/x again", "robots_disallowed"),  # then asked again
        ("down", "/public again", "fetched"),
    ],
)
def test_robots_txt_as_rfc_9309_reads_it(robots_run, host, path, expected):
    assert robots_run["outcome"][f"{host}.rs5m.test"][path] == expected


def test_robots_txt_unreachable_is_asked_again_and_nothing_fetched_meanwhile(robots_run):
    down = [e["path"] for e in robots_run["log"] if e["host"] == "down.rs5m.test"]
    assert down == ["/robots.txt", "/robots.txt", "/public"]


def test_x_robots_tag_scoped_to_our_token_by_default(robots_run):
    assert robots_run["outcome"]["xrt"] == {
        "scoped": "robots_disallowed",
        "other": "fetched",
        "all": "robots_disallowed",
    }


@pytest.mark.parametrize("host, interval", [("slow", 0.5), ("rate", 0.5)])
def test_crawl_delay_and_request_rate_lower_the_hosts_pace(robots_run, host, interval):
    assert robots_run["outcome"][f"{host}.rs5m.test"] == ["fetched"] * 4
    stamps = sorted(
        e["time"] for e in robots_run["log"] if e["host"] == f"{host}.rs5m.test" and e["path"] != "/robots.txt"
    )
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert min(gaps) >= interval - 0.05, gaps  # per_host_rate here is 1000/s


def test_robots_origin_keeps_ipv6_brackets(robots_run):
    assert robots_run["ipv6"] == {"origin": "http://[::1]:8080", "origin_default": "https://[2001:db8::1]:443"}


def test_no_server_text_chooses_a_ledger_reason(robots_run):
    for line, (message, (reason, _)) in robots_run["spoofed"].items():
        assert reason == "download_failed", (line, message)
        assert line.removeprefix("HTTP/1.1 404 ") in message  # the server's words stay in the detail


def test_socket_backstop_refuses_every_way_to_a_blocked_address(tmp_path):
    run = _scenario("backstop", tmp_path)
    assert run["outcome"] == dict.fromkeys(run["outcome"], "blocked")
    assert len(run["outcome"]) == 8 and run["internal_connections"] == []


def test_redirects_from_several_parts_and_ipv6_spellings_are_paced_per_canonical_host(tmp_path):
    run = _scenario("redirect_pacing", tmp_path)
    assert run["outcome"] == [["fetched"] * 6] * 4
    rate, burst = run["rate"], run["burst"]
    times = defaultdict(list)
    for entry in run["web_log"] if "web_log" in run else run["log"]:
        times[host_key(entry["host"].rsplit(":", 1)[0])].append(entry["time"])
    assert len(times["t.rs5m.test"]) == 12 and len(times["127.0.0.1"]) == 12, {h: len(t) for h, t in times.items()}
    for host, stamps in times.items():
        stamps.sort()
        for i in range(len(stamps)):
            for j in range(i, len(stamps)):
                window = stamps[j] - stamps[i]
                assert j - i + 1 <= rate * (window + JITTER) + burst, (host, i, j, window)


def test_host_keys_are_canonical():
    spellings = ["[::ffff:127.0.0.1]", "::ffff:7f00:1", "0:0:0:0:0:ffff:7f00:1", "127.0.0.1"]
    assert {host_key(h) for h in spellings} == {"127.0.0.1"}
    assert host_key("[2001:DB8:0::1]") == host_key("2001:db8::0:1") == "2001:db8::1"
    assert host_key("WWW.Example.COM.") == "www.example.com"
    assert host_key("bücher.example") == "xn--bcher-kva.example"
    assert host_part("[::ffff:7f00:1]", "u", 64, 1) == host_part("127.0.0.1", "u", 64, 1)


# -- pure functions -------------------------------------------------------------------------------
def test_pacer_schedule_bound_across_threads(tmp_path):
    rate, burst = 20.0, 3.0
    pacer = HostPacer(tmp_path, rate, burst)
    slots: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            slot = pacer.reserve("a.example")
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slots.sort()
    for i in range(len(slots)):
        for j in range(i, len(slots)):
            assert j - i + 1 <= rate * (slots[j] - slots[i]) + burst + 1e-4  # float error of epoch seconds
    assert slots[-1] - slots[0] >= (len(slots) - burst) / rate - 1e-3
    assert pacer.reserve("b.example") <= time.time() + 1e-3  # other hosts are not held up


def test_host_parts_are_bounded_and_rates_divided():
    uids = [f"{i:016x}" for i in range(2000)]
    assert len({host_part("big.example", uid, 64, 4) for uid in uids}) == 4
    assert len({host_part("big.example", uid, 2, 4) for uid in uids}) == 2
    assert len({host_part(f"h{i}.example", "0" * 16, 64, 4) for i in range(200)}) > 40
    assert part_rate(2.0, 4.0, 64, 4) == (0.5, 1.0)
    assert part_rate(2.0, 4.0, 1, 4) == (2.0, 4.0)
    assert part_rate(2.0, 1.0, 64, 8) == (0.25, 1.0)


def test_spread_order_spreads_each_host():
    hosts = ["big"] * 10 + ["small"] * 2 + [f"one{i}" for i in range(8)]
    uids = [f"{i:04d}" for i in range(len(hosts))]
    order = spread_order(hosts, uids)
    assert sorted(order) == list(range(len(hosts)))
    positions = [i for i, index in enumerate(order) if hosts[index] == "big"]
    assert max(b - a for a, b in zip(positions, positions[1:])) <= 3  # not back to back at one end
    assert spread_order(hosts, uids) == order


def _response(raw: bytes):
    client, server = socket.socketpair()
    server.sendall(raw)
    server.close()
    response = _Response(client)
    client.close()  # the response keeps its own file
    return response


def test_1xx_responses_and_trailer_lines_are_bounded():
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    response = _response(b"HTTP/1.1 100 Continue\r\n\r\n" * MAX_INFORMATIONAL + final)
    response.begin()
    assert response.status == 200 and response.read() == b"ok"
    with pytest.raises(http.client.HTTPException, match="1xx"):
        _response(b"HTTP/1.1 100 Continue\r\n\r\n" * (MAX_INFORMATIONAL + 1) + final).begin()
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
    response = _response(chunked + b"X-T: 1\r\n" * MAX_TRAILER_LINES + b"\r\n")
    response.begin()
    assert response.read() == b"ok"
    response = _response(chunked + b"X-T: 1\r\n" * (MAX_TRAILER_LINES + 1) + b"\r\n")
    response.begin()
    with pytest.raises(http.client.HTTPException, match="trailer"):
        response.read()


def test_retry_after_and_reason_parsing():
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("²") is None and retry_after_seconds("1²") is None  # str.isdigit() says yes
    assert retry_after_seconds("١٢") is None and retry_after_seconds("-5") is None
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT", now=784111777 - 30) == pytest.approx(30)
    assert reason_of("blocked_redirect: http://127.0.0.2/x") == ("blocked_redirect", "http://127.0.0.2/x")
    assert reason_of("HTTP Error 404: Not Found") is None and reason_of(None) is None
    assert reason_of(error_message(CrawlError("download_timeout", "http://x/"))) == ("download_timeout", "http://x/")
    assert reason_of(error_message(http.client.BadStatusLine("blocked_address: spoofed"))) is None
    assert reason_of(error_message(OSError(" robots_disallowed: x"))) is None
    assert set(PERMANENT) < set(REASONS) and "rate_limited" not in PERMANENT


def test_crawl_settings_user_agent_and_rates():
    settings = guard_settings(
        per_host_rate=2, per_host_burst=4, parts=16, parts_per_host=4, contact_url="https://example.org/crawler"
    )
    assert settings.user_agent.startswith("rs5m/") and "+https://example.org/crawler" in settings.user_agent
    assert settings.robots_token == "rs5m"
    assert (settings.rate, settings.burst) == (0.5, 1.0)
    assert settings.robots_cache is None


# -- adaptive politeness (download.politeness: adaptive) -----------------------------------------
POLITENESS_HOSTS = ("fast", "medium", "slow", "busy")


@pytest.fixture(scope="module")
def politeness_run(tmp_path_factory):
    return _scenario("politeness", tmp_path_factory.mktemp("politeness"))


def _arrivals(run: dict, mode: str) -> dict[str, list[float]]:
    times = defaultdict(list)
    for entry in run["log"]:
        if entry["mode"] == mode:
            times[entry["host"].split(".")[0]].append(entry["time"])
    return {host: sorted(stamps) for host, stamps in times.items()}


def _most_in_a_window(stamps: list[float], rate: float, burst: float) -> float:
    """The largest excess over `rate` x (window + JITTER) + burst of any window of arrivals (<= 0: held)."""
    return max(
        j - i + 1 - (rate * (stamps[j] - stamps[i] + JITTER) + burst)
        for i in range(len(stamps))
        for j in range(i, len(stamps))
    )


def test_adaptive_politeness_keeps_every_bound_and_follows_each_host(politeness_run):
    run, bounds = politeness_run, politeness_run["bounds"]
    fixed, adaptive = _arrivals(run, "fixed"), _arrivals(run, "adaptive")
    for arrivals in (fixed, adaptive):
        assert set(arrivals) == set(POLITENESS_HOSTS)
        assert len(arrivals["fast"]) == 51 and len(arrivals["busy"]) == 7  # images and robots.txt
    # the bound in every window: per_host_rate fixed, per_host_rate_max adaptive, and robots.txt's
    # Crawl-delay 0.4 s on `medium` in both (its robots.txt itself is asked before it is known)
    for host in POLITENESS_HOSTS:
        assert _most_in_a_window(fixed[host], bounds["per_host_rate"], bounds["per_host_burst"]) <= 0, host
        assert _most_in_a_window(adaptive[host], bounds["per_host_rate_max"], bounds["per_host_burst"]) <= 0, host
        if host == "medium":
            for arrivals in (fixed, adaptive):
                assert _most_in_a_window(arrivals[host], 1 / 0.4, 2) <= 0
    outcome = dict(zip(run["urls"], run["runs"]["adaptive"]["outcome"]))
    assert {o for u, o in outcome.items() if "busy" in u} == {"CrawlError"}  # rate_limited
    assert {o for u, o in outcome.items() if "busy" not in u} == {"fetched"}

    def finished(arrivals, mode):
        return arrivals["fast"][-1] - run["runs"][mode]["started"]

    # the fast host earns a faster pace and is done well before the fixed rate would allow
    assert finished(adaptive, "adaptive") < 0.75 * finished(fixed, "fixed")
    assert finished(fixed, "fixed") >= (51 - bounds["per_host_burst"]) / bounds["per_host_rate"] - JITTER
    # the host that answers 429 is slowed down: its delay doubles (its first requests were reserved
    # before any answer came) down to min_rate's, and no further
    gaps = [b - a for a, b in zip(adaptive["busy"][1:], adaptive["busy"][2:])]
    assert gaps[-1] > 2.0 and gaps[-1] > 3 * gaps[0], gaps
    assert gaps[-1] <= 1 / bounds["min_rate"] + JITTER
    delays = run["runs"]["adaptive"]["delays"]
    assert delays["busy"] == 1 / bounds["min_rate"]
    assert delays["fast"] == 1 / bounds["per_host_rate_max"]
    assert 0.7 < delays["slow"] < 2.0  # delay_factor 5 x about 0.2 s
    # the slow one (0.2 s per answer) gets about delay_factor x 0.2 s between requests
    slow = adaptive["slow"]
    assert (slow[-1] - slow[1]) / (len(slow) - 2) > 0.6


BOUNDS = AdaptiveBounds(min_rate=0.2, per_host_rate_max=10.0, per_host_rate=2.0, delay_factor=5.0)


def test_adaptive_pace_follows_fetch_times_within_its_bounds():
    start = HostPace(BOUNDS.start)
    assert start.delay == 0.5  # per_host_rate's
    # a slow answer slows the host at once: delay_factor x its fetch time
    assert next_pace(start, BOUNDS, ANSWERED, 0.3) == HostPace(1.5, 0.3)
    # quick answers shorten the delay by RECOVERY each, never below delay_factor x the mean fetch time
    pace, delays = start, []
    for _ in range(30):
        pace = next_pace(pace, BOUNDS, ANSWERED, 0.001)
        delays.append(pace.delay)
    assert delays[0] == pytest.approx(0.5 * RECOVERY)
    assert all(b <= a for a, b in zip(delays, delays[1:]))
    assert delays[14] > BOUNDS.shortest and delays[-1] == BOUNDS.shortest  # 16 quick answers from 2 to 10 req/s
    medium = start
    for _ in range(60):
        medium = next_pace(medium, BOUNDS, ANSWERED, 0.04)
    assert medium.delay == pytest.approx(5 * 0.04) and medium.fetch_seconds == pytest.approx(0.04)
    # one slow image among quick ones moves the mean by FETCH_WEIGHT of its excess
    assert next_pace(medium, BOUNDS, ANSWERED, 1.04).delay == pytest.approx(5 * (0.04 + 0.3))
    # 429 / 503 / timeouts double the delay, down to min_rate; a failure says nothing
    backed = [start]
    for _ in range(5):
        backed.append(next_pace(backed[-1], BOUNDS, BACK_OFF, 0.0))
    assert [p.delay for p in backed] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert next_pace(backed[2], BOUNDS, FAILED, 9.0) == backed[2]
    assert next_pace(start, BOUNDS, ANSWERED, 100.0).delay == 1 / BOUNDS.min_rate
    # robots.txt's Crawl-delay / Request-rate only lengthen it
    assert robots_delay(0.1, 0.5) == 2.0 and robots_delay(3.0, 0.5) == 3.0
    assert robots_delay(0.1, None) == 0.1 and robots_delay(0.1, float("inf")) == 0.1
    assert AdaptiveBounds(0.2, 10.0, 0.0, 5.0).start == 0.1  # per_host_rate 0 (unpaced): start at the ceiling


def test_adaptive_pacer_is_shared_and_holds_the_part_bound(tmp_path):
    """Two pacers on one folder (two processes of a part) agree on a host's pace; the part's claims
    never exceed share x per_host_rate_max (+ burst), however quick the answers; a request waiting
    for its turn goes at the pace of the moment it is due, not of the moment it started waiting."""
    quick = AdaptiveBounds(min_rate=0.2, per_host_rate_max=50.0, per_host_rate=2.0, delay_factor=5.0)
    share, burst = 0.5, 3.0
    pacers = [AdaptivePacer(tmp_path, quick, share, burst) for _ in range(2)]
    for _ in range(60):
        pacers[0].observe("Fast.Example", ANSWERED, 0.0001)
    assert pacers[1].pace("fast.example.").delay == quick.shortest
    slots: list[float] = []
    lock = threading.Lock()

    def worker(pacer):
        for _ in range(8):
            slot = pacer.claim("fast.example")
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=worker, args=(pacers[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slots.sort()
    rate = share * quick.per_host_rate_max
    for i in range(len(slots)):
        for j in range(i, len(slots)):
            assert j - i + 1 <= rate * (slots[j] - slots[i]) + burst + 1e-3
    assert slots[-1] - slots[0] >= (len(slots) - burst) / rate - 1e-2
    # robots.txt's rate caps the part at its share of it (and, slower than per_host_rate, without burst)
    first = pacers[0].claim("robots.example", robots_rate=1.0)
    assert pacers[1].due("robots.example", robots_rate=1.0) == pytest.approx(first + 1.0 / share, abs=1e-2)
    # a host slowed below per_host_rate gets no burst: the next request is a whole delay away
    for _ in range(3):
        pacers[0].observe("busy.example", BACK_OFF, 0.0)
    claimed = pacers[1].claim("busy.example")
    assert pacers[0].due("busy.example") == pytest.approx(claimed + 4.0 / share, abs=1e-2)
    # a request that would be due only after its deadline gives up at once, claiming nothing
    asked = time.time()
    assert pacers[0].claim("busy.example", give_up_at=asked + 7.0) is None and time.time() - asked < 0.5
    assert pacers[0].due("busy.example") == pytest.approx(claimed + 4.0 / share, abs=1e-2)
    # requests already waiting for a host go at the pace of the moment each is due: a back-off
    # meanwhile spaces them out (slots reserved ahead would have kept the old 0.05 s)
    turn = AdaptivePacer(tmp_path, AdaptiveBounds(0.2, 50.0, 20.0, 5.0), 1.0, 1.0)
    first = turn.claim("turn.example")
    waiting = []
    threads = [threading.Thread(target=lambda: waiting.append(turn.claim("turn.example"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        turn.observe("turn.example", BACK_OFF, 0.0)  # 0.05 -> 0.4 s
    for thread in threads:
        thread.join()
    waiting.sort()
    assert waiting[0] - first == pytest.approx(0.05, abs=0.03)  # due before the back-off
    assert [round(b - a, 1) for a, b in zip(waiting, waiting[1:])] == [0.4, 0.4]


def test_request_outcomes_for_the_adaptive_pace():
    assert outcome_of(200, None) == (ANSWERED, False) and outcome_of(404, None) == (ANSWERED, True)
    assert outcome_of(429, None) == (BACK_OFF, True) and outcome_of(503, None) == (BACK_OFF, True)
    assert outcome_of(None, CrawlError("download_timeout", "x")) == (BACK_OFF, True)
    assert outcome_of(None, OSError("<urlopen error timed out>")) == (BACK_OFF, True)
    assert outcome_of(None, CrawlError("download_too_large", "x")) == (ANSWERED, False)
    assert outcome_of(None, CrawlError("blocked_address", "x")) is None
    assert outcome_of(None, ConnectionResetError("reset")) == (FAILED, True)


def test_download_settings_keep_the_config_key_names():
    """One builder from the validated config: every `download` key (but `processes`, the rule's
    threads) is a field of the same name and value; the guard's settings follow the politeness."""
    config = defaults()
    settings = DownloadSettings.from_config(config)
    fields = {f.name for f in dataclasses.fields(DownloadSettings)}
    assert set(config["download"]) - {"processes"} <= fields
    assert all(getattr(settings, key) == value for key, value in config["download"].items() if key != "processes")
    assert (settings.max_length, settings.max_pixels) == (config["urls"]["max_length"], config["images"]["max_pixels"])
    assert settings == DownloadSettings(**settings.as_params())  # what the rule passes and the adapter rebuilds
    fixed = guard_settings(per_host_rate=2, per_host_rate_max=10, parts=16, parts_per_host=4)
    adaptive = guard_settings(politeness="adaptive", per_host_rate=2, per_host_rate_max=10, parts=16, parts_per_host=4)
    assert (fixed.stage_rate, fixed.rate) == (2.0, 0.5)
    assert (adaptive.stage_rate, adaptive.rate, adaptive.host_share) == (10.0, 2.5, 0.25)
    download = {**config["download"], "politeness": "adaptive", "min_rate": 20.0}
    with pytest.raises(ValueError, match="min_rate"):
        DownloadSettings.from_config({**config, "download": download})
