"""Perceptual-hash image dedup (stage `image_dedup`), once over all parts and sources.

Reads `results/pub11/images/{part}.parquet` and `results/pub11/urldedup/{part}.parquet`; writes `results/pub11/dedup/kept.parquet`.

Near-duplicate groups are the connected components of "pHash Hamming distance <= radius". The
pairs are found without comparing all of them (multi-index hashing): the 64 bits are cut into m
bands; two hashes within distance r agree within distance floor(r / m) on at least one band
(pigeonhole), so only hashes whose band values are that close are compared. The band lookups are a
hash join in DuckDB (each band value XOR every mask of at most floor(r / m) bits, joined on equality);
candidates are verified with the full 64-bit distance and the components found with a sparse
connected-components pass (union-find). Exact-equal hashes are merged first, so a flood of copies
of one image costs one row. The group keeps the copy ranked first by `rs5m.pub11.urls.priority_rank`.

A pHash pair is a candidate, not a verdict: aerial images share coarse layouts, and distinct ones
collide at 4 bits ~1.3e-7 a pair (procedural aerial scenes, benchmarks/bench_decontamination_realistic.py),
~5.6e5 chance pairs at 3 M images, ~19 % of them dropped if pHash alone decided. So every candidate
edge (a row and the first row of its hash; the first rows of two hashes within the radius) is
confirmed by rs5m.confirm.confirmation_score of the two images (identity alignment, as the hashes
compare) before it joins a group; `pairs` lists every candidate with its score. Confirmation reads
only the images of candidate pairs, so its cost grows with the candidates, not with all pairs.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from rs5m import columns as col
from rs5m import duck
from rs5m.confirm import confirm_thumb, confirmation_score, is_confirmed, open_images
from rs5m.ledger import Ledger, StageStats, write_drops, write_stats
from rs5m.pub11.settings import DedupSettings
from rs5m.pub11.sources import sql_string
from rs5m.pub11.urls import priority_ranks

log = logging.getLogger(__name__)

STAGE = "image_dedup"
REASON = "duplicate_image"
HASH_BITS = 64
MAX_MASKS = 4096  # per band; beyond that the probe side outgrows the candidates it saves


def _band_widths(bands: int) -> list[int]:
    base, extra = divmod(HASH_BITS, bands)
    return [base + 1 if i < extra else base for i in range(bands)]


def _masks(width: int, distance: int) -> list[int]:
    """Every `width`-bit mask with at most `distance` bits set."""
    masks = [0]
    for flips in range(1, distance + 1):
        masks += [sum(1 << b for b in bits) for bits in itertools.combinations(range(width), flips)]
    return masks


def choose_bands(n_hashes: int, radius: int) -> int:
    """Band count m minimising probe rows (n * m * masks) + expected random candidates."""
    best, best_cost = radius + 1, math.inf
    for bands in range(1, min(radius + 1, HASH_BITS // 4) + 1):
        widths = _band_widths(bands)
        per_band = radius // bands
        masks = [sum(math.comb(w, i) for i in range(per_band + 1)) for w in widths]
        if max(masks) > MAX_MASKS:
            continue
        probes = n_hashes * sum(masks)
        candidates = sum(n_hashes * n_hashes * m / 2.0 ** (w + 1) for m, w in zip(masks, widths))
        cost = probes + 2 * candidates  # a candidate costs a join output plus a verification
        if cost < best_cost:
            best, best_cost = bands, cost
    return best


def near_duplicate_pairs(
    hashes: np.ndarray, radius: int, bands: int, threads: int, memory_limit: str | None
) -> np.ndarray:
    """Index pairs (i < j) of `hashes` (int64) within Hamming distance `radius`, each once, sorted.

    Exact repeats are included. Expects distinct hashes for speed, but is correct without.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.int64)
    n = len(hashes)
    if n < 2:
        return np.empty((0, 2), np.int64)
    bands = bands or choose_bands(n, radius)
    widths = _band_widths(bands)
    per_band = radius // bands
    unsigned = hashes.view(np.uint64)
    ids = np.arange(n, dtype=np.int64)
    band_tables, mask_tables = [], []
    offset = HASH_BITS
    for band, width in enumerate(widths):
        offset -= width
        values = ((unsigned >> np.uint64(offset)) & np.uint64((1 << width) - 1)).view(np.int64)
        band_tables.append(pa.table({"id": ids, "band": np.full(n, band, np.int8), "value": values}))
        masks = np.array(_masks(width, per_band), np.uint64).view(np.int64)
        mask_tables.append(pa.table({"band": np.full(len(masks), band, np.int8), "mask": masks}))
    con = duck.connect(threads, memory_limit)
    con.register("band_values", pa.concat_tables(band_tables))
    con.register("band_masks", pa.concat_tables(mask_tables))
    con.register("hashes", pa.table({"id": ids, "h": hashes}))
    pairs = con.sql(
        f"""
        WITH probes AS (
            -- a derived column, so that the planner joins on equality instead of filtering a product
            SELECT a.id, a.band, xor(a.value, m.mask) AS probe
            FROM band_values a JOIN band_masks m ON a.band = m.band
        ), candidates AS (
            SELECT DISTINCT p.id AS i, b.id AS j
            FROM probes p JOIN band_values b ON b.band = p.band AND b.value = p.probe
            WHERE p.id < b.id
        )
        SELECT c.i, c.j FROM candidates c
        JOIN hashes x ON x.id = c.i JOIN hashes y ON y.id = c.j
        WHERE bit_count(xor(x.h, y.h)) <= {int(radius)}
        ORDER BY c.i, c.j
        """
    ).fetchnumpy()
    con.close()
    return (
        np.stack([pairs["i"], pairs["j"]], axis=1).astype(np.int64) if len(pairs["i"]) else np.empty((0, 2), np.int64)
    )


def near_duplicate_groups(
    hashes: np.ndarray, radius: int, bands: int, threads: int, memory_limit: str | None
) -> np.ndarray:
    """Group label per hash: connected components of "Hamming distance <= radius" (labels 0..k-1)."""
    hashes = np.asarray(hashes, dtype=np.int64)
    if len(hashes) == 0:
        return np.empty(0, np.int64)
    distinct, inverse = np.unique(hashes, return_inverse=True)
    if radius <= 0 or len(distinct) < 2:
        return inverse.astype(np.int64)
    pairs = near_duplicate_pairs(distinct, radius, bands, threads, memory_limit)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(len(distinct), len(distinct)))
    _, labels = connected_components(graph, directed=False)
    return labels[inverse].astype(np.int64)


PAIRS_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),  # the first row of its hash (the group's probe side)
        ("other_uid", pa.string()),
        ("distance", pa.int64()),  # pHash bits
        ("confirmation", pa.float64()),  # rs5m.confirm.confirmation_score; NaN when an image is unreadable
        ("color_difference", pa.float64()),  # largest a*/b* difference of the aligned pair's blocks; NaN as above
        ("layout_difference", pa.float64()),  # unexplained spread of their block lightness; NaN as above
        ("confirmed", pa.bool_()),  # rs5m.confirm.is_confirmed at dedup.confirm.threshold
    ]
)
CONFIRM_BATCH = 4096  # candidate pairs whose images are read together


def candidate_edges(hashes: np.ndarray, radius: int, bands: int, threads: int, memory_limit: str | None):
    """(row a, row b, distance) of every candidate edge: each row whose hash an earlier row has, with
    that first row (distance 0); and the first rows of every two distinct hashes within `radius`."""
    hashes = np.asarray(hashes, dtype=np.int64)
    n = len(hashes)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    distinct, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    repeated = np.flatnonzero(first[inverse] != np.arange(n))
    rows_a, rows_b, distances = [first[inverse[repeated]]], [repeated], [np.zeros(len(repeated), np.int64)]
    if radius > 0 and len(distinct) >= 2:
        pairs = near_duplicate_pairs(distinct, radius, bands, threads, memory_limit)
        if len(pairs):
            rows_a.append(first[pairs[:, 0]])
            rows_b.append(first[pairs[:, 1]])
            xor = (distinct[pairs[:, 0]] ^ distinct[pairs[:, 1]]).view(np.uint64)
            distances.append(np.bitwise_count(xor).astype(np.int64))
    return np.concatenate(rows_a), np.concatenate(rows_b), np.concatenate(distances)


def confirm_edges(
    locations: Sequence[str], rows_a: np.ndarray, rows_b: np.ndarray, size: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(score, colour difference, layout difference, confirmed) of the two images of each edge: rs5m.confirm's
    confirmation_score (identity alignment) and is_confirmed at `threshold`; NaN and False where one
    is unreadable. Images are read per batch of CONFIRM_BATCH edges, the edges taken in the order of
    their images' places, so a batch reads few tars."""
    scores, colors, layouts = (np.full(len(rows_a), np.nan) for _ in range(3))
    confirmed = np.zeros(len(rows_a), bool)
    order = sorted(range(len(rows_a)), key=lambda e: (locations[rows_a[e]], locations[rows_b[e]]))
    for start in range(0, len(order), CONFIRM_BATCH):
        batch = order[start : start + CONFIRM_BATCH]
        images = open_images([locations[rows[e]] for e in batch for rows in (rows_a, rows_b)])
        thumbs = {loc: None if image is None else confirm_thumb(image, size) for loc, image in images.items()}
        for e in batch:
            first, second = thumbs[locations[rows_a[e]]], thumbs[locations[rows_b[e]]]
            if first is not None and second is not None:
                confirmation = confirmation_score(first, second, [0])
                scores[e], colors[e] = confirmation.score, confirmation.color_difference
                layouts[e] = confirmation.layout_difference
                confirmed[e] = is_confirmed(confirmation, threshold)
    return scores, colors, layouts, confirmed


def confirmed_groups(
    hashes: np.ndarray,
    locations: Sequence[str],
    radius: int,
    bands: int,
    threads: int,
    memory_limit: str | None,
    confirm: dict,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Group label per row: connected components of the candidate edges that the two images confirm
    (`confirm`: {size, threshold}); and the edges (row a, row b, distance, confirmation score, colour
    difference, layout difference, confirmed)."""
    n = len(hashes)
    rows_a, rows_b, distances = candidate_edges(hashes, radius, bands, threads, memory_limit)
    scores, colors, layouts, confirmed = confirm_edges(
        locations, rows_a, rows_b, int(confirm["size"]), float(confirm["threshold"])
    )
    graph = coo_matrix((np.ones(int(confirmed.sum()), np.int8), (rows_a[confirmed], rows_b[confirmed])), shape=(n, n))
    labels = connected_components(graph, directed=False)[1] if n else np.empty(0, np.int64)
    return labels.astype(np.int64), (rows_a, rows_b, distances, scores, colors, layouts, confirmed)


def kept_in_groups(labels: np.ndarray, sources: Sequence[str], uids: Sequence[str]) -> np.ndarray:
    """Index of the kept row of each row's group (the row itself when it is kept)."""
    ranks = priority_ranks(sources, uids)
    order = np.lexsort((ranks, labels))  # by group, then by rank
    sorted_labels = labels[order]
    starts = np.r_[0, np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 1]
    winner_of_label = dict(zip(sorted_labels[starts].tolist(), order[starts].tolist()))
    return np.array([winner_of_label[label] for label in labels.tolist()], np.int64)


def dedup_images(
    images: Sequence[str],
    urls: Sequence[str],
    kept: str,
    stats: str,
    drops: str,
    pairs: str,
    settings: DedupSettings,
    threads: int,
    memory_limit: str | None,
) -> list[StageStats]:
    """Drop every near-duplicate image but the one the priority rule keeps; write kept.parquet, and
    every candidate pair with its confirmation to `pairs`.

    `images` and `urls` are the per-part files of the images and URL stages; the part id of a row
    is its images file's stem.
    """
    phash_radius, bands, confirm = settings.phash_radius, settings.bands, dataclasses.asdict(settings.confirm)
    tables = []
    for path in images:
        table = pq.read_table(path)
        tables.append(table.append_column("part", pa.array([Path(path).stem] * len(table), pa.string())))
    table = pa.concat_tables(tables) if tables else None
    n = 0 if table is None else len(table)
    uids = table.column(col.UID).to_pylist() if n else []
    sources = table.column(col.SOURCE).to_pylist() if n else []
    hashes = table.column("phash").to_numpy() if n else np.empty(0, np.int64)
    locations = (
        [f"{tar}::{member}" for tar, member in zip(table["tar"].to_pylist(), table["member"].to_pylist())] if n else []
    )
    labels, (rows_a, rows_b, distances, scores, colors, layouts, confirmed) = confirmed_groups(
        hashes, locations, phash_radius, bands, threads, memory_limit, confirm
    )
    Path(pairs).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "uid": pa.array([uids[i] for i in rows_a.tolist()], pa.string()),
                "other_uid": pa.array([uids[i] for i in rows_b.tolist()], pa.string()),
                "distance": pa.array(distances, pa.int64()),
                "confirmation": pa.array(scores, pa.float64()),
                "color_difference": pa.array(colors, pa.float64()),
                "layout_difference": pa.array(layouts, pa.float64()),
                "confirmed": pa.array(confirmed, pa.bool_()),
            },
            schema=PAIRS_SCHEMA,
        ),
        pairs,
    )
    log.info(
        "%d candidate pairs within %d bits: %d confirmed, %d not (kept apart)",
        len(scores),
        phash_radius,
        int(confirmed.sum()),
        int((~confirmed).sum()),
    )
    winners = kept_in_groups(labels, sources, uids) if n else np.empty(0, np.int64)
    is_kept = winners == np.arange(n)

    ledger = Ledger(STAGE)  # counts; the drop records go out as columns (millions of rows)
    drop_uids, drop_sources, drop_details = [], [], []
    for index in range(n):
        if is_kept[index]:
            ledger.keep(sources[index])
        else:
            ledger.drop_count(sources[index], REASON, 1)
            drop_uids.append(uids[index])
            drop_sources.append(sources[index])
            drop_details.append(uids[winners[index]])
    write_drops(
        drops,
        pa.table(
            {
                "uid": pa.array(drop_uids, pa.string()),
                "source": pa.array(drop_sources, pa.string()),
                "stage": pa.array([STAGE] * len(drop_uids), pa.string()),
                "reason": pa.array([REASON] * len(drop_uids), pa.string()),
                "detail": pa.array(drop_details, pa.string()),
            }
        ),
    )

    con = duck.connect(threads, memory_limit)
    if n:
        con.register("images", table.filter(pa.array(is_kept)))
    else:
        con.register(
            "images",
            pa.table(
                {
                    c: pa.array([], t)
                    for c, t in [
                        ("uid", pa.string()),
                        ("source", pa.string()),
                        ("part", pa.string()),
                        ("tar", pa.string()),
                        ("member", pa.string()),
                        ("width", pa.int32()),
                        ("height", pa.int32()),
                        ("phash", pa.int64()),
                    ]
                }
            ),
        )
    url_files = "[" + ", ".join(sql_string(p) for p in urls) + "]"
    result = con.sql(
        f"""
        SELECT i.uid, i.source, u.url, u.caption, u.matched_keywords, i.part, i.tar, i.member,
               i.width, i.height, u.captions, i.phash
        FROM images i JOIN read_parquet({url_files}) u ON u.uid = i.uid
        ORDER BY i.uid
        """
    ).to_arrow_table()
    if len(result) != int(is_kept.sum()):
        raise RuntimeError(f"{int(is_kept.sum())} kept images but {len(result)} found in the URL parts")
    Path(kept).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(result, kept)
    entries = write_stats(stats, ledger.entries())
    for entry in entries:
        log.info("%s %s: %d in, %d kept, dropped %s", STAGE, entry.source, entry.rows_in, entry.kept, entry.dropped)
    return entries
