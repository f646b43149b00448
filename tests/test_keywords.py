import random

import duckdb
import pytest
from conftest import REPO

from rs5m.pub11.keywords import any_pattern_regex, load_patterns, matched_patterns, re2_escape, single_pattern_regexes

PATTERNS_FILE = REPO / "config" / "keywords.txt"


def duck_match(texts, patterns):
    con = duckdb.connect()
    rows = con.execute(
        "SELECT t, regexp_matches(t, $any) FROM unnest($texts) AS u(t)",
        {"any": any_pattern_regex(patterns), "texts": texts},
    ).fetchall()
    return [bool(m) for _, m in rows]


def test_pattern_file_has_the_44_patterns_of_the_paper():
    patterns = load_patterns(PATTERNS_FILE)
    assert len(patterns) == 44
    assert patterns[0] == "remote sensing" and patterns[-1] == "geographic information system"
    assert "earth observ" in patterns and "space-borne view" in patterns


def test_repeated_pattern_is_rejected(tmp_path):
    path = tmp_path / "k.txt"
    path.write_text("aerial view\n# comment\n\nAerial View\n")
    with pytest.raises(ValueError, match="listed twice"):
        load_patterns(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("EARTH OBSERVATION satellites", ["earth observ"]),  # stem + case
        ("Aerial Imagery of Lyon", ["aerial imag"]),
        ("aerial  view", []),  # two spaces: substring semantics, no whitespace folding
        ("Sentinel-2 and Landsat", ["sentinel-2", "landsat"]),
        ("sentinel2 tile", []),
        ("Zürich – satellite PHOTO, 2020 😀", ["satellite photo"]),  # non-ASCII around a match
        ("ÄERIAL VIEW", []),  # a different letter is not folded to ASCII
        ("remotesensing", []),
    ],
)
def test_duckdb_and_reference_matcher_agree_on_semantics(text, expected):
    patterns = load_patterns(PATTERNS_FILE)
    assert matched_patterns(text, patterns) == expected
    assert duck_match([text], patterns) == [bool(expected)]


def test_metacharacters_in_patterns_are_literal():
    patterns = ["a.b", "c+d", "(x)", "[y]"]
    texts = ["a.b", "axb", "c+d", "ccd", "(x)", "x", "[y]", "y"]
    assert duck_match(texts, patterns) == [True, False, True, False, True, False, True, False]
    assert re2_escape("a.b+c") == r"a\.b\+c"


def test_single_pattern_regexes_record_every_match():
    patterns = ["aerial view", "landsat"]
    con = duckdb.connect()
    regexes = single_pattern_regexes(patterns)
    got = con.execute(
        "SELECT list_filter($r, lambda r: regexp_matches('Landsat AERIAL VIEW', r))", {"r": regexes}
    ).fetchall()[0][0]
    assert got == regexes


def test_random_captions_agree_with_reference():
    patterns = load_patterns(PATTERNS_FILE)
    rng = random.Random(3)
    words = [
        "the",
        "Aerial",
        "view",
        "SATELLITE",
        "imagery",
        "of",
        "landsat",
        "cat",
        "space",
        "photo",
        "-",
        "borne",
        "usgs",
    ]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(500)]
    assert duck_match(texts, patterns) == [bool(matched_patterns(t, patterns)) for t in texts]
    assert 50 < sum(duck_match(texts, patterns)) < 450  # both outcomes are exercised
