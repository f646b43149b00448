"""Decontamination of one subset (rules decontaminate_pub11, decontaminate_rs3): find candidate pairs
against every eval set by pHash and CLIP embedding, confirm each by comparing the two images
(rs5m.confirm.confirmation_score); drop (`eval_overlap`) or only report the
samples with a confirmed pair. Unconfirmed candidates are kept and listed in the matches.

Reads the subset's table (PUB11 outliers.parquet, RS3 captioned.parquet), its stored pHashes and
embeddings and the eval-set features; writes `results/{subset}/final.parquet` with its ledger and
`results/decontamination/{subset}.matches.parquet`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.columns import SOURCE, UID
from rs5m.confirm import ConfirmThumb, confirm_thumb, confirmation_score, is_confirmed, open_images
from rs5m.decontamination.matching import (
    ACTIONS,
    EVAL_SCHEMA,
    FEATURE_SCHEMA,
    MATCH_SCHEMA,
    N_VARIANTS,
    REASON,
    STAGE,
    VARIANT_NAMES,
    embedding_index,
    embedding_search,
    hash_search,
)
from rs5m.decontamination.settings import DecontaminationSettings
from rs5m.ledger import Ledger

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ search
@dataclass
class EvalData:
    names: list[str]
    table: pa.Table  # EVAL_SCHEMA rows of every set
    hashes: np.ndarray  # (n * 8,) variant-major per image
    vectors: np.ndarray  # (n * 8, d) float32


def load_eval(eval_tables: Sequence[str | Path]) -> EvalData:
    tables, hashes, vectors, names = [], [], [], []
    for path in eval_tables:
        table = pq.read_table(path, schema=EVAL_SCHEMA)
        emb = np.load(Path(str(path)[: -len(".parquet")] + ".npy")).astype(np.float32)
        names.append(Path(path).name[: -len(".parquet")])
        tables.append(table)
        hashes.append(np.array(table.column("phash").to_pylist(), dtype=np.int64).reshape(-1))
        vectors.append(
            emb.reshape(table.num_rows * N_VARIANTS, -1)
            if table.num_rows
            else emb.reshape(0, emb.shape[-1] if emb.ndim == 3 else 0)
        )
    table = pa.concat_tables(tables) if tables else EVAL_SCHEMA.empty_table()
    dims = {v.shape[1] for v in vectors if len(v)}
    if len(dims) > 1:
        raise ValueError(f"eval embeddings of different sizes {sorted(dims)}: rerun decontamination_eval")
    dim = dims.pop() if dims else 0
    vectors = np.concatenate([v for v in vectors if len(v)]) if dim else np.zeros((0, 0), np.float32)
    hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.int64)
    return EvalData(names, table, hashes, vectors)


def _feature_parts(pairs: Sequence[tuple[str | Path, str | Path]]) -> Iterable[tuple[list[str], np.ndarray]]:
    """(uids, embeddings) of each (uid parquet, row-aligned .npy) pair."""
    for table_path, npy in pairs:
        uids = pq.read_table(table_path, columns=[UID]).column(UID).to_pylist()
        vectors = np.load(npy)
        if len(vectors) != len(uids):
            raise ValueError(f"{npy} has {len(vectors)} rows but {table_path} {len(uids)}: stale embeddings")
        yield uids, vectors


def find_matches(
    subset: str,
    table: pa.Table,
    source_column: str,
    location: list[str],
    phashes: np.ndarray,
    hash_valid: np.ndarray,
    embedding_parts: Sequence[tuple[str | Path, str | Path]],
    evals: EvalData,
    radius: int,
    threshold: float | None,
) -> list[dict]:
    """Every candidate pair of both matchers, one per (dataset image, method, eval image): the pHash
    pairs within `radius` bits (the closest variant) and each image's nearest eval embedding when it
    reaches `threshold`. MATCH_SCHEMA rows less the confirmation, with `_variants`: the eval image's
    variants within the radius (a near-symmetric image can hash alike in several)."""
    uids = table.column(UID).to_pylist()
    sources = table.column(source_column).to_pylist()
    row_of = {uid: i for i, uid in enumerate(uids)}
    eval_rows = evals.table.to_pydict()
    found: dict[tuple[int, str, int], tuple[float, int]] = {}  # (row, method, eval image) -> (score, variant row)

    aligned: dict[tuple[int, str, int], set[int]] = {}  # the variants within the radius / the nearest

    def record(rows, eval_variant_rows, scores, method, better):
        for row, ev, score in zip(rows.tolist(), eval_variant_rows.tolist(), scores.tolist()):
            key = (row, method, ev // N_VARIANTS)
            aligned.setdefault(key, set()).add(ev % N_VARIANTS)
            if key not in found or better(score, found[key][0]) or (score == found[key][0] and ev < found[key][1]):
                found[key] = (score, ev)

    rows_valid = np.nonzero(hash_valid)[0]
    q, i, d = hash_search(evals.hashes, np.asarray(phashes, np.int64)[rows_valid], radius)
    record(rows_valid[q], i, d.astype(np.float64), "phash", lambda a, b: a < b)
    logger.info("%s: %d pHash pairs within %d bits", subset, len(q), radius)

    if threshold is not None and len(evals.vectors):
        index = embedding_index(evals.vectors)
        pairs = 0
        for part_uids, vectors in _feature_parts(embedding_parts):
            positions = np.array([row_of.get(u, -1) for u in part_uids], dtype=np.int64)
            vectors = vectors.astype(np.float32)
            keep = (positions >= 0) & ~np.isnan(vectors).any(axis=1) if len(vectors) else positions >= 0
            if not keep.any():
                continue
            if vectors.shape[1] != evals.vectors.shape[1]:
                raise ValueError(
                    f"dataset embeddings have {vectors.shape[1]} dimensions, eval {evals.vectors.shape[1]}:"
                    " eval and dataset were embedded by different models"
                )
            qq, ii, ss = embedding_search(index, vectors[keep], threshold)
            record(positions[keep][qq], ii, ss, "embedding", lambda a, b: a > b)
            pairs += len(qq)
        logger.info("%s: %d images with an embedding match (cosine >= %s)", subset, pairs, threshold)

    rows = []
    for (row, method, image), (score, ev) in found.items():
        rows.append(
            {
                "subset": subset,
                UID: uids[row],
                SOURCE: sources[row],
                "method": method,
                "eval_set": eval_rows["eval_set"][image],
                "image_id": eval_rows["image_id"][image],
                "eval_path": eval_rows["path"][image],
                "variant": VARIANT_NAMES[ev % N_VARIANTS],
                "score": score,
                "location": location[row],
                "_variants": sorted(aligned[(row, method, image)]),
            }
        )
    rows.sort(key=lambda m: (m[UID], m["method"], m["eval_set"], m["image_id"]))
    return rows


def confirm_candidates(candidates: list[dict], size: int, threshold: float, batch: int = 4096) -> pa.Table:
    """Score every candidate pair with confirmation_score (the variants within the radius for pHash,
    all eight for embedding) and mark those is_confirmed at `threshold`; MATCH_SCHEMA rows. Dataset
    images are read in batches of `batch` candidates; eval images once each."""
    eval_thumbs: dict[str, ConfirmThumb | None] = {}
    out = []
    for start in range(0, len(candidates), batch):
        chunk = candidates[start : start + batch]
        images = open_images([m["location"] for m in chunk])
        thumbs = {loc: None if im is None else confirm_thumb(im, size) for loc, im in images.items()}
        missing = sorted({m["eval_path"] for m in chunk} - set(eval_thumbs))
        for path, image in open_images(missing).items():
            eval_thumbs[path] = None if image is None else confirm_thumb(image, size)
        for m in chunk:
            dataset, eval_thumb = thumbs[m["location"]], eval_thumbs[m["eval_path"]]
            variants = m["_variants"] if m["method"] == "phash" else range(N_VARIANTS)
            row = {k: v for k, v in m.items() if not k.startswith("_")}
            if dataset is None or eval_thumb is None:
                unread = {"confirmation": math.nan, "color_difference": math.nan, "layout_difference": math.nan}
                out.append({**row, **unread, "confirmed": False})
                continue
            confirmation = confirmation_score(dataset, eval_thumb, variants)
            out.append(
                {
                    **row,
                    "confirmation": confirmation.score,
                    "color_difference": confirmation.color_difference,
                    "layout_difference": confirmation.layout_difference,
                    "confirmed": is_confirmed(confirmation, threshold),
                }
            )
    return pa.Table.from_pylist(out, schema=MATCH_SCHEMA)


def _best_match(matches: list[dict]) -> dict:
    """The confirmed pair a drop names: the closest pHash pair, else the most similar embedding pair."""
    hashed = [m for m in matches if m["method"] == "phash"]
    if hashed:
        return min(hashed, key=lambda m: (m["score"], m["eval_set"], m["image_id"]))
    return max(matches, key=lambda m: (m["score"], [-ord(c) for c in m["eval_set"] + m["image_id"]]))


def decontaminate(
    subset: str,
    table_path: str | Path,
    out: str | Path,
    stats_out: str | Path,
    drops_out: str | Path,
    matches_out: str | Path,
    eval_tables: Sequence[str | Path],
    embedding_parts: Sequence[tuple[str | Path, str | Path]],
    phash_parts: Sequence[str | Path],
    settings: DecontaminationSettings,
) -> dict:
    """Match one subset (`pub11` or `rs3`) against every eval set; `drop` removes the rows with a
    confirmed pair (ledger reason `eval_overlap`), `report` keeps them; candidates that fail the
    confirmation are only listed (matches, `confirmed` false). Writes the final table, its ledger and the
    matches. PUB11's pHash is the table's `phash` column; RS3's comes from `phash_parts`. The action
    is `decontamination.action.<subset>`."""
    action = getattr(settings.action, subset)
    if action not in ACTIONS:
        raise ValueError(f"decontamination action must be one of {ACTIONS}, got {action!r}")
    table = pq.read_table(table_path)
    source_column = SOURCE if subset == "pub11" else "dataset"
    if subset == "pub11":
        phashes = table.column("phash").to_numpy(zero_copy_only=False).astype(np.int64)
        hash_valid = np.ones(len(phashes), bool)
        location = [f"{t}::{m}" for t, m in zip(table.column("tar").to_pylist(), table.column("member").to_pylist())]
    else:
        features = (
            pa.concat_tables([pq.read_table(p, schema=FEATURE_SCHEMA) for p in phash_parts])
            if phash_parts
            else FEATURE_SCHEMA.empty_table()
        )
        by_uid = dict(zip(features.column(UID).to_pylist(), features.column("phash").to_pylist()))
        values = [by_uid.get(u) for u in table.column(UID).to_pylist()]
        phashes = np.array([0 if v is None else v for v in values], dtype=np.int64)
        hash_valid = np.array([v is not None for v in values], dtype=bool)
        if not hash_valid.all():
            logger.warning("%d RS3 images have no pHash (unreadable)", int((~hash_valid).sum()))
        location = table.column("image_path").to_pylist()
    evals = load_eval(eval_tables)
    candidates = find_matches(
        subset,
        table,
        source_column,
        location,
        phashes,
        hash_valid,
        embedding_parts,
        evals,
        int(settings.phash.radius),
        settings.embedding_threshold(),
    )
    matches = confirm_candidates(candidates, int(settings.confirm.size), float(settings.confirm.threshold))
    Path(matches_out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(matches, matches_out)

    by_uid: dict[str, list[dict]] = {}
    candidates_of: set[str] = set()
    for match in matches.to_pylist():
        candidates_of.add(match[UID])
        if match["confirmed"]:
            by_uid.setdefault(match[UID], []).append(match)
    drop = action == "drop"
    ledger = Ledger(STAGE)
    keep = np.ones(table.num_rows, bool)
    for i, (uid, source) in enumerate(zip(table.column(UID).to_pylist(), table.column(source_column).to_pylist())):
        if drop and uid in by_uid:
            best = _best_match(by_uid[uid])
            keep[i] = False
            ledger.drop(uid, source, REASON, f"{best['eval_set']}:{best['image_id']}")
        else:
            ledger.keep(source)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.filter(pa.array(keep)), out)
    ledger.write(stats_out, drops_out)
    summary = {
        "subset": subset,
        "action": action,
        "rows_in": table.num_rows,
        "candidates": len(candidates_of),
        "matched": len(by_uid),
        "dropped": len(ledger.drop_rows),
    }
    logger.info("%s", summary)
    return summary
