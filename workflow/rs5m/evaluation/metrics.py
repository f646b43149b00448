"""Metrics of the evaluation stage: zero-shot top-1 accuracy and retrieval recall@K, on embeddings.

Pure functions over L2-normalised embedding matrices (numpy), so they are checked against
hand-built cases and against `clip-benchmark`'s implementation (tests/test_evaluation.py).

Ranking and ties: candidates are ordered by score, highest first, and equal scores keep the order
of their index (a stable sort), which is what `torch.topk` does on CPU for the matrices
`clip-benchmark` ranks. A query is a hit at K when one of its positives is among the first K.

Retrieval follows the RS papers' protocol (RSICD, RSITMD: five captions per image): image -> text
is a hit when any caption of the image is in the top K; text -> image when the caption's image is.
Mean recall is the mean of the six recalls R@1/5/10 in both directions. Figures are percentages.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

RECALL_KS = (1, 5, 10)

# Prompt templates for zero-shot remote-sensing scene classification: each class name fills `{}`;
# a class's text embedding is the mean of its normalised template embeddings, normalised again
# (CLIP's prompt ensembling). The first is CLIP's own; the rest name the imagery as the RS papers do.
RS_PROMPT_TEMPLATES = (
    "a photo of a {}.",
    "a satellite photo of a {}.",
    "an aerial photo of a {}.",
    "a satellite image of a {}.",
    "an aerial image of a {}.",
    "a remote sensing image of a {}.",
    "a remote sensing image of {}.",
    "a satellite view of {}.",
    "an aerial view of {}.",
    "a top-down view of {}.",
    "a google earth image of {}.",
    "a high resolution satellite image of {}.",
)


def normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def class_embeddings(template_embeddings: np.ndarray) -> np.ndarray:
    """[classes, templates, dim] text embeddings -> [classes, dim]: normalise, average, normalise."""
    return normalize(normalize(template_embeddings).mean(axis=1))


def ranks(scores: np.ndarray) -> np.ndarray:
    """rank[q, c]: position of candidate c in query q's ordering (0 = first; ties by index)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(scores.shape[1])[None, :].repeat(len(scores), 0), axis=1)
    return position


def zeroshot_accuracy(image_embeddings: np.ndarray, classifier: np.ndarray, labels: Sequence[int]) -> float:
    """Top-1 accuracy (%) of images against per-class text embeddings (a tie goes to the lower class index)."""
    labels = np.asarray(labels)
    if not len(labels):
        raise ValueError("zero-shot accuracy of an empty benchmark")
    scores = np.asarray(image_embeddings, dtype=np.float32) @ np.asarray(classifier, dtype=np.float32).T
    predicted = np.argsort(-scores, axis=1, kind="stable")[:, 0]
    return float(100.0 * np.mean(predicted == labels))


def retrieval_recalls(
    image_embeddings: np.ndarray, text_embeddings: np.ndarray, text_image: Sequence[int], ks: Sequence[int] = RECALL_KS
) -> dict[str, float]:
    """Recall@K (%) both ways and their mean: `text_image[t]` is the index of caption t's image.

    Keys: `i2t_R@K`, `t2i_R@K` for each K, and `mean_recall` (the mean of all of them).
    """
    text_image = np.asarray(text_image)
    images, texts = np.asarray(image_embeddings, np.float32), np.asarray(text_embeddings, np.float32)
    if len(text_image) != len(texts):
        raise ValueError(f"{len(texts)} caption embeddings but {len(text_image)} caption -> image indices")
    scores = texts @ images.T  # [texts, images]
    # text -> image: the rank of each caption's own image among all images.
    t2i_rank = ranks(scores)[np.arange(len(texts)), text_image]
    # image -> text: the best rank of any of the image's captions among all captions.
    text_ranks = ranks(scores.T)  # [images, texts]
    i2t_rank = np.full(len(images), np.iinfo(np.int64).max)
    np.minimum.at(i2t_rank, text_image, text_ranks[text_image, np.arange(len(texts))])
    if np.any(i2t_rank == np.iinfo(np.int64).max):
        raise ValueError("retrieval: an image without captions")
    result = {}
    for k in ks:
        result[f"i2t_R@{k}"] = float(100.0 * np.mean(i2t_rank < k))
    for k in ks:
        result[f"t2i_R@{k}"] = float(100.0 * np.mean(t2i_rank < k))
    result["mean_recall"] = float(np.mean(list(result.values())))
    return result
