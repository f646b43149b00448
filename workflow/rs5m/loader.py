"""Reading the shards for training: SPEC 5's loader recipe with reduced-scale JPEG decoding.

Reads `results/shards/**.tar` (either member-name style); yields batches of CLIP-preprocessed
image tensors and captions.
"""

from __future__ import annotations

import io
from typing import Callable, Iterable

from PIL import Image

# CLIP's normalisation (open_clip OPENAI_DATASET_MEAN/STD), the same for every ViT-B/32 checkpoint.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_KEYS = ("img_content", "jpg", "jpeg", "png", "webp")
CAPTION_KEYS = ("caption", "txt")


def decode_image(data: bytes, min_side: int | None = None) -> Image.Image:
    """Decode to RGB; with `min_side`, let libjpeg decode at 1/2, 1/4 or 1/8 scale.

    `draft` keeps both sides at least `min_side`, so a preprocessing that resizes the shorter
    side to `min_side` sees enough pixels; it skips most of the IDCT work on large images.
    The result differs slightly from a full decode followed by the same resize (a box-filtered
    DCT downscale instead of bicubic), which CLIP-style training tolerates.
    """
    image = Image.open(io.BytesIO(data))
    if min_side and image.format == "JPEG":
        image.draft("RGB", (min_side, min_side))
    return image.convert("RGB")


def clip_preprocess(image_size: int = 224) -> Callable:
    """CLIP ViT-B/32 evaluation preprocessing: bicubic resize of the shorter side, centre crop, normalise."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(image_size, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


class FastClipPreprocess:
    """The same result as `clip_preprocess` up to resampling detail, with less work per image.

    The kept window is cut out while resizing (PIL's `box`), so the resize touches only pixels
    that survive the crop, and the tensor is built and normalised in one step from the uint8 array.
    """

    def __init__(self, image_size: int = 224):
        import torch

        self.image_size = image_size
        std = torch.tensor(CLIP_STD).view(3, 1, 1)
        self.scale = 1.0 / (255.0 * std)
        self.shift = torch.tensor(CLIP_MEAN).view(3, 1, 1) / std

    def __call__(self, image: Image.Image):
        import numpy as np
        import torch

        size = self.image_size
        width, height = image.size
        # The window torchvision's Resize(size) + CenterCrop(size) keeps, in source pixels
        # (same integer rounding of the resized long side and of the crop offset).
        if width <= height:
            resized_w, resized_h = size, int(size * height / width)
        else:
            resized_w, resized_h = int(size * width / height), size
        left = int(round((resized_w - size) / 2.0)) * width / resized_w
        top = int(round((resized_h - size) / 2.0)) * height / resized_h
        box = (left, top, left + size * width / resized_w, top + size * height / resized_h)
        square = image.resize((size, size), Image.BICUBIC, box=box)
        pixels = torch.from_numpy(np.asarray(square, dtype=np.uint8).copy()).permute(2, 0, 1)
        return pixels.float().mul_(self.scale).sub_(self.shift)


def _first(sample: dict, keys: Iterable[str]):
    for key in keys:
        if key in sample:
            return sample[key]
    raise KeyError(f"sample {sample.get('__key__')} has none of {tuple(keys)}")


def sample_to_pair(preprocess: Callable, min_side: int | None) -> Callable[[dict], tuple]:
    def convert(sample: dict) -> tuple:
        image = decode_image(_first(sample, IMAGE_KEYS), min_side)
        return preprocess(image), _first(sample, CAPTION_KEYS).decode("utf-8")

    return convert


def make_loader(
    urls: str | list[str],
    batch_size: int = 400,
    shuffle: int = 10_000,
    image_size: int = 224,
    draft: bool = True,
    seed: int = 0,
):
    """The authors' recipe (webdataset -> shuffle 10,000 -> decode -> CLIP preprocess -> batches).

    With `draft`, JPEGs are decoded at the smallest libjpeg scale that still covers `image_size`
    and preprocessed by `FastClipPreprocess`; without, decoding is full and preprocessing is
    torchvision's, as in the authors' recipe.
    Returns a webdataset pipeline yielding (images [B,3,S,S], captions list).
    """
    import random

    preprocess = FastClipPreprocess(image_size) if draft else clip_preprocess(image_size)
    pipeline = web_dataset(urls)
    if shuffle:
        pipeline = pipeline.shuffle(shuffle, rng=random.Random(seed))
    return pipeline.map(sample_to_pair(preprocess, image_size if draft else None)).batched(batch_size)


def web_dataset(urls: str | list[str], **kwargs):
    """`webdataset.WebDataset(urls)` reading the shards in the given order, with the pinned
    webdataset (0.2.86, the newest that open_clip's training pipeline accepts) or a newer one
    (which shuffles shards unless told `shardshuffle=False` and fails on empty shards unless told
    `empty_check=False`; 0.2.86 has no `empty_check` and treats `shardshuffle=False` as a shuffle)."""
    import inspect

    import webdataset as wds

    if "empty_check" in inspect.signature(wds.WebDataset.__init__).parameters:
        kwargs = {"shardshuffle": False, "empty_check": False, **kwargs}
    return wds.WebDataset(urls, **kwargs)


def hf_features(member_names: str = "standard", subset: str = "pub11", image_ext: str = "jpg"):
    """`datasets.Features` of one subset's shards, for `load_dataset("webdataset", ..., features=...)`.

    The standard layout loads without it (every sample of a subset has the same JSON schema, and
    `datasets` decodes `.jpg` and `.txt` by extension). The `rs5m` layout needs it: `datasets` knows
    neither `.img_content` nor `.caption`, so the image is declared an `Image` and the caption and
    image name stay bytes (`binary`) here; `load_hf` casts them to text (Arrow's UTF-8 cast), since a
    `string` feature would turn the bytes into their repr ("b'...'").
    """
    import datasets

    from rs5m.assemble.manifest import MEMBER_NAMES, PROVENANCE_FIELDS

    kinds = {
        "string": datasets.Value("string"),
        "int64": datasets.Value("int64"),
        "float64": datasets.Value("float64"),
        "list<string>": datasets.List(datasets.Value("string")),
    }
    names = MEMBER_NAMES[member_names]
    features = {}
    if names["img_name"]:
        features[names["img_name"]] = datasets.Value("binary")
    features[names["image"] or image_ext] = datasets.Image()
    features[names["caption"]] = datasets.Value("string" if names["caption"] == "txt" else "binary")
    features[names["json"]] = {name: kinds[kind] for name, kind in sorted(PROVENANCE_FIELDS[subset].items())}
    features["__key__"] = datasets.Value("string")
    features["__url__"] = datasets.Value("string")
    return datasets.Features(features)


def load_hf(data_files: dict[str, list[str]] | list[str], member_names: str = "rs5m", subset: str = "pub11", **kwargs):
    """`datasets.load_dataset("webdataset", data_files=...)` for one subset, with text captions in
    either layout: the standard layout as it loads by itself, the `rs5m` layout with `hf_features`
    and its `caption`/`img_name` bytes cast to strings."""
    import datasets

    from rs5m.assemble.manifest import MEMBER_NAMES

    names = MEMBER_NAMES[member_names]
    if names["image"] is None:
        return datasets.load_dataset("webdataset", data_files=data_files, **kwargs)
    loaded = datasets.load_dataset(
        "webdataset", data_files=data_files, features=hf_features(member_names, subset), **kwargs
    )
    for column in (names["caption"], names["img_name"]):
        loaded = loaded.cast_column(column, datasets.Value("string"))
    return loaded
