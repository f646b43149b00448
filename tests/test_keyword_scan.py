"""The keyword filter's multi-literal scan (rs5m.pub11.keyword_scan) against the reference RE2 query, row by row."""

import random
import string

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import REPO
from schema_defaults import keyword_filter_args

pytest.importorskip("hyperscan")  # pinned for x86_64; elsewhere the keyword filter uses RE2 alone
from rs5m.pub11 import keyword_filter as metadata
from rs5m.pub11.keyword_filter import _classify_sql, filter_chunk
from rs5m.pub11.keyword_scan import FOLDS_TO_ASCII, LiteralScanner
from rs5m.pub11.keywords import any_pattern_regex, load_patterns
from rs5m.pub11.sources import FORMATS, sql_string

KEYWORDS = str(REPO / "config" / "keywords.txt")
PATTERNS = load_patterns(KEYWORDS)


def test_re2_folds_exactly_two_non_ascii_characters_onto_ascii():
    """What RE2's (?i) (DuckDB's and pyarrow's regex engine) folds onto an ASCII letter or digit."""
    chars = pa.array([chr(c) for c in range(0x80, 0x110000) if not 0xD800 <= c < 0xE000])
    hits = pc.match_substring_regex(chars, "(?i)[a-z0-9]").to_numpy(zero_copy_only=False)
    folded = {
        c: next(a for a in string.ascii_lowercase if pc.match_substring_regex(pa.array([c]), f"(?i){a}")[0].as_py())
        for c in chars.filter(pa.array(hits)).to_pylist()
    }
    assert folded == FOLDS_TO_ASCII
    # Turkish dotted capital I and dotless i are not 'i' for RE2 (unlike str.casefold for 'İ').
    assert not pc.match_substring_regex(pa.array(["İ", "ı"]), "(?i)i").to_pylist()[0]


TRICKY = [
    "Satellite image of a harbour",
    "SATELLITE IMAGERY",
    "sAtElLiTe PhOtO",
    "a cat on a sofa",
    "",
    None,
    "   ",
    "\tlandsat",
    "ſatellite view of Berlin",  # long s folds to s
    "Google Earth \u212aeyhole",
    "\u212aodak",  # Kelvin sign: candidate, decided by RE2
    "İstanbul from space photo",
    "ıstanbul usgs",
    "aerial\nimage",
    "aerial  image",
    "aerial-image",
    "aerialimage",
    "remote sens",
    "emote sensing",
    "xlandsatx",
    "LandSat-8",
    "MODIS/Terra",
    "sentinel-2A",
    "sentinel 2",
    "sentinel2",
    "space-borne imagery",
    "spaceborne  view",
    "geographic information systems",
    "arcgis\u00a0online",
    "衛星画像 satellite map 🛰️",
    "Спутниковый снимок earth observation",
    "naïve naip",
    "\u00a0leading nbsp",
    "trailing satel",
    "lite imagery at row start",
    "earth",
    " observ",
    "maxarmaxar",
    "planet  dove",
    "planet dove",
]


def scanner_and_re2(strings):
    array = pa.array(strings, pa.string())
    scanned = LiteralScanner(PATTERNS).matching_rows(array)
    reference = pc.fill_null(pc.match_substring_regex(array, any_pattern_regex(PATTERNS)), False).to_numpy(
        zero_copy_only=False
    )
    return scanned, reference


def test_scanner_finds_every_re2_match_and_only_fold_rows_besides():
    scanned, reference = scanner_and_re2(TRICKY)
    assert (scanned | ~reference).all(), [s for s, a, b in zip(TRICKY, scanned, reference) if b and not a]
    extra = [s for s, a, b in zip(TRICKY, scanned, reference) if a and not b]
    assert extra == ["\u212aodak"]  # a candidate only: the classification query drops it
    assert scanned[TRICKY.index("trailing satel")] == scanned[TRICKY.index("lite imagery at row start")] == False  # noqa: E712


def test_scanner_on_sliced_and_large_arrays():
    array = pa.array(TRICKY * 3, pa.large_string()).slice(5, 60)
    scanned = LiteralScanner(PATTERNS).matching_rows(array)
    reference = pc.fill_null(pc.match_substring_regex(array, any_pattern_regex(PATTERNS)), False).to_numpy(
        zero_copy_only=False
    )
    assert (scanned | ~reference).all()
    assert scanned.sum() - reference.sum() == sum(
        1
        for s in array.to_pylist()
        if s and "\u212a" in s and not pc.match_substring_regex(pa.array([s]), any_pattern_regex(PATTERNS))[0].as_py()
    )


def test_non_ascii_patterns_use_the_regex_path():
    assert not LiteralScanner.supports(["télédétection"])
    assert LiteralScanner.supports(PATTERNS)


WORDS = (
    "the a of and in for with on to by photo image stock vector free black white red blue women men dress shoes "
    "wedding cake dog cat flower tree beach sea mountain city street night wall art print poster design logo icon "
    "background texture wood water sky cloud sun winter summer christmas party gift card book cover map world view "
    "travel hotel room table chair sofa vintage HD giclee prints sale California original paintings premium Custom "
    "Portfolios Writing Pad Passport Holder Case Cover Wallet Colorful used Peugeot hatchback petrol Station Hospital "
    "Ribbon Cutting Ceremony Board Game Exclusive Bonus Message &amp; <a href='http://x.example/y'> </a> (L69) -- 2018 "
    "naïve café São Paulo Zürich İstanbul ıslak Ελλάδα Москва 東京 北京 서울 🌍 🛰️ — … ſ \u212a Kelvin"
).split()
PHRASES = PATTERNS + [
    "satellite",
    "aerial",
    "space",
    "sentinel",
    "earth",
    "remote",
    "google",
    "planet",
    "image",
    "imagery",
]


def real_like_captions(rows: int, seed: int = 17) -> list:
    """Alt-text-like captions: 1-40 words from web-caption vocabulary (HTML, accents, CJK, emoji, the
    two fold characters, Turkish i's), 2 % with a pattern or a pattern fragment in random case, some
    with the long s or Kelvin sign inside a pattern, blanks, nulls and leading whitespace."""
    rng = random.Random(seed)
    lengths = np.random.default_rng(seed).geometric(0.12, rows).clip(1, 40)
    captions = []
    for n in lengths:
        words = rng.choices(WORDS, k=int(n))
        roll = rng.random()
        if roll < 0.02:
            phrase = rng.choice(PHRASES)
            phrase = "".join(c.upper() if rng.random() < 0.3 else c for c in phrase)
            if rng.random() < 0.1:
                phrase = phrase.replace("s", "ſ", 1).replace("k", "\u212a", 1)
            words.insert(rng.randrange(len(words) + 1), phrase)
        elif roll < 0.021:
            captions.append(None)
            continue
        elif roll < 0.022:
            captions.append(rng.choice(["", " ", "\t", "\u3000"]))
            continue
        sep = "" if rng.random() < 0.01 else " "
        text = sep.join(words)
        if rng.random() < 0.01:
            text = rng.choice([" ", "\n", "\u00a0"]) + text
        captions.append(text)
    return captions


def reference_rows(path, max_caption_bytes=65536):
    """The classification query over every row of the file: no pre-selection."""
    fmt = FORMATS["laion2b"]
    con = duckdb.connect()
    relation = f"(SELECT * FROM read_parquet({sql_string(str(path))}, file_row_number=true))"
    available = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_string(str(path))})").fetchall()}
    table = con.sql(
        _classify_sql(fmt, relation, available, max_caption_bytes, PATTERNS, order_by="file_row_number")
    ).to_arrow_table()
    return [row for row in table.select(["_reason", "url", "caption", "captions", "matched_keywords"]).to_pylist()]


def stage_rows(tmp_path, path, name):
    out = tmp_path / name / "kept.parquet"
    filter_chunk("laion2b", [str(path)], str(out), KEYWORDS, **keyword_filter_args(max_caption_bytes=400))
    kept = pq.read_table(out).select(["url", "caption", "captions", "matched_keywords"]).to_pylist()
    drops = pq.read_table(out.with_name("kept.drops.parquet")).select(["reason", "detail"]).to_pylist()
    return kept, drops


def compare_with_reference(tmp_path, captions, monkeypatch):
    rows = len(captions)
    path = tmp_path / "part.parquet"
    urls = [
        f"https://img{i % 7}.example.com/{i}.jpg" if i % 501 else (None if i % 1002 else "ftp://x/y")
        for i in range(rows)
    ]
    pq.write_table(pa.table({"URL": urls, "TEXT": pa.array(captions, pa.string())}), path, row_group_size=100_000)
    reference = reference_rows(path, max_caption_bytes=400)
    ref_kept = [
        {k: r[k] for k in ("url", "caption", "captions", "matched_keywords")} for r in reference if r["_reason"] is None
    ]
    ref_drops = [{"reason": r["_reason"], "detail": r["url"] or ""} for r in reference if r["_reason"] is not None]
    kept, drops = stage_rows(tmp_path, path, "scan")
    assert len(kept) == len(ref_kept) and kept == ref_kept
    assert drops == ref_drops
    # The RE2 pre-selection (kept for non-ASCII patterns) gives the same rows too.
    monkeypatch.setattr(metadata.LiteralScanner, "supports", staticmethod(lambda patterns: False))
    assert stage_rows(tmp_path, path, "regex") == (kept, drops)
    return kept, drops


def test_filter_equals_reference_query_on_tricky_corpus(tmp_path, monkeypatch):
    captions = TRICKY * 50 + ["x" * 500 + " landsat"]  # one over max_caption_bytes
    kept, drops = compare_with_reference(tmp_path, captions, monkeypatch)
    assert {d["reason"] for d in drops} >= {"caption_too_long", "null_caption"}
    assert any("ſatellite" in r["caption"] for r in kept) and not any(
        r["caption"].startswith("\u212aodak") for r in kept
    )


@pytest.mark.parametrize("rows", [1_000_000])
def test_filter_equals_reference_query_on_a_million_real_like_captions(tmp_path, monkeypatch, rows):
    kept, drops = compare_with_reference(tmp_path, real_like_captions(rows), monkeypatch)
    assert 10_000 < len(kept) < 30_000
    assert any("ſ" in r["caption"] or "\u212a" in r["caption"] for r in kept)
