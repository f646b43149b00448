"""PUB11's settings: the config sections of its stages (but the download's, DownloadSettings in
download_part), as the stages read them (`metadata`, `urls`, `images`, `dedup`, `outliers`, `places`).

Built once from the validated config (`OutlierSettings.from_config(config)`, ...) by the rules'
adapters, the tests and the benchmarks alike; field names are the schema's key names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from rs5m.pub11.sources import pool_hash_columns
from rs5m.settings import ClipModel, from_section


@dataclass(frozen=True)
class Prompts:
    modifiers: list[str]
    nouns: list[str]


@dataclass(frozen=True)
class Detector:
    """outliers.detector without its folders and workers: the rule's inputs and threads carry those."""

    model: str
    epochs: int
    imgsz: int
    batch: int
    seed: int
    max_per_class: int | None
    amp: bool
    train_args: dict


@dataclass(frozen=True)
class ScoringSettings:
    """What `score_part` reads of `outliers` (GPU; its rule passes only these keys, see
    `rs5m.settings.section_for`, so a change of e.g. `qa_levels` does not rescore)."""

    clip: ClipModel
    prompts: Prompts
    batch_size: int
    reduced_decode: bool
    device: str
    precision: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ScoringSettings:
        return from_section(cls, config["outliers"])


@dataclass(frozen=True)
class DetectorSettings:
    """What `train_rs_detector` reads of `outliers` (GPU; its rule passes only these keys)."""

    detector: Detector
    device: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DetectorSettings:
        return from_section(cls, config["outliers"])


@dataclass(frozen=True)
class ThresholdSettings:
    """What the joint threshold reads of `outliers` (its rule passes only these keys: everything
    after the threshold reruns when its output changes)."""

    clip_top_percent: float
    rs_top_percent: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ThresholdSettings:
        return from_section(cls, config["outliers"])


@dataclass(frozen=True)
class OutlierSettings:
    """What the QA sheet reads of `outliers`: the threshold's keys and its grid's levels."""

    clip_top_percent: float
    rs_top_percent: float
    qa_levels: list[float]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OutlierSettings:
        return from_section(cls, config["outliers"])


@dataclass(frozen=True)
class ImageSettings:
    max_pixels: int
    min_side: int
    phash_exact: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ImageSettings:
        return from_section(cls, config["images"])


@dataclass(frozen=True)
class DedupConfirm:
    size: int
    threshold: float


@dataclass(frozen=True)
class DedupSettings:
    phash_radius: int
    bands: int
    confirm: DedupConfirm

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DedupSettings:
        return from_section(cls, config["dedup"])


@dataclass(frozen=True)
class SourceSettings:
    """The keys of one source (`sources.<name>`) the keyword filter reads: `format` (None: the
    source's own name), `columns`, `filters`; its files, chunks and `index_file` are the rule's inputs."""

    format: str | None
    columns: dict | None
    filters: list[str]

    @classmethod
    def from_source(cls, config: Mapping[str, Any], source: str) -> SourceSettings:
        return from_section(cls, config["sources"][source])

    def as_params(self) -> dict[str, Any]:
        """The fields as a plain dict, for the rule's params (Snakemake compares params by their repr)."""
        return asdict(self)


@dataclass(frozen=True)
class MetadataSettings:
    """The metadata keys of the keyword filter (its threads are the rule's)."""

    max_caption_bytes: int
    on_bad_file: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MetadataSettings:
        return from_section(cls, config["metadata"])


@dataclass(frozen=True)
class UrlFilterSettings:
    """The URL filter's keys: `urls.allowed_networks`, `urls.blocked_suffixes`, `urls.max_length`,
    `download.parts_per_host` (a host's URLs go to at most that many parts), and the pool hashes of
    the sources that map them, {source: native column} (`sources.<name>.columns.sha256` / `.phash`,
    rs5m.pub11.sources.pool_hash_columns). Its threads and memory limit are the rule's."""

    allowed_networks: list[str]
    blocked_suffixes: list[str]
    max_length: int
    parts_per_host: int
    sha256_columns: dict[str, str]
    phash_columns: dict[str, str]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> UrlFilterSettings:
        urls = config["urls"]
        return cls(
            allowed_networks=urls["allowed_networks"],
            blocked_suffixes=urls["blocked_suffixes"],
            max_length=urls["max_length"],
            parts_per_host=config["download"]["parts_per_host"],
            sha256_columns=pool_hash_columns(config["sources"], "sha256"),
            phash_columns=pool_hash_columns(config["sources"], "phash"),
        )

    def as_params(self) -> dict[str, Any]:
        """The fields as a plain dict, for the rule's params (Snakemake compares params by their repr)."""
        return asdict(self)


@dataclass(frozen=True)
class PlaceSettings:
    spacy_model: str | None
    min_population: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PlaceSettings:
        return from_section(cls, config["places"])
