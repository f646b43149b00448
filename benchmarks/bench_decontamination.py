"""Decontamination throughput: embedding images/s, and the search's growth with the dataset.

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_decontamination.py [--eval 30000] [--sizes 100000 1000000] [--small]

- embedding: eval-set images through `image_features` (decode, eight dihedral variants, pHash and
  CLIP embedding) with the demo's tiny CLIP (CPU) unless `--model/--pretrained` name a real one;
- pHash search: `hash_search` of N dataset pHashes against the eight variants of the eval set's
  pHashes (exact, faiss IndexBinaryFlat) at `--radius`, and on `--multi-hash-queries` of them the
  multi-index alternative (faiss IndexBinaryMultiHash, 4 bands) that it replaced;
- embedding search: `embedding_search` of N unit dataset embeddings (`--dim`, 1024 = convnext_xxlarge)
  against the eight variants of the eval set's embeddings (faiss, `embedding_index`).
Synthetic vectors: planted copies (a few percent) next to random ones, so matches exist.
Prints images/s and the time ratio between the largest and the smallest dataset size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from rs5m.configured import defaults
from rs5m.decontamination.matching import (
    N_VARIANTS,
    _hash_bytes,
    embedding_index,
    embedding_search,
    hash_index,
    hash_search,
    image_features,
)
from rs5m.decontamination.settings import DecontaminationSettings
from rs5m.settings import ClipModel


def bench_embedding(count: int, model: str, pretrained: str | None, device: str) -> float:
    from rs5m.demo.rs3_tiny_models import build_tiny_clip
    from rs5m.demo.web import render_aerial

    with tempfile.TemporaryDirectory() as tmp:
        if pretrained is None and model == "rs5m-tiny-clip":
            pretrained = str(build_tiny_clip(model, Path(tmp) / "tiny.pt"))
        paths = []
        for n in range(count):
            path = Path(tmp) / f"{n}.jpg"
            render_aerial(n).save(path, quality=90)
            paths.append(str(path))
        started = time.perf_counter()
        configured = DecontaminationSettings.from_config(defaults())
        scoring = replace(configured.outliers, clip=ClipModel(model, pretrained), device=device)
        ok, _, vectors = image_features(paths, True, replace(configured, batch_size=64, outliers=scoring), workers=2)
        seconds = time.perf_counter() - started
    print(
        f"embedding: {count} eval images x {N_VARIANTS} variants ({model}, {device}) in {seconds:.1f} s: "
        f"{count / seconds:.1f} images/s ({count * N_VARIANTS / seconds:.1f} variant embeddings/s), dim {vectors.shape[-1]}"
    )
    return count / seconds


def multi_hash_index(hashes: np.ndarray, radius: int, bands: int = 4):
    """The multi-index alternative to matching.hash_index that the stage used before: `bands` bands
    with `nflip = radius // bands` find, by pigeonhole, every pair within `radius`."""
    import faiss

    index = faiss.IndexBinaryMultiHash(64, bands, 64 // bands)
    index.nflip = int(radius) // bands
    index.add(_hash_bytes(hashes))
    return index


def found_planted(query_rows: np.ndarray, index_rows: np.ndarray, planted: np.ndarray, sources: np.ndarray) -> int:
    """Planted copies matched to the eval vector they were made from."""
    source_of = dict(zip(planted.tolist(), sources.tolist()))
    return sum(source_of.get(q) == i for q, i in zip(query_rows.tolist(), index_rows.tolist()))


def bench_search(
    eval_images: int, sizes: list[int], dim: int, radius: int, threshold: float, multi_hash_queries: int
) -> None:
    rng = np.random.default_rng(0)
    eval_hashes = rng.integers(-(2**63), 2**63 - 1, eval_images * N_VARIANTS, dtype=np.int64)
    eval_vectors = rng.standard_normal((eval_images * N_VARIANTS, dim), dtype=np.float32)
    eval_vectors /= np.linalg.norm(eval_vectors, axis=1, keepdims=True)
    started = time.perf_counter()
    h_index = hash_index(eval_hashes)
    e_index = embedding_index(eval_vectors)
    print(
        f"index build: {eval_images} eval images x {N_VARIANTS} variants, dim {dim}: {time.perf_counter() - started:.1f} s "
        f"({type(e_index).__name__})"
    )
    if multi_hash_queries:
        queries = rng.integers(-(2**63), 2**63 - 1, multi_hash_queries, dtype=np.int64)
        flat_started = time.perf_counter()
        flat = hash_search(eval_hashes, queries, radius, index=h_index)
        flat_seconds = time.perf_counter() - flat_started
        multi_started = time.perf_counter()
        multi = hash_search(eval_hashes, queries, radius, index=multi_hash_index(eval_hashes, radius))
        multi_seconds = time.perf_counter() - multi_started
        same = sorted(zip(*map(list, flat[:2]))) == sorted(zip(*map(list, multi[:2])))
        print(
            f"pHash search, {multi_hash_queries:,} queries: exact (IndexBinaryFlat) {flat_seconds:.2f} s, "
            f"multi-index hash (IndexBinaryMultiHash, 4 bands) {multi_seconds:.2f} s incl. its build: "
            f"{multi_seconds / flat_seconds:.1f}x slower; same pairs: {same}"
        )
    times = {}
    for size in sizes:
        hashes = rng.integers(-(2**63), 2**63 - 1, size, dtype=np.int64)
        planted = rng.choice(size, max(1, size // 50), replace=False)
        hashes[planted] = eval_hashes[rng.choice(len(eval_hashes), len(planted))] ^ np.int64(0b1011)
        started = time.perf_counter()
        q, _, _ = hash_search(eval_hashes, hashes, radius, index=h_index)
        hash_seconds = time.perf_counter() - started
        vectors = np.empty((size, dim), np.float16)
        for start in range(0, size, 100_000):
            block = rng.standard_normal((min(100_000, size - start), dim), dtype=np.float32)
            vectors[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        # Planted copies at cosine ~0.95 to their eval vector (the default threshold is 0.92): a hard
        # near-duplicate for an inverted file on isotropic random vectors.
        sources = rng.choice(len(eval_vectors), len(planted))
        noise = rng.standard_normal((len(planted), dim), dtype=np.float32)
        noisy = eval_vectors[sources] + 0.33 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
        vectors[planted] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
        started = time.perf_counter()
        eq, ei, _ = embedding_search(e_index, vectors, threshold)
        embed_seconds = time.perf_counter() - started
        times[size] = (hash_seconds, embed_seconds)
        print(
            f"dataset {size:>9,}: pHash search {hash_seconds:7.1f} s ({size / hash_seconds:,.0f} images/s, "
            f"{len(set(q.tolist()) & set(planted.tolist()))}/{len(planted)} planted found, {len(set(q.tolist()) - set(planted.tolist()))} random "
            f"hashes within the radius); embedding search {embed_seconds:7.1f} s ({size / embed_seconds:,.0f} images/s, "
            f"{found_planted(eq, ei, planted, sources)}/{len(planted)} planted found at cosine >= {threshold})"
        )
    small, large = min(times), max(times)
    if small != large:
        print(
            f"growth {small:,} -> {large:,} ({large / small:.0f}x data): pHash {times[large][0] / times[small][0]:.1f}x, "
            f"embedding {times[large][1] / times[small][1]:.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=int, default=30_000, help="eval-set images (x8 variants)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--radius", type=int, default=12)
    parser.add_argument("--threshold", type=float, default=0.92)
    parser.add_argument("--embed-images", type=int, default=64)
    parser.add_argument("--model", default="rs5m-tiny-clip")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--multi-hash-queries", type=int, default=2000, help="0 skips the multi-index comparison")
    parser.add_argument("--small", action="store_true", help="3,000 eval images, 10,000 and 100,000 dataset images")
    args = parser.parse_args()
    if args.small:
        args.eval, args.sizes, args.embed_images = 3000, [10_000, 100_000], 16
    if args.embed_images:
        bench_embedding(args.embed_images, args.model, args.pretrained, args.device)
    bench_search(args.eval, args.sizes, args.dim, args.radius, args.threshold, args.multi_hash_queries)


if __name__ == "__main__":
    main()
