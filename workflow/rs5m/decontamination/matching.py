"""Eval-set decontamination, what its rules share: the two matchers, their faiss indexes, the schemas.

The stage (decontamination_eval, decontamination_rs3_features, decontaminate, decontamination_report)
reads the eval sets (rs5m.eval_sets), the kept PUB11 table with its stored pHash and the CLIP image
embeddings the scoring stage stored (`results/pub11/embeddings/{part}.npy`, row-aligned with
`results/pub11/scores/{part}.parquet`), and the RS3 features this stage computes per caption part.
Writes per subset the final table, its ledger (stage `decontamination`, reason `eval_overlap`,
detail `<eval_set>:<image id>`) and the matches; then `results/stats/decontamination.{csv,md}` and
`decontamination_pairs.png`.

Two independent matchers:
- pHash: the 64-bit pHash of the image stage (rs5m.phash.phash_int). Aerial images have no up, so
  each eval image is hashed in its eight dihedral variants (rotations by 0/90/180/270 degrees, with
  and without a flip); a dataset image matches when one variant is within `phash.radius` bits. The
  search is exact: faiss's brute-force binary range search (IndexBinaryFlat, SIMD popcount over
  every eval variant). At the radius this stage needs (12 of 64 bits) a multi-index hash
  (IndexBinaryMultiHash) probes so many bucket neighbours that it is ~20-30x slower than
  comparing all pairs (benchmarks/bench_decontamination.py measures both).
- CLIP: cosine similarity of L2-normalised image embeddings of the scoring model; the eight eval
  variants are embedded and a dataset image matches when its best cosine reaches
  `embedding.threshold` (faiss IndexFlatIP, dataset embeddings searched in batches against the
  eval index).

Both matchers only name candidates. Aerial images share coarse layouts, so at 12 bits distinct images
collide by chance (1e-4 a pair on procedural aerial scenes, 2-4e-5 reported for real tiles): at
3 M dataset x 100 k eval images that is millions of candidate pairs. A candidate pair is confirmed
by three checks of the two images themselves, aligned once (`rs5m.confirm.confirmation_score`):
their detail (grayscale at `confirm.size` px, band-passed below the layout the pHash sees, aligned
over the candidate's rotations/flips (all eight for an embedding candidate), scales 0.95-1.05 and
shifts; the score is the smallest correlation of 4 x 4 blocks of the aligned pair), the colours of
the aligned pair's 4 x 4 blocks (CIELAB a*/b* within 6) and the lightness of its 8 x 8 blocks (a gain
and an offset leave at most 0.45 of its spread unexplained). A sample is dropped only for a confirmed pair (`rs5m.confirm.is_confirmed` at
`confirm.threshold`); benchmarks/bench_decontamination_realistic.py measures the rates (README).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from PIL import Image

from rs5m.columns import SOURCE, UID
from rs5m.decontamination.settings import FeatureSettings
from rs5m.phash import phash_int

logger = logging.getLogger("rs5m.decontamination.matching")

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
        ("confirmation", pa.float64()),  # confirmation_score of the pair; NaN when an image is unreadable
        ("color_difference", pa.float64()),  # largest a*/b* difference of the aligned pair's blocks; NaN as above
        ("layout_difference", pa.float64()),  # unexplained spread of their block lightness; NaN as above
        ("confirmed", pa.bool_()),  # rs5m.confirm.is_confirmed at confirm.threshold: only these pairs drop a sample
    ]
)


# ------------------------------------------------------------------------------------------ hashes
def dihedral_variants(image: Image.Image) -> list[Image.Image]:
    return [image if t is None else image.transpose(t) for t in DIHEDRAL]


def dihedral_phashes(image: Image.Image) -> np.ndarray:
    """The pHash (rs5m.phash.phash_int) of each of the eight rotations/flips, as int64."""
    return np.array([phash_int(v) for v in dihedral_variants(image)], dtype=np.int64)


def _hash_bytes(hashes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(hashes, dtype=np.int64).astype(">i8").view(np.uint8).reshape(-1, 8))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = np.bitwise_xor(np.asarray(a, np.int64), np.asarray(b, np.int64)).view(np.uint64)
    return np.unpackbits(x.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def hash_index(hashes: np.ndarray):
    """A faiss index over 64-bit hashes for exact Hamming range search (every pair is compared)."""
    import faiss

    index = faiss.IndexBinaryFlat(64)
    index.add(_hash_bytes(hashes))
    return index


def hash_search(index_hashes: np.ndarray, queries: np.ndarray, radius: int, batch: int = 262144, index=None):
    """(query row, index row, distance) of every pair within `radius` bits (faiss range search)."""
    q_rows, i_rows, dists = [], [], []
    if len(index_hashes) == 0 or len(queries) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    index = index if index is not None else hash_index(index_hashes)
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
    an inverted file over 16-bit floats (IndexIVFScalarQuantizer, fp16: the embeddings are stored as
    float16, so nothing is lost) with 4 sqrt(n) lists, of which max(16, lists / 64) are probed, so the
    search cost grows with the dataset, not with dataset x eval set. A near-duplicate falls in a probed
    list of its own eval vector: on isotropic random vectors, the worst case for an inverted file,
    planted copies at cosine ~0.93 are found 99.4 % of the time at ~6x the speed of probing
    lists / 16 (benchmarks/bench_decontamination.py prints the recall it measures)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if len(vectors) <= FLAT_LIMIT:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(4 * math.sqrt(len(vectors)))
        index = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dim), dim, lists, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.seed = 0
        index.cp.max_points_per_centroid = 64  # k-means on a sample: half the training time, same lists
        index.train(vectors)
        index.nprobe = max(16, lists // 64)
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
        except Exception as error:  # noqa: BLE001 - an unreadable image is logged and skipped by the caller
            logger.warning("cannot read %s: %s", self.paths[i], error)
            blank = Image.new("RGB", (8, 8))
            return torch.stack([self.preprocess(blank)] * n), torch.zeros(n, dtype=torch.int64), False


def image_features(paths: Sequence[str], variants: bool, settings: FeatureSettings, workers: int):
    """(ok mask, pHashes (n, v), unit embeddings (n, v, d) float32) of image files; v = 8 with variants.

    The scoring model (`outliers.clip`, on `outliers.device` at `outliers.precision`) embeds them in
    batches of `decontamination.batch_size` images and variants."""
    import torch
    import torch.nn.functional as F

    from rs5m.models import autocast_dtype, load_clip, resolve_device

    model = settings.outliers
    device = resolve_device(model.device)
    dtype = autocast_dtype(device, model.precision)
    loaded = load_clip(model.clip.model, model.clip.pretrained, None, device)
    clip, preprocess = loaded.model, loaded.preprocess
    dataset = _ImageFiles(paths, preprocess, variants)
    per_batch = max(1, int(settings.batch_size) // (N_VARIANTS if variants else 1))
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
        return (
            np.zeros(0, bool),
            np.zeros((0, N_VARIANTS if variants else 1), np.int64),
            np.zeros((0, 1, dim), np.float32),
        )
    return np.concatenate(oks).astype(bool), np.concatenate(hashes), np.concatenate(vectors).astype(np.float32)
