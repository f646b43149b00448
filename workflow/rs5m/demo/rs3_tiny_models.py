"""Tiny random-weight models built offline for tests, benchmarks and the demo run.

Writes a small BLIP-2 (Blip2ForConditionalGeneration + Blip2Processor with a BPE tokenizer trained
in-process, or one from open_clip's shipped vocabulary) to a folder; registers tiny open_clip configs.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from rs5m.models import RANDOM_WEIGHTS_MARKER, clip_config_path

log = logging.getLogger(__name__)

# The demo's CLIP: a tiny ViT built offline with random weights.
TINY_CLIP_NAME = "rs5m-tiny-clip"

TINY_CLIP_CONFIGS = {
    # A small ViT: the demo's stand-in for ViT-H-14 (and for the outlier stage's CLIP).
    "rs5m-tiny-clip": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    # A small modified ResNet: the demo's stand-in for RN50x64.
    "rs5m-tiny-clip-rn": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "patch_size": None},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
}


def register_tiny_clip(name: str = "rs5m-tiny-clip") -> str:
    """Make a tiny open_clip model name resolvable (idempotent); returns the name.

    Every name in TINY_CLIP_CONFIGS is registered at once, so either can be asked for.
    """
    import open_clip

    if name not in TINY_CLIP_CONFIGS:
        raise KeyError(f"unknown tiny CLIP {name!r}; known: {sorted(TINY_CLIP_CONFIGS)}")
    if name in open_clip.list_models():
        return name
    config_dir = Path(tempfile.gettempdir()) / "rs5m-open-clip-configs"
    config_dir.mkdir(parents=True, exist_ok=True)
    for model_name, config in TINY_CLIP_CONFIGS.items():
        target = config_dir / f"{model_name}.json"
        text = json.dumps(config, indent=1)
        if not target.exists() or target.read_text() != text:
            # Write then rename so parallel jobs never read a half-written config.
            partial = target.with_suffix(f".{id(text)}.tmp")
            partial.write_text(text)
            partial.replace(target)
    open_clip.add_model_config(config_dir)
    return name


def build_tiny_clip(name: str, path: str | Path, seed: int = 0) -> Path:
    """Save a seeded random-init tiny CLIP checkpoint that `pretrained=<path>` loads, so every
    job of a run (and every rerun) ranks with the same weights."""
    import open_clip
    import torch

    register_tiny_clip(name)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    # Its architecture beside it, so the stages load it like any local checkpoint (rs5m.models).
    clip_config_path(name, path).write_text(json.dumps(TINY_CLIP_CONFIGS[name], indent=1))
    path.with_name(path.name + "." + RANDOM_WEIGHTS_MARKER).write_text("random init, seed %d\n" % seed)
    return path


def _clip_bpe_tokenizer(work_dir: Path):
    """A CLIPTokenizer from open_clip's shipped BPE vocabulary, with `<image>` and pad = eos."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    bpe = SimpleTokenizer()
    vocab_path, merges_path = work_dir / "vocab.json", work_dir / "merges.txt"
    vocab_path.write_text(json.dumps(bpe.encoder), encoding="utf-8")
    ranked = sorted(bpe.bpe_ranks.items(), key=lambda item: item[1])
    merges_path.write_text(
        "#version: 0.2\n" + "".join(f"{left} {right}\n" for (left, right), _ in ranked), encoding="utf-8"
    )
    tokenizer = CLIPTokenizer(str(vocab_path), str(merges_path), pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return tokenizer


# Training text of the small tiny-model BPE: caption-like phrases, so its merges are words that
# look like captions when a random model samples them.
_BPE_CORPUS = [
    "a satellite view of a farm field next to a river",
    "an aerial image of an airport with planes parked on the runway",
    "a satellite image of a city with roads, houses and a stadium",
    "an aerial photograph of a harbour with boats and containers",
    "a google earth view of a forest, a lake and green meadows",
    "a satellite photo of a parking lot full of cars near a shopping mall",
    "an overhead view of a bridge over the water and a highway",
    "a remote sensing image of a desert with sand dunes and a road",
    "aerial view of a beach, the sea and a small town",
    "a satellite image showing crop fields, a farm house and trees",
]


def _caption_bpe_tokenizer(vocab_size: int = 400):
    """A small BPE (SentencePiece-style word boundaries) trained in-process on caption phrases:
    its ~240 tokens keep top-k/top-p sampling of 20 candidates cheap on a CPU, and every token
    decodes to printable text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        special_tokens=["<pad>", "</s>", "<unk>", "<image>"],
    )
    bpe.train_from_iterator(_BPE_CORPUS * 20, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="</s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<image>"],
    )


def build_tiny_blip2(
    path: str | Path, seed: int = 0, num_query_tokens: int = 4, image_size: int = 32, tokenizer: str = "caption_bpe"
) -> Path:
    """Save a small random BLIP-2 (OPT text model) with its processor to `path`.

    Loads with Blip2Processor/Blip2ForConditionalGeneration.from_pretrained like the real
    Salesforce/blip2-opt-6.7b folder, so the caption stage runs the same code on both.
    `tokenizer` is "caption_bpe" (trained here, ~240 tokens, fast) or "clip_bpe" (open_clip's
    shipped 49k vocabulary: closer to a real vocabulary size, ~6x slower to sample).
    """
    import torch
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor, OPTConfig

    from rs5m import offline

    offline.setup()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if tokenizer == "caption_bpe":
        tokenizer = _caption_bpe_tokenizer()
    elif tokenizer == "clip_bpe":
        with tempfile.TemporaryDirectory() as work:
            tokenizer = _clip_bpe_tokenizer(Path(work))
    else:
        raise ValueError(f"tokenizer must be caption_bpe or clip_bpe, got {tokenizer!r}")
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    # Every transformer of the model is one layer of width 32, two heads and a 64-wide MLP.
    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = Blip2Config(
        vision_config=dict(tiny, image_size=image_size, patch_size=8),
        qformer_config=dict(tiny, encoder_hidden_size=tiny["hidden_size"], vocab_size=128),
        text_config=OPTConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            ffn_dim=64,
            num_attention_heads=2,
            word_embed_proj_dim=32,
            max_position_embeddings=128,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ).to_dict(),
        num_query_tokens=num_query_tokens,
        image_token_index=image_token,
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer,
        num_query_tokens=num_query_tokens,
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    (path / RANDOM_WEIGHTS_MARKER).write_text(f"random init, seed {seed}\n")
    log.info(
        "tiny BLIP-2 (random weights, %d parameters) written to %s", sum(p.numel() for p in model.parameters()), path
    )
    return path


def build_tiny_models(blip2_path: str | Path, clip_paths: dict[str, str | Path], seed: int) -> None:
    """Everything the demo's caption stage loads: one BLIP-2 folder and one checkpoint per CLIP."""
    build_tiny_blip2(blip2_path, seed=seed)
    for name, path in clip_paths.items():
        build_tiny_clip(name, path, seed=seed)
