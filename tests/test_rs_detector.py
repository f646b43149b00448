import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from outlier_inputs import make_run, trained_detector
from schema_defaults import schema_defaults

from rs5m.pub11.train_rs_detector import (
    NON_RS_CLASS,
    RS_CLASS,
    balanced_split,
    export_training_images,
    list_images,
    load_detector,
    predict_rs_probability,
    split_accuracy,
    split_counts,
)

DETECTOR = schema_defaults("outliers", "detector")


def test_split_counts_7_1_2():
    assert split_counts(5000) == (3500, 500, 1000)
    assert split_counts(10) == (7, 1, 2)
    assert split_counts(3) == (1, 1, 1)
    assert sum(split_counts(13)) == 13


def test_balanced_split_equal_classes_disjoint_and_seeded(tmp_path):
    positives = [tmp_path / f"p{i}.jpg" for i in range(20)]
    negatives = [tmp_path / f"n{i}.jpg" for i in range(50)]
    split = balanced_split(positives, negatives, seed=3, max_per_class=DETECTOR["max_per_class"])
    for name, size in (("train", 14), ("val", 2), ("test", 4)):
        assert len(split[name][RS_CLASS]) == len(split[name][NON_RS_CLASS]) == size
    all_neg = split["train"][NON_RS_CLASS] + split["val"][NON_RS_CLASS] + split["test"][NON_RS_CLASS]
    assert len(set(all_neg)) == 20 and set(all_neg) <= set(negatives)
    assert balanced_split(positives, negatives, seed=3, max_per_class=DETECTOR["max_per_class"]) == split
    assert balanced_split(positives, negatives, seed=4, max_per_class=DETECTOR["max_per_class"]) != split
    assert len(balanced_split(positives, negatives, seed=DETECTOR["seed"], max_per_class=10)["train"][RS_CLASS]) == 7
    with pytest.raises(ValueError, match="at least 3"):
        balanced_split(positives[:2], negatives, seed=DETECTOR["seed"], max_per_class=DETECTOR["max_per_class"])


def test_training_writes_metrics_and_weights_that_inference_loads():
    weights, work, metrics = trained_detector()
    on_disk = json.loads((work / "out/metrics.json").read_text())
    assert on_disk == metrics
    # 10 RS and 14 non-RS images: balanced to 10 per class, 7:1:2 each
    assert metrics["images"] == {
        "train": {"rs": 7, "non_rs": 7},
        "val": {"rs": 1, "non_rs": 1},
        "test": {"rs": 2, "non_rs": 2},
    }
    assert metrics["val_accuracy"] in (0.0, 0.5, 1.0) and metrics["test_accuracy"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    module, transform, rs_index, imgsz = load_detector(weights)
    assert imgsz == 32 and module.names[rs_index] == RS_CLASS
    # the accuracy in the file is what inference on the test split gives
    test_dir = work / "train/data/test"
    classes = {label: sorted((test_dir / label).iterdir()) for label in (RS_CLASS, NON_RS_CLASS)}
    assert split_accuracy(weights, classes) == metrics["test_accuracy"]
    probabilities = predict_rs_probability(
        weights, classes[RS_CLASS] + classes[NON_RS_CLASS], batch_size=3, device="cpu"
    )
    assert probabilities.shape == (4,) and ((probabilities > 0) & (probabilities < 1)).all()
    # same preprocessing and head as ultralytics' own predictor on the trained file
    from ultralytics import YOLO

    reference = YOLO(str(weights)).predict(
        [str(p) for p in classes[RS_CLASS] + classes[NON_RS_CLASS]], imgsz=32, device="cpu", verbose=False
    )
    np.testing.assert_allclose(probabilities, [float(r.probs.data[rs_index]) for r in reference], atol=1e-5)


def test_export_training_images_by_caption(tmp_path):
    kept, images = make_run(tmp_path, {"0000": 6, "0001": 4})
    written = export_training_images(kept, tmp_path / "pos", caption_pattern=r"\baerial\b", root=tmp_path)
    uids = sorted(p.stem for p in written)
    table = pq.read_table(kept).to_pylist()
    assert uids == sorted(r["uid"] for r in table if "aerial" in r["caption"])
    assert len(uids) == 5  # images 0, 2, 4 of part 0 and 0, 2 of part 1
    for path in written:
        assert path.read_bytes() == images[path.stem]
    negatives = export_training_images(kept, tmp_path / "neg", exclude_pattern="aerial", limit=2, seed=0, root=tmp_path)
    assert len(negatives) == 2 and not {p.stem for p in negatives} & set(uids)
    assert len(list_images([tmp_path / "pos", tmp_path / "neg"])) == 7
