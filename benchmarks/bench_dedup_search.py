"""Benchmark the pHash near-duplicate search (multi-index hashing in DuckDB + connected components):
wall time on N and 10 N random 64-bit hashes with planted near-duplicates, recall of the planted
pairs (must be 100 %), growth from N to 10 N (target <= 15x), and agreement of the groups with a
brute-force all-pairs union-find on a 20 k subsample.

    PYTHONPATH=workflow python benchmarks/bench_dedup_search.py [--small] [--radius 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rs5m.pub11.image_dedup import choose_bands, near_duplicate_groups


def planted_hashes(n: int, radius: int, planted_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n random hashes, of which a share are copies of another with 1..radius bits flipped."""
    rng = np.random.default_rng(seed)
    n_planted = int(n * planted_share)
    base = rng.integers(0, 2**64, n - n_planted, dtype=np.uint64)
    sources = rng.choice(len(base), n_planted, replace=False)
    flips = np.zeros(n_planted, np.uint64)
    distances = rng.integers(1, radius + 1, n_planted)
    for i, distance in enumerate(distances):
        for bit in rng.choice(64, distance, replace=False):
            flips[i] |= np.uint64(1) << np.uint64(bit)
    hashes = np.concatenate([base, base[sources] ^ flips]).view(np.int64)
    pairs = np.stack([sources, np.arange(len(base), n)], axis=1)
    return hashes, pairs


def brute_force_groups(hashes: np.ndarray, radius: int) -> np.ndarray:
    unsigned = hashes.view(np.uint64)
    parent = np.arange(len(hashes))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        for j in np.flatnonzero(np.bitwise_count(unsigned[i] ^ unsigned[i + 1 :]) <= radius) + i + 1:
            parent[find(int(j))] = find(i)
    return np.array([find(i) for i in range(len(hashes))])


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


def run(n: int, radius: int, threads: int) -> float:
    hashes, pairs = planted_hashes(n, radius, 0.01, seed=n)
    started = time.perf_counter()
    labels = near_duplicate_groups(hashes, radius, bands=0, threads=threads, memory_limit=None)
    elapsed = time.perf_counter() - started
    recall = float(np.mean(labels[pairs[:, 0]] == labels[pairs[:, 1]]))
    groups = len(np.unique(labels))
    print(
        f"{n:>9,} hashes, radius {radius}, bands {choose_bands(n, radius)}: {elapsed:7.2f} s "
        f"({n / elapsed:,.0f} hashes/s), planted pairs {len(pairs):,}, recall {recall:.2%}, {groups:,} groups"
    )
    assert recall == 1.0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="20 k and 200 k hashes instead of 100 k and 1 M")
    parser.add_argument("--radius", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    small_n = 20_000 if args.small else 100_000
    small = run(small_n, args.radius, args.threads)
    large = run(small_n * 10, args.radius, args.threads)
    print(f"growth from {small_n:,} to {small_n * 10:,}: {large / small:.1f}x (target <= 15x)")

    hashes, _ = planted_hashes(20_000, args.radius, 0.01, seed=7)
    started = time.perf_counter()
    reference = brute_force_groups(hashes, args.radius)
    brute = time.perf_counter() - started
    started = time.perf_counter()
    labels = near_duplicate_groups(hashes, args.radius, bands=0, threads=args.threads, memory_limit=None)
    search = time.perf_counter() - started
    agree = same_partition(labels, reference)
    print(
        f"20,000-hash subsample: groups agree with brute force: {agree} "
        f"(brute force {brute:.1f} s, search {search:.2f} s)"
    )
    assert agree


if __name__ == "__main__":
    main()
