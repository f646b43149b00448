"""Dataset card, "Loading" section: exact snippets for each consumer of the shards.

The snippets are built from the manifests (brace patterns over the tars that exist, the sample
counts open_clip needs), for the member layout of the build, with paths under `root` (the card uses
".", the shards folder it lives in). `tests/test_consumers.py` runs these very snippets on the demo's
shards (both layouts, and a `shards.count: 32` build), so the card shows what was tested.

Which layout each tool needs:
- webdataset (`WebDataset(...).decode(...)`) and `rs5m.loader.make_loader`: either layout;
- open_clip (`open_clip_train.main --dataset-type webdataset`): `standard` only; it keeps only
  samples with an image extension (`jpg`, `png`, `webp`) and `txt`, and skips all others silently;
- Hugging Face `datasets` (`load_dataset("webdataset")`): `standard` loads as it is; `rs5m` loads
  with `rs5m.loader.load_hf` (features given, captions cast to text);
- the RS5M authors' loader (`{pub11,rs3}-{split}-{0000..0031}.tar`, `img_name`/`img_content`/
  `caption`): the default `rs5m` layout with `shards.count: 32`.
"""

from __future__ import annotations

import posixpath

from rs5m.assemble.manifest import MEMBER_NAMES, SUBSETS, Manifest
from rs5m.assemble.split import TRAIN, VAL

HF_SPLITS = {TRAIN: "train", VAL: "validation"}


def shard_pattern(manifest: Manifest, split: str, root: str = ".") -> str | None:
    """The brace pattern over a split's tars (`train/pub11-train-{0000..0031}.tar`), or None if none."""
    count = sum(1 for shard in manifest.shards if shard.split == split)
    if not count:
        return None
    numbers = "0000" if count == 1 else f"{{0000..{count - 1:04d}}}"
    return posixpath.join(root, split, f"{manifest.subset}-{split}-{numbers}.tar")


def shard_paths(manifest: Manifest, split: str, root: str = ".") -> list[str]:
    return [posixpath.join(root, shard.path) for shard in manifest.shards if shard.split == split]


def samples(manifest: Manifest, split: str) -> int:
    return sum(shard.samples for shard in manifest.shards if shard.split == split)


def webdataset_snippet(manifest: Manifest, split: str, root: str = ".") -> str:
    """Every sample of one subset and split as a dict with a RGB PIL image and a text caption."""
    url = shard_pattern(manifest, split, root)
    if MEMBER_NAMES[manifest.member_names]["image"] is None:
        return f'''import webdataset as wds

dataset = wds.WebDataset("{url}").decode("pil")
for sample in dataset:
    image, caption, provenance = sample["jpg"], sample["txt"], sample["json"]  # RGB PIL image, str, dict
'''
    return f'''import io

import webdataset as wds
from PIL import Image

dataset = wds.WebDataset("{url}").decode(
    wds.handle_extension("img_content", lambda data: Image.open(io.BytesIO(data)).convert("RGB")),
    wds.handle_extension("caption img_name", lambda data: data.decode("utf-8")),
)
for sample in dataset:
    image, caption, provenance = sample["img_content"], sample["caption"], sample["json"]  # RGB PIL image, str, dict
'''


def hf_snippet(manifest: Manifest, root: str = ".") -> str:
    """Both splits of one subset with Hugging Face `datasets` (one subset per call: their JSON
    members have different keys)."""
    files = {
        HF_SPLITS[split]: posixpath.join(root, split, f"{manifest.subset}-{split}-*.tar")
        for split in (TRAIN, VAL)
        if shard_paths(manifest, split, root)
    }
    if MEMBER_NAMES[manifest.member_names]["image"] is None:
        return f"""from datasets import load_dataset

dataset = load_dataset("webdataset", data_files={files!r})
row = dataset["train"][0]  # row["jpg"]: PIL image, row["txt"]: caption, row["json"]: provenance
"""
    return f'''from rs5m.loader import load_hf  # pip install of this project; `hf_features` gives the features alone

dataset = load_hf({files!r}, member_names="rs5m", subset="{manifest.subset}")
row = dataset["train"][0]  # row["img_content"]: PIL image, row["caption"]: caption, row["json"]: provenance
'''


def open_clip_arguments(
    manifests: list[Manifest], root: str = ".", model: str = "ViT-B-32", batch_size: int = 256, workers: int = 4
) -> list[str] | None:
    """`open_clip_train.main` arguments that train on every train tar and validate on every val tar
    (standard layout only), or None for the rs5m layout."""
    if any(MEMBER_NAMES[m.member_names]["image"] is not None for m in manifests):
        return None
    arguments = ["--dataset-type", "webdataset"]
    for split, option in ((TRAIN, "train"), (VAL, "val")):
        patterns = [p for m in manifests if (p := shard_pattern(m, split, root))]
        if patterns:
            arguments += [
                f"--{option}-data",
                "::".join(patterns),
                f"--{option}-num-samples",
                str(sum(samples(m, split) for m in manifests)),
            ]
    return arguments + [
        "--model",
        model,
        "--batch-size",
        str(batch_size),
        "--workers",
        str(workers),
        "--epochs",
        "1",
        "--lr",
        "5e-4",
        "--warmup",
        "10",
    ]


def authors_loader_snippet(root: str = ".") -> str:
    """The RS5M authors' loader's reading of the shards: 32 tars per subset and split."""
    return f'''import io

import webdataset as wds
from PIL import Image

def decode(key, value):
    if key.endswith(".img_content"):
        return Image.open(io.BytesIO(value)).convert("RGB")
    if key.endswith(".img_name") or key.endswith(".caption"):
        return value.decode("utf-8")
    return value

train = wds.WebDataset("{posixpath.join(root, TRAIN)}/{{pub11,rs3}}-train-{{0000..0031}}.tar").decode(decode)
val = wds.WebDataset("{posixpath.join(root, VAL)}/{{pub11,rs3}}-val-{{0000..0031}}.tar").decode(decode)
'''


def metafile_snippet(root: str = "..") -> str:
    return f'''import pandas as pd

table = pd.read_csv("{posixpath.join(root, "metafiles", "rs3_train_val_metadata.csv")}", keep_default_na=False)
names, captions = table.iloc[:, 0], table.iloc[:, 1]  # every metafile: image name, then caption
'''


def _block(language: str, code: str) -> list[str]:
    return [f"```{language}", code.rstrip(), "```"]


def loading_section(manifests: list[Manifest]) -> list[str]:
    """The card's "Loading" section (Markdown lines) for this build's layout, paths relative to the card."""
    if not manifests:
        return []
    layout = manifests[0].member_names
    by_subset = sorted(manifests, key=lambda m: SUBSETS.index(m.subset))
    first = by_subset[0]
    lines = [
        "## Loading",
        "",
        f"This build uses the `{layout}` member layout (`shards.member_names`). Which layout each tool needs:",
        "",
        "| tool | `rs5m` layout (default) | `standard` layout |",
        "|---|---|---|",
        '| webdataset `WebDataset(...).decode(...)` | yes (decoders for `img_content`, `caption` below) | yes (`.decode("pil")`) |',
        "| open_clip `open_clip_train.main --dataset-type webdataset` | no: it skips every sample (it needs `jpg`/`png`/`webp` + `txt`) | yes |",
        '| Hugging Face `load_dataset("webdataset")` | with `rs5m.loader.load_hf` (features given, captions cast to text) | yes, without `features=` |',
        "| the RS5M authors' loader (`{0000..0031}`, `img_name`/`img_content`/`caption`) | yes, with `shards.count: 32` | no |",
        "| `rs5m.loader.make_loader` | yes | yes |",
        "",
        "Tested with webdataset 0.2.86 (open_clip's training pipeline needs <= 0.2.86: newer releases fail "
        "with `KeyError: 'fname'`), open_clip_torch 3.3.0 and datasets 5.2.0; paths are relative to this folder.",
        "",
        f"webdataset, {first.subset} train split:",
        "",
        *_block("python", webdataset_snippet(first, TRAIN)),
        "",
        f"Hugging Face `datasets`, {first.subset} (one subset per call: the subsets' JSON members differ):",
        "",
        *_block("python", hf_snippet(first)),
        "",
    ]
    arguments = open_clip_arguments(by_subset)
    if arguments:
        lines += [
            "open_clip training on both subsets (the sample counts are this build's):",
            "",
            *_block(
                "bash",
                "python -m open_clip_train.main "
                + " ".join(f'"{a}"' if "{" in a or "::" in a else a for a in arguments),
            ),
            "",
        ]
    else:
        lines += ["open_clip: rebuild with `shards.member_names: standard` (only the shard rules rerun).", ""]
    counts = {m.subset: m.count for m in by_subset}
    if layout == "rs5m" and all(count == 32 for count in counts.values()):
        lines += [
            "The RS5M authors' loader reads this build as released (32 tars per subset and split):",
            "",
            *_block("python", authors_loader_snippet()),
            "",
        ]
    else:
        lines += [
            "The RS5M authors' loader expects the default layout with exactly 32 tars per subset and "
            "split: rebuild with `shards.count: 32` (as `config/rs5m.yaml` does).",
            "",
        ]
    lines += [
        "Metafiles (`../metafiles/`): the first two columns are always the image name and its caption:",
        "",
        *_block("python", metafile_snippet()),
        "",
    ]
    return lines
