"""Eval-set decontamination: find benchmark images (or their copies) in PUB11 and RS3, drop or report them.

Reads the eval sets (rs5m.eval_sets), the kept PUB11 table with its stored pHash and the CLIP image
embeddings the scoring stage stored (`results/pub11/embeddings/{part}.npy`, row-aligned with
`results/pub11/scores/{part}.parquet`), and the RS3 features this stage computes per caption part.
Writes per subset the final table, its ledger (stage `decontamination`, reason `eval_overlap`,
detail `<eval_set>:<image id>`) and the matches; then `results/stats/decontamination.{csv,md}` and
`decontamination_pairs.png`.

Two independent matchers:
- pHash: the 64-bit pHash of the image stage (rs5m.images.phash_int). Aerial images have no up, so
  each eval image is hashed in its eight dihedral variants (rotations by 0/90/180/270 degrees, with
  and without a flip); a dataset image matches when one variant is within `phash.radius` bits. The
  search is faiss's multi-index binary hash (IndexBinaryMultiHash): 16-bit bands with
  `nflip = radius // bands`, so by pigeonhole every pair within the radius is found.
- CLIP: cosine similarity of L2-normalised image embeddings of the scoring model; the eight eval
  variants are embedded and a dataset image matches when its best cosine reaches
  `embedding.threshold` (faiss IndexFlatIP, dataset embeddings searched in batches against the
  eval index).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from rs5m.columns import SOURCE, UID
from rs5m.eval_sets import read_eval_set
from rs5m.images import phash_int
from rs5m.ledger import StageStats, drops_table, write_drops, write_stats

logger = logging.getLogger("rs5m.decontamination")

STAGE = "decontamination"
REASON = "eval_overlap"
METHODS = ("phash", "embedding")
ACTIONS = ("drop", "report")
# The eight elements of the dihedral group D4 as PIL transposes (None = identity).
DIHEDRAL = (
    None,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)
VARIANT_NAMES = ("identity", "rot90", "rot180", "rot270", "flip_lr", "flip_tb", "transpose", "transverse")
N_VARIANTS = len(DIHEDRAL)

EVAL_SCHEMA = pa.schema(
    [
        ("eval_set", pa.string()),
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("captions", pa.list_(pa.string())),
        ("phash", pa.list_(pa.int64())),  # the eight dihedral variants, in DIHEDRAL order
    ]
)
FEATURE_SCHEMA = pa.schema([(UID, pa.string()), ("phash", pa.int64())])
MATCH_SCHEMA = pa.schema(
    [
        ("subset", pa.string()),
        (UID, pa.string()),
        (SOURCE, pa.string()),
        ("method", pa.string()),
        ("eval_set", pa.string()),
        ("image_id", pa.string()),
        ("eval_path", pa.string()),
        ("variant", pa.string()),
        ("score", pa.float64()),  # Hamming distance (phash) or cosine similarity (embedding)
        ("location", pa.string()),  # the dataset image: "tar::member" (PUB11) or a file path (RS3)
    ]
)


# ------------------------------------------------------------------------------------------ hashes
def dihedral_variants(image: Image.Image) -> list[Image.Image]:
    return [image if t is None else image.transpose(t) for t in DIHEDRAL]


def dihedral_phashes(image: Image.Image) -> np.ndarray:
    """The pHash (rs5m.images.phash_int) of each of the eight rotations/flips, as int64."""
    return np.array([phash_int(v) for v in dihedral_variants(image)], dtype=np.int64)


def _hash_bytes(hashes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(hashes, dtype=np.int64).astype(">i8").view(np.uint8).reshape(-1, 8))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = np.bitwise_xor(np.asarray(a, np.int64), np.asarray(b, np.int64)).view(np.uint64)
    return np.unpackbits(x.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def hash_index(hashes: np.ndarray, radius: int):
    """A faiss multi-index binary hash over 64-bit hashes that finds every hash within `radius` bits."""
    import faiss

    bands, bits = 4, 16
    index = faiss.IndexBinaryMultiHash(64, bands, bits)
    # Pigeonhole: a pair within `radius` bits differs in at most radius // bands bits on some band.
    index.nflip = int(radius) // bands
    index.add(_hash_bytes(hashes))
    return index


def hash_search(index_hashes: np.ndarray, queries: np.ndarray, radius: int, batch: int = 262144, index=None):
    """(query row, index row, distance) of every pair within `radius` bits (faiss range search)."""
    q_rows, i_rows, dists = [], [], []
    if len(index_hashes) == 0 or len(queries) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    index = index if index is not None else hash_index(index_hashes, radius)
    for start in range(0, len(queries), batch):
        chunk = _hash_bytes(queries[start : start + batch])
        lims, distances, labels = index.range_search(chunk, int(radius) + 1)  # faiss: distance < radius
        counts = np.diff(lims.astype(np.int64))
        q_rows.append(np.repeat(np.arange(start, start + len(chunk), dtype=np.int64), counts))
        i_rows.append(labels.astype(np.int64))
        dists.append(distances.astype(np.int64))
    q, i, d = np.concatenate(q_rows), np.concatenate(i_rows), np.concatenate(dists)
    keep = d <= radius
    return q[keep], i[keep], d[keep]


# -------------------------------------------------------------------------------------- embeddings
FLAT_LIMIT = 16384  # eval vectors up to which the search is exact (IndexFlatIP)


def embedding_index(vectors: np.ndarray):
    """Inner-product index over the unit eval vectors: exact (flat) for small sets; above FLAT_LIMIT
    an inverted file (IndexIVFFlat, 4 sqrt(n) lists, 1/16 of them probed) so the search cost grows
    with the dataset, not with dataset x eval set. Near-duplicates (cosine >= 0.9) fall in the
    probed lists of their own eval vector, so the approximation costs them little recall."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if len(vectors) <= FLAT_LIMIT:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(4 * math.sqrt(len(vectors)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 0
        index.train(vectors)
        index.nprobe = max(8, lists // 16)
    index.add(vectors)
    return index


def embedding_search(index, queries: np.ndarray, threshold: float, batch: int = 65536):
    """(query row, index row, cosine) of each query's nearest index vector when it reaches `threshold`."""
    q_rows, i_rows, sims = [], [], []
    for start in range(0, len(queries), batch):
        chunk = np.ascontiguousarray(queries[start : start + batch], dtype=np.float32)
        scores, labels = index.search(chunk, 1)
        hit = (scores[:, 0] >= threshold) & (labels[:, 0] >= 0)
        q_rows.append(np.nonzero(hit)[0] + start)
        i_rows.append(labels[hit, 0].astype(np.int64))
        sims.append(scores[hit, 0].astype(np.float64))
    if not q_rows:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    return np.concatenate(q_rows), np.concatenate(i_rows), np.concatenate(sims)


class _ImageFiles:
    """Map-style dataset for a DataLoader: one image file -> (preprocessed variants, phashes, ok)."""

    def __init__(self, paths: Sequence[str], preprocess, variants: bool) -> None:
        self.paths, self.preprocess, self.variants = list(paths), preprocess, variants

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch

        n = N_VARIANTS if self.variants else 1
        try:
            with Image.open(self.paths[i]) as im:
                rgb = im.convert("RGB")
            images = dihedral_variants(rgb) if self.variants else [rgb]
            hashes = np.array([phash_int(v) for v in images], dtype=np.int64)
            return torch.stack([self.preprocess(v) for v in images]), torch.from_numpy(hashes), True
        except Exception as error:  # an unreadable image is logged and skipped by the caller
            logger.warning("cannot read %s: %s", self.paths[i], error)
            blank = Image.new("RGB", (8, 8))
            return torch.stack([self.preprocess(blank)] * n), torch.zeros(n, dtype=torch.int64), False


def image_features(paths: Sequence[str], clip_model: str, clip_pretrained: str | None, variants: bool,
                   batch_size: int = 64, workers: int = 0, device: str = "auto", precision: str = "auto"):
    """(ok mask, pHashes (n, v), unit embeddings (n, v, d) float32) of image files; v = 8 with variants."""
    import torch
    import torch.nn.functional as F

    from rs5m.outliers import autocast_dtype, load_clip
    from rs5m.rs_detector import resolve_device

    device = resolve_device(device)
    dtype = autocast_dtype(device, precision)
    clip, preprocess, _ = load_clip(clip_model, clip_pretrained, device=device)
    dataset = _ImageFiles(paths, preprocess, variants)
    per_batch = max(1, int(batch_size) // (N_VARIANTS if variants else 1))
    loader = torch.utils.data.DataLoader(dataset, batch_size=per_batch, num_workers=int(workers))
    oks, hashes, vectors = [], [], []
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
        for images, phashes, ok in loader:
            b, v = images.shape[:2]
            flat = images.reshape(b * v, *images.shape[2:]).to(device)
            emb = F.normalize(clip.encode_image(flat).float(), dim=-1).cpu().numpy()
            vectors.append(emb.reshape(b, v, -1))
            hashes.append(phashes.numpy())
            oks.append(ok.numpy())
    if not vectors:
        dim = int(getattr(clip.visual, "output_dim", 0) or 0)
        return np.zeros(0, bool), np.zeros((0, N_VARIANTS if variants else 1), np.int64), np.zeros((0, 1, dim), np.float32)
    return np.concatenate(oks).astype(bool), np.concatenate(hashes), np.concatenate(vectors).astype(np.float32)


# ----------------------------------------------------------------------------------- feature jobs
def eval_set_features(name: str, paths: Sequence[str], fmt: str, out: str | Path, embeddings_out: str | Path,
                      clip_model: str, clip_pretrained: str | None, batch_size: int = 64, workers: int = 0,
                      device: str = "auto", precision: str = "auto") -> int:
    """One eval set: its images with the pHashes of their eight variants (parquet) and the
    embeddings of the eight variants (`.npy`, shape (images, 8, d)). Returns the images read."""
    eval_set = read_eval_set(name, list(paths), fmt)
    image_paths = [image.path for image in eval_set.images]
    ok, hashes, vectors = image_features(image_paths, clip_model, clip_pretrained, True, batch_size, workers,
                                         device, precision)
    images = [image for image, good in zip(eval_set.images, ok) if good]
    logger.info("eval set %s: %d images read, %d unreadable", name, len(images), int((~ok).sum()))
    table = pa.table(
        {
            "eval_set": [name] * len(images),
            "image_id": [image.image_id for image in images],
            "path": [image.path for image in images],
            "captions": [list(image.captions) for image in images],
            "phash": [list(map(int, h)) for h in hashes[ok]],
        },
        schema=EVAL_SCHEMA,
    ).replace_schema_metadata({"clip_model": clip_model, "clip_pretrained": str(clip_pretrained),
                               "missing": json.dumps(eval_set.missing[:1000]),
                               "unreadable": str(int((~ok).sum()))})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    np.save(embeddings_out, vectors[ok].astype(np.float16))
    return len(images)


def rs3_features(part: str | Path, out: str | Path, embeddings_out: str | Path, clip_model: str,
                 clip_pretrained: str | None, batch_size: int = 64, workers: int = 0, device: str = "auto",
                 precision: str = "auto") -> int:
    """pHash and scoring-model embedding of the kept images of one RS3 caption part (row-aligned)."""
    table = pq.read_table(part, columns=[UID, "image_path"])
    ok, hashes, vectors = image_features(table.column("image_path").to_pylist(), clip_model, clip_pretrained,
                                         False, batch_size, workers, device, precision)
    if (~ok).any():
        logger.warning("%d RS3 images unreadable here: they get no match", int((~ok).sum()))
    hashes = hashes.reshape(-1) if len(hashes) else np.zeros(0, np.int64)
    out_table = pa.table({UID: table.column(UID), "phash": pa.array(hashes, pa.int64(), mask=~ok)},
                         schema=FEATURE_SCHEMA)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out_table, out)
    vectors = vectors.reshape(len(ok), -1) if len(ok) else vectors.reshape(0, -1)
    vectors[~ok] = np.nan
    np.save(embeddings_out, vectors.astype(np.float16))
    return table.num_rows


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
        vectors.append(emb.reshape(table.num_rows * N_VARIANTS, -1) if table.num_rows else emb.reshape(0, emb.shape[-1] if emb.ndim == 3 else 0))
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


def find_matches(subset: str, table: pa.Table, source_column: str, location: list[str], phashes: np.ndarray,
                 hash_valid: np.ndarray, embedding_parts: Sequence[tuple[str | Path, str | Path]], evals: EvalData, radius: int,
                 threshold: float | None) -> pa.Table:
    """The best match per (dataset image, method, eval set) of both matchers, as MATCH_SCHEMA rows."""
    uids = table.column(UID).to_pylist()
    sources = table.column(source_column).to_pylist()
    row_of = {uid: i for i, uid in enumerate(uids)}
    eval_rows = evals.table.to_pydict()
    found: dict[tuple[int, str, str], tuple[float, int]] = {}  # (row, method, set) -> (score, eval variant row)

    def record(rows, eval_variant_rows, scores, method, better):
        for row, ev, score in zip(rows.tolist(), eval_variant_rows.tolist(), scores.tolist()):
            key = (row, method, eval_rows["eval_set"][ev // N_VARIANTS])
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
                raise ValueError(f"dataset embeddings have {vectors.shape[1]} dimensions, eval {evals.vectors.shape[1]}:"
                                 " eval and dataset were embedded by different models")
            qq, ii, ss = embedding_search(index, vectors[keep], threshold)
            record(positions[keep][qq], ii, ss, "embedding", lambda a, b: a > b)
            pairs += len(qq)
        logger.info("%s: %d images with an embedding match (cosine >= %s)", subset, pairs, threshold)

    rows = []
    for (row, method, eval_set), (score, ev) in sorted(found.items(), key=lambda kv: (uids[kv[0][0]], kv[0][1], kv[0][2])):
        image = ev // N_VARIANTS
        rows.append({"subset": subset, UID: uids[row], SOURCE: sources[row], "method": method, "eval_set": eval_set,
                     "image_id": eval_rows["image_id"][image], "eval_path": eval_rows["path"][image],
                     "variant": VARIANT_NAMES[ev % N_VARIANTS], "score": score, "location": location[row]})
    return pa.Table.from_pylist(rows, schema=MATCH_SCHEMA)


def _best_match(matches: list[dict]) -> dict:
    """The match a drop names: the closest pHash match, else the most similar embedding match."""
    hashed = [m for m in matches if m["method"] == "phash"]
    if hashed:
        return min(hashed, key=lambda m: (m["score"], m["eval_set"], m["image_id"]))
    return max(matches, key=lambda m: (m["score"], [-ord(c) for c in m["eval_set"] + m["image_id"]]))


def decontaminate(subset: str, table_path: str | Path, out: str | Path, stats_out: str | Path,
                  drops_out: str | Path, matches_out: str | Path, eval_tables: Sequence[str | Path],
                  embedding_parts: Sequence[tuple[str | Path, str | Path]] = (),
                  phash_parts: Sequence[str | Path] = (), action: str = "report", phash_radius: int = 8,
                  embedding_threshold: float | None = None) -> dict:
    """Match one subset (`pub11` or `rs3`) against every eval set; `drop` removes the matched rows
    (ledger reason `eval_overlap`), `report` keeps them. Writes the final table, its ledger and the
    matches. PUB11's pHash is the table's `phash` column; RS3's comes from `phash_parts`."""
    if action not in ACTIONS:
        raise ValueError(f"decontamination action must be one of {ACTIONS}, got {action!r}")
    table = pq.read_table(table_path)
    source_column = SOURCE if subset == "pub11" else "dataset"
    if subset == "pub11":
        phashes = table.column("phash").to_numpy(zero_copy_only=False).astype(np.int64)
        hash_valid = np.ones(len(phashes), bool)
        location = [f"{t}::{m}" for t, m in zip(table.column("tar").to_pylist(), table.column("member").to_pylist())]
    else:
        features = pa.concat_tables([pq.read_table(p, schema=FEATURE_SCHEMA) for p in phash_parts]) if phash_parts \
            else FEATURE_SCHEMA.empty_table()
        by_uid = dict(zip(features.column(UID).to_pylist(), features.column("phash").to_pylist()))
        values = [by_uid.get(u) for u in table.column(UID).to_pylist()]
        phashes = np.array([0 if v is None else v for v in values], dtype=np.int64)
        hash_valid = np.array([v is not None for v in values], dtype=bool)
        if not hash_valid.all():
            logger.warning("%d RS3 images have no pHash (unreadable)", int((~hash_valid).sum()))
        location = table.column("image_path").to_pylist()
    evals = load_eval(eval_tables)
    matches = find_matches(subset, table, source_column, location, phashes, hash_valid, embedding_parts, evals,
                           int(phash_radius), embedding_threshold)
    Path(matches_out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(matches, matches_out)

    by_uid: dict[str, list[dict]] = {}
    for match in matches.to_pylist():
        by_uid.setdefault(match[UID], []).append(match)
    drop = action == "drop"
    stats: dict[str, StageStats] = {}
    drop_rows, keep = [], np.ones(table.num_rows, bool)
    for i, (uid, source) in enumerate(zip(table.column(UID).to_pylist(), table.column(source_column).to_pylist())):
        entry = stats.setdefault(source, StageStats(STAGE, source))
        entry.rows_in += 1
        if drop and uid in by_uid:
            best = _best_match(by_uid[uid])
            entry.drop(REASON)
            keep[i] = False
            drop_rows.append({"uid": uid, "source": source, "stage": STAGE, "reason": REASON,
                              "detail": f"{best['eval_set']}:{best['image_id']}"})
        else:
            entry.kept += 1
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.filter(pa.array(keep)), out)
    write_stats(stats_out, [stats[s] for s in sorted(stats)])
    write_drops(drops_out, drops_table(drop_rows))
    summary = {"subset": subset, "action": action, "rows_in": table.num_rows, "matched": len(by_uid),
               "dropped": len(drop_rows)}
    logger.info("%s", summary)
    return summary


# ------------------------------------------------------------------------------------------ report
REPORT_COLUMNS = ("eval_set", "format", "images_read", "pub11_phash", "pub11_embedding", "pub11_matched",
                  "pub11_dropped", "rs3_phash", "rs3_embedding", "rs3_matched", "rs3_dropped")


def report_rows(eval_tables: Sequence[str | Path], formats: dict[str, str], matches: Sequence[str | Path],
                actions: dict[str, str]) -> list[dict]:
    """One row per eval set (plus a total): images read, dataset images matched per subset and
    method (an image matched by both methods counts once in `*_matched`), and dropped."""
    tables = [pq.read_table(p, schema=MATCH_SCHEMA) for p in matches]
    all_matches = pa.concat_tables(tables).to_pylist() if tables else []
    rows = []
    for path in eval_tables:
        name = Path(path).name[: -len(".parquet")]
        row = {"eval_set": name, "format": formats.get(name, ""), "images_read": pq.read_metadata(path).num_rows}
        for subset in ("pub11", "rs3"):
            mine = [m for m in all_matches if m["subset"] == subset and m["eval_set"] == name]
            for method in METHODS:
                row[f"{subset}_{method}"] = len({m[UID] for m in mine if m["method"] == method})
            row[f"{subset}_matched"] = len({m[UID] for m in mine})
            row[f"{subset}_dropped"] = row[f"{subset}_matched"] if actions.get(subset) == "drop" else 0
        rows.append(row)
    total = {"eval_set": "total", "format": ""}
    for column in REPORT_COLUMNS[2:]:
        total[column] = sum(r[column] for r in rows)
    # An image matched by two eval sets is dropped once: the total counts distinct images.
    for subset in ("pub11", "rs3"):
        mine = [m for m in all_matches if m["subset"] == subset]
        for method in METHODS:
            total[f"{subset}_{method}"] = len({m[UID] for m in mine if m["method"] == method})
        total[f"{subset}_matched"] = len({m[UID] for m in mine})
        total[f"{subset}_dropped"] = total[f"{subset}_matched"] if actions.get(subset) == "drop" else 0
    return rows + [total]


def _load_thumb(path: str, size: int = 128) -> Image.Image:
    from rs5m.tar_members import MemberReader, locate_members

    try:
        if "::" in path:
            tar, member = path.split("::", 1)
            reader = MemberReader()
            (location,) = locate_members([(tar, member)], root=".")
            data = reader.read(location)
            reader.close()
            image = Image.open(io.BytesIO(data))
        else:
            image = Image.open(path)
        image = image.convert("RGB")
    except Exception as error:
        logger.warning("cannot show %s: %s", path, error)
        image = Image.new("RGB", (size, size), (200, 200, 200))
    image.thumbnail((size, size))
    return image


def pairs_figure(matches: Sequence[str | Path], out_png: str | Path, max_pairs: int = 24) -> int:
    """A grid of matched pairs: eval image | dataset image, titled with set, subset, method and score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = [pq.read_table(p, schema=MATCH_SCHEMA) for p in matches]
    rows = pa.concat_tables(tables).to_pylist() if tables else []
    rows.sort(key=lambda m: (m["eval_set"], m["subset"], m["method"], m["image_id"], m[UID]))
    # Spread the shown pairs over sets, subsets and methods: round-robin over the groups.
    groups: dict[tuple, list[dict]] = {}
    for m in rows:
        groups.setdefault((m["eval_set"], m["subset"], m["method"]), []).append(m)
    shown: list[dict] = []
    while len(shown) < max_pairs and any(groups.values()):
        for key in sorted(groups):
            if groups[key] and len(shown) < max_pairs:
                shown.append(groups[key].pop(0))
    cols = 4  # two pairs per figure row
    n_rows = max(1, math.ceil(len(shown) / 2))
    fig, axes = plt.subplots(n_rows, cols, figsize=(cols * 2.2, n_rows * 2.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, m in enumerate(shown):
        r, c = divmod(k, 2)
        score = f"{int(m['score'])} bits" if m["method"] == "phash" else f"cos {m['score']:.3f}"
        axes[r][2 * c].imshow(_load_thumb(m["eval_path"]))
        axes[r][2 * c].set_title(f"{m['eval_set'][:28]}\n{m['image_id'][-28:]}", fontsize=6)
        axes[r][2 * c + 1].imshow(_load_thumb(m["location"]))
        axes[r][2 * c + 1].set_title(f"{m['subset']} {m['method']} {score} ({m['variant']})", fontsize=6)
    if not shown:
        axes[0][0].text(0, 0.5, "no eval-set matches", fontsize=10)
    fig.suptitle("Eval-set matches: eval image | dataset image", fontsize=9)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return len(shown)


def write_report(eval_tables: Sequence[str | Path], matches: Sequence[str | Path], out_csv: str | Path,
                 out_md: str | Path, out_png: str | Path, formats: dict[str, str], actions: dict[str, str],
                 phash_radius: int, embedding_threshold: float | None, clip_model: str = "",
                 clip_pretrained: str | None = None) -> list[dict]:
    rows = report_rows(eval_tables, formats, matches, actions)
    with open(out_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    header = "| " + " | ".join(REPORT_COLUMNS) + " |"
    rule = "|" + "|".join("---" if c in ("eval_set", "format") else "---:" for c in REPORT_COLUMNS) + "|"
    body = ["| " + " | ".join(str(r[c]) for c in REPORT_COLUMNS) + " |" for r in rows]
    embedding = ("off" if embedding_threshold is None
                 else f"cosine >= {embedding_threshold} ({clip_model} / {clip_pretrained})")
    text = "\n".join([
        "# Eval-set decontamination", "",
        f"Matchers: pHash of the eight rotations/flips of each eval image within {phash_radius} bits; "
        f"CLIP image embedding {embedding}. Actions: PUB11 `{actions.get('pub11')}`, RS3 `{actions.get('rs3')}` "
        "(`drop` removes the matched samples before assembly with reason `eval_overlap`; `report` keeps them).",
        "", "Columns: images of the eval set read; dataset images matched by pHash, by embedding, by either "
        "(`*_matched`); dropped. The total counts distinct dataset images (one matched by two sets counts once).",
        "", header, rule, *body, "",
        "Matched pairs: `decontamination_pairs.png`; every pair: `results/decontamination/{pub11,rs3}.matches.parquet`.",
        "",
    ])
    Path(out_md).write_text(text)
    pairs_figure(matches, out_png)
    return rows


def card_lines(report_csv: str | Path | None, settings: dict | None) -> list[str]:
    """The dataset card's section: eval sets checked, thresholds, actions and counts."""
    if not report_csv or not Path(report_csv).exists():
        return []
    with open(report_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    settings = settings or {}
    phash = settings.get("phash", {}).get("radius")
    embedding = settings.get("embedding", {})
    actions = settings.get("action", {})
    sets = [r for r in rows if r["eval_set"] != "total"]
    lines = ["## Eval-set decontamination", ""]
    if not sets:
        return lines + ["This build was checked against no evaluation set (`decontamination.eval_sets` was empty).", ""]
    threshold = f"cosine >= {embedding.get('threshold')}" if embedding.get("enabled", True) else "off"
    lines += [
        "Checked against " + ", ".join(f"`{r['eval_set']}` ({r['images_read']} images)" for r in sets)
        + f": pHash of the eight rotations/flips of each eval image within {phash} bits, and the scoring CLIP's "
        f"image embedding ({threshold}). PUB11 matches: `{actions.get('pub11')}`; RS3 matches: `{actions.get('rs3')}` "
        "(dropped samples carry reason `eval_overlap`; details in `../stats/decontamination.md`).",
        "",
        "| eval set | images | PUB11 matched | PUB11 dropped | RS3 matched | RS3 dropped |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {r['eval_set']} | {r['images_read']} | {r['pub11_matched']} | {r['pub11_dropped']} | "
          f"{r['rs3_matched']} | {r['rs3_dropped']} |" for r in rows],
        "",
    ]
    return lines
