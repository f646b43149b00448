"""The offline gazetteer entity ruler of place names, and the optional spaCy path."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rs5m.pub11.pub11_places import Gazetteer, default_gazetteer, place_rows, places_table, spacy_places
from rs5m.pub11.settings import PlaceSettings


def test_gazetteer_longest_match_case_and_unicode():
    gazetteer = Gazetteer(["York", "New York", "New York City", "Zürich", "Côte d'Ivoire", "Nice"])
    assert gazetteer.find("Aerial view of New York City and York") == ["New York City", "York"]
    assert gazetteer.find("satellite photo of Zürich, near Côte d'Ivoire") == ["Zürich", "Côte d'Ivoire"]
    assert gazetteer.find("a nice view of new york") == []


def test_default_gazetteer_has_countries_and_cities():
    gazetteer = default_gazetteer(100_000)
    assert gazetteer.find("Satellite image of São Paulo, Brazil") == ["São Paulo", "Brazil"]
    assert gazetteer.find("floods in Bolivia near Kraków") == ["Bolivia", "Kraków"]
    assert gazetteer.find("a reading room with a nice view") == []


def test_places_table_rows(tmp_path):
    source = tmp_path / "captions.parquet"
    pq.write_table(
        pa.table(
            {
                "uid": ["a", "b", "c"],
                "caption": ["aerial view of Paris", "a cat on a sofa", "Tokyo and Japan from space"],
            }
        ),
        source,
    )
    assert places_table(source, tmp_path / "gpe.parquet", PlaceSettings(spacy_model=None, min_population=100_000)) == 2
    rows = pq.read_table(tmp_path / "gpe.parquet").to_pylist()
    assert rows == [
        {"img_name": "a", "text": "aerial view of Paris", "entity": ["Paris"], "uid": "a"},
        {"img_name": "c", "text": "Tokyo and Japan from space", "entity": ["Tokyo", "Japan"], "uid": "c"},
    ]


def test_missing_spacy_model_gives_clear_message():
    with pytest.raises(RuntimeError, match="spaCy|spacy"):
        spacy_places(["Paris"], "en_core_web_sm")
    with pytest.raises(RuntimeError, match="places.spacy_model"):
        place_rows(["a"], ["Paris"], spacy_model="en_core_web_sm", min_population=100_000)
