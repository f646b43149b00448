"""Decontamination at scale on distinct aerial-like images: chance candidates, confirmation, recall.

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_decontamination_realistic.py \
        [--dataset 100000] [--eval 2000] [--originals 100] [--size 128] [--workers 2] [--small]
        [--growth-dataset 1000000] [--real-tiles DIR [DIR ...]] [--real-tiles-only]

Material, made offline (no hub): procedural aerial scenes (rs5m.demo.aerial_scenes: fields, town,
forest, desert, coast, seeded; `--size` px). Dataset side: `--dataset` distinct scenes. Eval side:
`--eval` other distinct scenes plus every planted kind (resize 0.5-2x, JPEG 50-95, rotations, flips,
crops <= 5 %, brightness, combinations) of `--originals` dataset scenes. Both stages as the
decontaminate rule runs them: the exact pHash search (eight eval variants, `phash.radius`), then
`confirmation_score` on each candidate pair (`confirm.size`, `confirm.threshold`, the colour and
layout gates: rs5m.confirm.is_confirmed).

Prints, per pair of distinct images (dataset x distinct eval images), the chance-candidate rate at
4-14 bits and the confirmed rate (0 expected); the recall of the planted copies per kind; an
exponential fit of the upper tail of the distinct candidates' detail scores, extrapolated to the
threshold, times the share of the top 1 % by detail that passes both gates (and its 95 % upper
bound), and the expected false drops for 3 M PUB11 x 100 k eval images; the time of each stage per
100 k dataset images (and its growth over `--growth` subsets of the dataset side; with
`--growth-dataset N`, scenes up to N are rendered too and the stage's time at N, the search timed and
the confirmation of its candidates costed per pair, is compared with its time at `--dataset`). Then
the in-dataset dedup question: dataset x dataset pairs within `dedup.phash_radius` (no variants,
as image_dedup compares them) and the component sizes of a random graph with that edge rate at
3 M images. With `--real-tiles DIR [DIR ...]`, the same confirmation on tiles cut from the real
aerial photos under the folders (e.g. ../shared/fixtures/rs_images ../shared/fixtures/fmow_real:
JPEGs of at least 128 px a side): every pair of distinct
tiles in its best pHash variant (their detail scores and gates; none may be confirmed),
and the recall of every planted kind of every tile.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from multiprocessing import Pool

import numpy as np

from rs5m.configured import defaults
from rs5m.confirm import MAX_COLOR_DIFFERENCE, MAX_LAYOUT_DIFFERENCE, confirm_thumb, confirmation_score
from rs5m.decontamination.matching import (
    N_VARIANTS,
    dihedral_phashes,
    hamming,
    hash_index,
    hash_search,
)
from rs5m.demo.aerial_scenes import aerial_scene
from rs5m.demo.decontamination_demo_eval import planted_copies, planted_transforms
from rs5m.phash import phash_int

EVAL_OFFSET = 10_000_000  # eval scenes are drawn from seeds no dataset scene uses
FULL_DATASET, FULL_EVAL = 3_000_000, 100_000
SIZE = 128


def _dataset_hash(n: int) -> int:
    return phash_int(aerial_scene(n, SIZE))


def _eval_hashes(n: int) -> np.ndarray:
    return dihedral_phashes(aerial_scene(EVAL_OFFSET + n, SIZE))


def _copies(n: int) -> list[tuple[str, np.ndarray]]:
    return [(name, dihedral_phashes(copy)) for name, copy in planted_copies(aerial_scene(n, SIZE), random.Random(n))]


def _confirm(args: tuple[int, int, int, tuple[int, ...], int]) -> tuple[float, float, float]:
    """(detail score, colour difference, layout difference) of (dataset scene, eval scene or planted
    copy, variants within the radius)."""
    dataset_n, eval_n, copy_kind, variants, size = args
    dataset = aerial_scene(dataset_n, SIZE)
    if copy_kind < 0:
        other = aerial_scene(EVAL_OFFSET + eval_n, SIZE)
    else:
        other = planted_transforms(random.Random(eval_n))[copy_kind][1](aerial_scene(eval_n, SIZE))
    confirmation = confirmation_score(confirm_thumb(dataset, int(size)), confirm_thumb(other, int(size)), variants)
    return confirmation.score, confirmation.color_difference, confirmation.layout_difference


def gates(colors: np.ndarray, layouts: np.ndarray) -> np.ndarray:
    """Pairs whose colours and layout agree (rs5m.confirm.is_confirmed less its detail threshold)."""
    return (colors <= MAX_COLOR_DIFFERENCE) & (layouts <= MAX_LAYOUT_DIFFERENCE)


def upper_share(passed: int, total: int) -> float:
    """95 % upper bound of a share of which `passed` of `total` were seen (Clopper-Pearson)."""
    from scipy.stats import beta

    return float(beta.ppf(0.95, passed + 1, total - passed)) if passed < total else 1.0


def real_tiles(folders: list[str], size: int) -> list:
    """Non-overlapping `size`-px tiles of every JPEG of at least `size` px a side under `folders`."""
    from pathlib import Path

    from PIL import Image

    tiles = []
    for path in sorted(p for folder in folders for p in Path(folder).rglob("*.jpg")):
        with Image.open(path) as photo:
            photo = photo.convert("RGB")
            for top in range(0, photo.height - size + 1, size):
                for left in range(0, photo.width - size + 1, size):
                    tiles.append(photo.crop((left, top, left + size, top + size)))
    return tiles


_TILES: list = []  # per real tile: (image, pHash, pHashes of its eight variants, confirm_thumb), made once


def _tile_pair(args: tuple[int, int]) -> tuple[float, float, float]:
    """(detail score, colour difference, layout difference) of tiles a and b in b's variant nearest a's pHash."""
    a, b = args
    (_, own, _, first), (_, _, variants, second) = _TILES[a], _TILES[b]
    nearest = int(np.argmin(hamming(np.full(N_VARIANTS, own), variants)))
    confirmation = confirmation_score(first, second, [nearest])
    return confirmation.score, confirmation.color_difference, confirmation.layout_difference


def _tile_copies(args: tuple[int, int, int]) -> list[tuple[str, bool, float, float, float]]:
    """(kind, candidate, detail score, colour difference, layout difference) of every planted copy of tile n."""
    n, radius, size = args
    original, own, _, thumb = _TILES[n]
    out = []
    for name, copy in planted_copies(original, random.Random(n)):
        distances = hamming(np.full(N_VARIANTS, own), dihedral_phashes(copy))
        variants = [v for v, d in enumerate(distances.tolist()) if d <= radius]
        if not variants:
            out.append((name, False, math.nan, math.nan, math.nan))
            continue
        confirmation = confirmation_score(thumb, confirm_thumb(copy, size), variants)
        out.append((name, True, confirmation.score, confirmation.color_difference, confirmation.layout_difference))
    return out


def real_tile_check(folders: list[str], size: int, radius: int, threshold: float, workers: int) -> None:
    """Print the confirmation's figures on real photo tiles (module docstring)."""
    global _TILES
    _TILES = [
        (tile, phash_int(tile), dihedral_phashes(tile), confirm_thumb(tile, size)) for tile in real_tiles(folders, SIZE)
    ]
    n = len(_TILES)
    started = time.perf_counter()
    with Pool(workers) as pool:
        pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
        evidence = np.array(pool.map(_tile_pair, pairs, chunksize=256), np.float64).reshape(-1, 3)
        copies = [c for per in pool.map(_tile_copies, [(t, radius, size) for t in range(n)], chunksize=4) for c in per]
    scores, colors, layouts = evidence.T
    agree = gates(colors, layouts)
    confirmed = int(((scores >= threshold) & agree).sum())
    print(
        f"real tiles ({', '.join(folders)}): {n} tiles of {SIZE} px, {len(pairs):,} pairs of distinct tiles (best pHash variant): "
        f"detail score median {np.median(scores):.3f}, p99.9 {np.quantile(scores, 0.999):.3f}, max {scores.max():.3f}; "
        f"colours within {MAX_COLOR_DIFFERENCE:g}: {(colors <= MAX_COLOR_DIFFERENCE).mean():.3f}, layout within "
        f"{MAX_LAYOUT_DIFFERENCE:g}: {(layouts <= MAX_LAYOUT_DIFFERENCE).mean():.3f}, both: {agree.mean():.3f}; "
        f"confirmed at >= {threshold}: {confirmed}"
    )
    per_kind: dict[str, list[bool]] = {}
    for name, candidate, score, color, layout in copies:
        per_kind.setdefault(name.rstrip("0123456789."), []).append(
            bool(candidate and score >= threshold and gates(color, layout))
        )
    hits = [h for v in per_kind.values() for h in v]
    print(
        f"real tiles, planted copies: recall {sum(hits) / len(hits):.4f} ({sum(hits)}/{len(hits)}; candidates alone "
        f"{sum(c[1] for c in copies) / len(copies):.4f}); "
        + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in sorted(per_kind.items()))
        + f"; {time.perf_counter() - started:.0f} s"
    )


def tail_probability(scores: np.ndarray, threshold: float, top: float = 0.01) -> tuple[float, float]:
    """P(score >= threshold) from an exponential fit of the top `top` fraction of `scores` (peaks over
    a threshold; the maximum-likelihood scale is the mean excess). Returns (probability, scale)."""
    u = float(np.quantile(scores, 1 - top))
    excess = scores[scores > u] - u
    scale = float(excess.mean()) if len(excess) else 1e-9
    return top * math.exp(-(threshold - u) / scale), scale


def main() -> None:
    global SIZE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=int, default=100_000)
    parser.add_argument("--eval", type=int, default=2000, help="distinct eval scenes")
    parser.add_argument("--originals", type=int, default=100, help="dataset scenes with planted copies")
    parser.add_argument("--size", type=int, default=128, help="scene side in px")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--growth", type=int, nargs="*", default=[25_000, 50_000], help="dataset subsets timed")
    parser.add_argument(
        "--growth-dataset", type=int, default=0, help="also render scenes up to this many and time the stage there"
    )
    parser.add_argument("--scores-out", default=None, help="write the candidates and their scores (.npz)")
    parser.add_argument("--small", action="store_true", help="20,000 dataset and 500 eval scenes, 30 originals")
    parser.add_argument("--real-tiles", nargs="+", default=None, help="folders of real aerial JPEGs to cut tiles from")
    parser.add_argument("--real-tiles-only", action="store_true", help="only the real-tile check")
    args = parser.parse_args()
    if args.small:
        args.dataset, args.eval, args.originals, args.growth = 20_000, 500, 30, [5_000, 10_000]
    SIZE = args.size
    radius = defaults("decontamination", "phash", "radius")
    confirm_size = defaults("decontamination", "confirm", "size")
    threshold = defaults("decontamination", "confirm", "threshold")
    dedup_radius = defaults("dedup", "phash_radius")
    if args.real_tiles:
        real_tile_check(args.real_tiles, confirm_size, radius, threshold, args.workers)
        if args.real_tiles_only:
            return

    with Pool(args.workers) as pool:
        started = time.perf_counter()
        dataset = np.array(pool.map(_dataset_hash, range(args.dataset), chunksize=1000), np.int64)
        distinct = pool.map(_eval_hashes, range(args.eval), chunksize=100)
        copies = pool.map(_copies, range(args.originals), chunksize=4)
        render_seconds = time.perf_counter() - started
        kinds = [name for name, _ in copies[0]]
        eval_hashes = np.concatenate(distinct + [h for per in copies for _, h in per])
        # eval image e: distinct scene e < args.eval, else copy (original, kind)
        copy_of = [(o, k) for o in range(args.originals) for k in range(len(kinds))]
        print(
            f"material: {args.dataset:,} dataset scenes, {args.eval:,} distinct eval scenes, {len(copy_of):,} planted "
            f"copies ({len(kinds)} kinds x {args.originals}), {args.size} px, rendered and hashed in {render_seconds:.0f} s "
            f"({args.workers} processes)"
        )

        index = hash_index(eval_hashes)
        timings = {}
        for size in sorted(set([s for s in args.growth if s < args.dataset] + [args.dataset])):
            started = time.perf_counter()
            q, i, d = hash_search(eval_hashes, dataset[:size], 14, index=index)
            timings[size] = time.perf_counter() - started
        # Best variant per (dataset scene, eval image).
        best: dict[tuple[int, int], tuple[int, tuple[int, ...]]] = {}
        for row, ev, dist in zip(q.tolist(), i.tolist(), d.tolist()):
            key = (row, ev // N_VARIANTS)
            near, variants = best.get(key, (99, ()))
            best[key] = (min(near, dist), variants + ((ev % N_VARIANTS,) if dist <= radius else ()))
        pairs = args.dataset * args.eval
        rates = {
            r: sum(1 for (row, e), (dist, _) in best.items() if e < args.eval and dist <= r) for r in range(4, 15, 2)
        }
        print(
            "chance candidates per pair (dataset x distinct eval, best of 8 variants): "
            + ", ".join(f"{r} bits {n} ({n / pairs:.2e})" for r, n in rates.items())
        )

        candidates = [(row, e, dist, v) for (row, e), (dist, v) in sorted(best.items()) if dist <= radius]
        jobs = [
            (row, e, -1, v, confirm_size)
            if e < args.eval
            else (row, copy_of[e - args.eval][0], copy_of[e - args.eval][1], v, confirm_size)
            for row, e, _, v in candidates
        ]
        started = time.perf_counter()
        evidence = np.array(pool.map(_confirm, jobs, chunksize=64), np.float64).reshape(-1, 3)
        confirm_seconds = time.perf_counter() - started
        if args.growth_dataset > args.dataset:
            started = time.perf_counter()
            more = pool.map(_dataset_hash, range(args.dataset, args.growth_dataset), chunksize=1000)
            more_seconds = time.perf_counter() - started
            large = np.concatenate([dataset, np.array(more, np.int64)])
            started = time.perf_counter()
            q_large, i_large, d_large = hash_search(eval_hashes, large, 14, index=index)  # as timed above
            large_search = time.perf_counter() - started
    scores, colors, layouts = evidence.T
    agree = gates(colors, layouts)

    if args.scores_out:
        rows = np.array([(row, e, dist) for row, e, dist, _ in candidates], np.int64)
        np.savez(args.scores_out, candidates=rows, scores=scores, colors=colors, layouts=layouts, eval_count=args.eval)
    true_pair = np.array([e >= args.eval and copy_of[e - args.eval][0] == row for row, e, _, _ in candidates], bool)
    false = ~true_pair
    confirmed = (scores >= threshold) & agree
    n_false, n_false_confirmed = int(false.sum()), int((false & confirmed).sum())
    distinct_candidates = int(sum(1 for row, e, _, _ in candidates if e < args.eval))
    print(
        f"radius {radius}: {len(candidates):,} candidate pairs, {n_false:,} of distinct images "
        f"({distinct_candidates:,} against distinct eval scenes: {distinct_candidates / pairs:.2e} a pair); "
        f"confirmed at >= {threshold}: {n_false_confirmed} of the distinct pairs ({n_false_confirmed / pairs:.1e} a pair)"
    )
    false_scores = scores[false]
    top = false_scores >= np.quantile(false_scores, 0.99)
    top_tenth = false_scores >= np.quantile(false_scores, 0.999)
    shares = {
        name: (gate[false].mean(), gate[false][top].mean(), gate[false][top_tenth].mean())
        for name, gate in (
            (f"colours within {MAX_COLOR_DIFFERENCE:g}", colors <= MAX_COLOR_DIFFERENCE),
            (f"layout within {MAX_LAYOUT_DIFFERENCE:g}", layouts <= MAX_LAYOUT_DIFFERENCE),
            ("both", agree),
        )
    }
    print(
        "detail score of distinct candidates: "
        + ", ".join(
            f"{name} {np.quantile(false_scores, p):.3f}"
            for name, p in (("median", 0.5), ("p99", 0.99), ("p99.9", 0.999))
        )
        + f", max {false_scores.max():.3f}; of them (all / top 1 % / top 0.1 % by detail): "
        + "; ".join(f"{name} {a:.4f} / {b:.4f} / {c:.4f}" for name, (a, b, c) in shares.items())
    )
    planted_candidates = true_pair & np.isfinite(scores)
    print(
        f"planted copies that are candidates ({int(planted_candidates.sum())}): largest colour difference "
        f"{colors[planted_candidates].max():.2f}, largest layout difference {layouts[planted_candidates].max():.3f}"
    )
    # Recall: every planted copy (eval image) whose own original is a confirmed candidate.
    found = {(row, e) for (row, e, _, _), ok in zip(candidates, confirmed) if ok}
    per_kind: dict[str, list[bool]] = {}
    for j, (original, kind) in enumerate(copy_of):
        per_kind.setdefault(kinds[kind].rstrip("0123456789."), []).append((original, args.eval + j) in found)
    hits = [h for v in per_kind.values() for h in v]
    candidate_hits = {(row, e) for row, e, _, _ in candidates}
    pre = sum((o, args.eval + j) in candidate_hits for j, (o, _) in enumerate(copy_of)) / len(copy_of)
    print(
        f"planted copies: recall {sum(hits) / len(hits):.4f} ({sum(hits)}/{len(hits)}; candidates alone {pre:.4f}); "
        + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in sorted(per_kind.items()))
    )
    # P(confirmed | distinct candidate), conservative: the checks taken only as independent as the
    # top 1 % by detail shows, i.e. P(detail >= threshold) from the exponential tail of the detail score
    # times the share of that top 1 % that passes both gates (and that share's 95 % upper bound).
    detail_tail, scale = tail_probability(false_scores, threshold)
    passed, n_top = int(agree[false][top].sum()), int(top.sum())
    gate_share, gate_upper = passed / n_top, upper_share(passed, n_top)
    tail, tail_upper = detail_tail * gate_share, detail_tail * gate_upper
    candidate_rate = distinct_candidates / pairs
    full_pairs = FULL_DATASET * FULL_EVAL
    full_candidates = full_pairs * candidate_rate
    print(
        f"tail fit (exponential over the top 1 % of the detail score, scale {scale:.3f}): P(detail >= {threshold}) ~ "
        f"{detail_tail:.1e}, x share of the top 1 % passing both gates {passed}/{n_top} = {gate_share:.4f} (95 % upper "
        f"{gate_upper:.4f}): P(confirm | distinct candidate) ~ {tail:.1e} (upper {tail_upper:.1e}; observed "
        f"{n_false_confirmed} of {n_false:,}: < {3 / max(1, n_false):.1e} at 95 %); per pair ~ {tail * candidate_rate:.1e}"
    )
    print(
        f"extrapolated to {FULL_DATASET:,} x {FULL_EVAL:,} images ({full_pairs:.1e} pairs): {full_candidates:.2e} chance "
        f"candidates, expected false drops ~ {full_candidates * tail:.2g} (upper {full_candidates * tail_upper:.2g}; "
        f"detail alone ~ {full_candidates * detail_tail:.2g}); with pHash alone {full_candidates:.2e} pairs would drop "
        f"~{100 * (1 - math.exp(-FULL_EVAL * candidate_rate)):.0f} % of the dataset"
    )
    per_100k = {s: t * 100_000 / s for s, t in timings.items()}
    small, large = min(timings), max(timings)
    confirm_per_pair = confirm_seconds * args.workers / max(1, len(candidates))
    print(
        "pHash search: "
        + ", ".join(f"{s:,} dataset images {timings[s]:.2f} s" for s in sorted(timings))
        + f" ({per_100k[large]:.2f} s per 100 k; growth {small:,} -> {large:,}: {timings[large] / timings[small]:.1f}x for "
        f"{large / small:.0f}x data); confirmation {confirm_seconds:.1f} s for {len(candidates):,} candidate pairs "
        f"({1000 * confirm_per_pair:.2f} ms a pair and core, incl. re-rendering both images): linear in the candidates, "
        f"i.e. in the dataset ({candidate_rate * args.eval * 100_000 * confirm_per_pair:.0f} core-s per 100 k dataset images "
        f"against {args.eval:,} eval images)"
    )
    if args.growth_dataset > args.dataset:
        # The stage at two sizes: the search timed, the confirmation costed per candidate pair as measured above.
        small_stage = timings[args.dataset] + confirm_seconds
        within = d_large <= radius
        large_pairs = {(row, e // N_VARIANTS) for row, e in zip(q_large[within].tolist(), i_large[within].tolist())}
        large_candidates = len(large_pairs)
        large_distinct = sum(1 for _, e in large_pairs if e < args.eval)
        large_confirm = large_candidates * confirm_per_pair / args.workers
        large_stage = large_search + large_confirm
        print(
            f"growth {args.dataset:,} -> {args.growth_dataset:,} dataset scenes ({args.growth_dataset / args.dataset:.0f}x; "
            f"{args.growth_dataset - args.dataset:,} more rendered and hashed in {more_seconds:.0f} s): pHash search "
            f"{timings[args.dataset]:.2f} s -> {large_search:.2f} s ({large_search / timings[args.dataset]:.1f}x); candidate "
            f"pairs {len(candidates):,} -> {large_candidates:,} ({large_candidates / len(candidates):.1f}x); stage "
            f"(search + confirmation on {args.workers} cores) {small_stage:.0f} s -> {large_stage:.0f} s "
            f"({large_stage / small_stage:.1f}x, target <= 15x); chance candidates at {args.growth_dataset:,}: "
            f"{large_distinct:,} against distinct eval scenes ({large_distinct / (args.growth_dataset * args.eval):.2e} a pair)"
        )

    # In-dataset dedup: dataset x dataset within dedup.phash_radius, identity variant only.
    q, i, d = hash_search(dataset, dataset, dedup_radius)
    chance = int(((q < i) & (d <= dedup_radius)).sum())
    dedup_pairs = args.dataset * (args.dataset - 1) / 2
    rate = chance / dedup_pairs
    n, edges = FULL_DATASET, rate * FULL_DATASET * (FULL_DATASET - 1) / 2
    rng = np.random.default_rng(0)
    m = int(edges)
    sizes = np.array([1])
    if m:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        a, b = rng.integers(0, n, m), rng.integers(0, n, m)
        graph = coo_matrix((np.ones(m, np.int8), (a, b)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        sizes = np.bincount(labels)
    grouped = int(sizes[sizes > 1].sum())
    print(
        f"dedup at {dedup_radius} bits: {chance} chance pairs among {dedup_pairs:.2e} dataset pairs ({rate:.1e} a pair); "
        f"at {n:,} images ~{edges:,.0f} chance edges: random graph with that many edges -> largest component "
        f"{int(sizes.max())}, {grouped:,} images in groups, ~{grouped - int((sizes > 1).sum()):,} would be dropped as duplicate_image "
        f"by pHash alone; confirmed at the tail above: ~{edges * tail:.2g} (upper {edges * tail_upper:.2g}) false "
        "duplicate_image drops"
    )


if __name__ == "__main__":
    main()
