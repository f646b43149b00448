"""Evaluation metrics: hand-built embeddings with known answers, and clip-benchmark's implementation."""

import sys
import types

import numpy as np
import pytest

from rs5m.evaluation.metrics import class_embeddings, normalize, retrieval_recalls, zeroshot_accuracy


def axis(i, dim=8):
    v = np.zeros(dim, np.float32)
    v[i] = 1.0
    return v


def test_zeroshot_accuracy_known_cases_and_ties():
    classifier = np.stack([axis(0), axis(1), axis(2)])
    images = np.stack([axis(0), axis(1), axis(2), axis(1), normalize(axis(0) + axis(1))])
    # The last image scores 0.707 for classes 0 and 1: the tie goes to class 0 (lower index).
    assert zeroshot_accuracy(images, classifier, [0, 1, 2, 2, 0]) == pytest.approx(80.0)
    assert zeroshot_accuracy(images, classifier, [0, 1, 2, 2, 1]) == pytest.approx(60.0)


def test_class_embeddings_average_normalised_templates():
    # Two templates of unequal length: averaging the normalised vectors weighs them equally.
    templates = np.array([[[10.0, 0.0], [0.0, 1.0]]])
    assert class_embeddings(templates)[0] == pytest.approx([2**-0.5, 2**-0.5])


def test_retrieval_recalls_with_several_captions_per_image():
    dim = 16
    images = np.stack([axis(i, dim) for i in range(6)])
    # Image 0 has two captions, one poor; image 1's caption leans towards image 2.
    captions, owner = [], []
    captions += [normalize(axis(7, dim) + 0.1 * axis(0, dim)), axis(0, dim)]
    owner += [0, 0]
    captions += [normalize(axis(2, dim) + 0.9 * axis(1, dim))]
    owner += [1]
    for i in range(2, 6):
        captions.append(axis(i, dim))
        owner.append(i)
    texts = np.stack(captions)
    r = retrieval_recalls(images, texts, owner)
    # text -> image: caption 2 scores 0.74 for image 2 and 0.67 for its own image 1 -> rank 1:
    # a miss at 1, a hit at 5; every other caption finds its image first.
    assert r["t2i_R@1"] == pytest.approx(100 * 6 / 7)
    assert r["t2i_R@5"] == pytest.approx(100.0)
    # image -> text: image 0's best caption (caption 1) is first although caption 0 is not;
    # image 1's only caption is its best match (0.67, every other caption scores 0).
    assert r["i2t_R@1"] == pytest.approx(100.0)
    assert r["mean_recall"] == pytest.approx((3 * 100 + 100 * 6 / 7 + 2 * 100) / 6)


def test_retrieval_ties_count_by_index_order():
    # Two images with identical embeddings: the caption of the second finds the first ranked
    # ahead of its own (equal score, lower index) -> miss at 1, hit at 5.
    images = np.stack([axis(0), axis(0), axis(1)])
    texts = np.stack([axis(0), axis(0), axis(1)])
    r = retrieval_recalls(images, texts, [0, 1, 2])
    assert r["t2i_R@1"] == pytest.approx(200 / 3)
    assert r["i2t_R@1"] == pytest.approx(200 / 3)
    assert r["t2i_R@5"] == r["i2t_R@5"] == pytest.approx(100.0)


def test_retrieval_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="caption -> image"):
        retrieval_recalls(np.eye(3), np.eye(3), [0, 1])
    with pytest.raises(ValueError, match="without captions"):
        retrieval_recalls(np.eye(3), np.eye(3)[:2], [0, 1])


def random_embeddings(rng, n, dim):
    return normalize(rng.standard_normal((n, dim)))


def test_retrieval_equals_clip_benchmark():
    torch = pytest.importorskip("torch")
    import clip_benchmark.metrics.zeroshot_retrieval as reference

    rng = np.random.default_rng(3)
    images = random_embeddings(rng, 40, 16)
    owner = np.repeat(np.arange(40), 5)  # five captions per image, as in RSICD
    # Captions near their image, so recalls are neither 0 nor 100.
    texts = normalize(images[owner] + 1.2 * rng.standard_normal((200, 16)))
    ours = retrieval_recalls(images, texts, owner)
    scores = torch.from_numpy(texts) @ torch.from_numpy(images).T
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(len(owner)), torch.from_numpy(owner)] = True
    for k in (1, 5, 10):
        # clip-benchmark: "image retrieval" is text -> image, "text retrieval" image -> text.
        t2i = (reference.batchify(reference.recall_at_k, scores, positive, 64, "cpu", k=k) > 0).float().mean()
        i2t = (reference.batchify(reference.recall_at_k, scores.T, positive.T, 64, "cpu", k=k) > 0).float().mean()
        assert ours[f"t2i_R@{k}"] == pytest.approx(100 * t2i.item(), abs=1e-4)
        assert ours[f"i2t_R@{k}"] == pytest.approx(100 * i2t.item(), abs=1e-4)
    assert 0 < ours["t2i_R@1"] < 100 and 0 < ours["i2t_R@1"] < 100


def import_clip_benchmark_classification(monkeypatch):
    """clip-benchmark's classification module imports scikit-learn for reports this test does not
    use (`make setup` installs clip-benchmark without its requirements); a stand-in
    `sklearn.metrics`, removed again after the test, lets `accuracy` be imported."""
    try:
        import sklearn.metrics  # noqa: F401
    except ImportError:
        stub = types.ModuleType("sklearn.metrics")
        stub.classification_report = stub.balanced_accuracy_score = None
        package = types.ModuleType("sklearn")
        package.metrics = stub
        monkeypatch.setitem(sys.modules, "sklearn", package)
        monkeypatch.setitem(sys.modules, "sklearn.metrics", stub)
        monkeypatch.delitem(sys.modules, "clip_benchmark.metrics.zeroshot_classification", raising=False)
    import clip_benchmark.metrics.zeroshot_classification as reference

    return reference


class EmbeddingModel:
    """A CLIP-like stand-in for clip-benchmark: `encode_image` returns the image embeddings handed
    to it, `encode_text` looks each prompt's embedding up by its index."""

    def __init__(self, text_table):
        self.text_table = text_table

    def encode_image(self, images):
        return images

    def encode_text(self, indices):
        return self.text_table[indices]


def test_zeroshot_accuracy_equals_clip_benchmark(monkeypatch):
    torch = pytest.importorskip("torch")
    reference = import_clip_benchmark_classification(monkeypatch)
    rng = np.random.default_rng(5)
    templates = rng.standard_normal((7, 4, 16)).astype(np.float32)  # 7 classes x 4 templates
    classifier = class_embeddings(templates)
    labels = rng.integers(0, 7, 300)
    images = normalize(classifier[labels] + 1.0 * rng.standard_normal((300, 16)))
    ours = zeroshot_accuracy(images, classifier, labels)
    # clip-benchmark's own classifier (prompt ensembling) and logits, on the same embeddings.
    model = EmbeddingModel(torch.from_numpy(templates.reshape(28, 16)))
    names = [str(c) for c in range(7)]
    prompt_index = {f"{c}:{t}": 4 * c + t for c in range(7) for t in range(4)}
    prompts = [f"{{c}}:{t}" for t in range(4)]

    def tokenizer(texts):
        return torch.tensor([prompt_index[text] for text in texts])

    weights = reference.zero_shot_classifier(model, tokenizer, names, prompts, "cpu", amp=False)
    assert weights.T.numpy() == pytest.approx(classifier, abs=1e-5)
    batches = [(torch.from_numpy(images[i : i + 64]), torch.from_numpy(labels[i : i + 64])) for i in range(0, 300, 64)]
    logits, target = reference.run_classification(model, weights, batches, "cpu", amp=False)
    # Its `accuracy` turns a 1-element array into a float, which numpy 2 refuses: the same top-1 here.
    top1 = (logits.topk(1, 1, True, True)[1][:, 0] == target).float().mean().item()
    assert ours == pytest.approx(100 * top1, abs=1e-4)
    assert 20 < ours < 100
