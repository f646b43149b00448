"""CLIP fine-tuning on the build's own shards (rule `train_clip`): reads the subsets' manifests
(`results/shards/{subset}.manifest.json`, their `train` tars, either member layout) and writes the
fine-tuned weights `results/train_clip/model.pt` (a state dict that `evaluate` loads on the base).

Why not `open_clip_train`: its webdataset pipeline renames fixed keys (`jpg;png;jpeg;webp` and
`txt`), so it cannot read the default `rs5m` layout (`<key>.img_content`, `<key>.caption`) without
a rebuild with `shards.member_names: standard`. This loop is the part of its recipe the paper's
comparison needs, with open_clip's own `ClipLoss`, AdamW (no weight decay on gains, biases and
the logit scale) and a cosine schedule after a linear warm-up, the logit scale clamped to 100:

- A fixed budget in samples seen (`samples`), so two builds train on as many pairs whatever
  their size; the last batch is cut so exactly `samples` are seen.
- A seeded, repeatable stream: each epoch shuffles the tar order and then the samples through a
  buffer (`shuffle`, the loader recipe of SPEC 5), both from `seed` and the epoch number;
  preprocessing is the model's evaluation transform (resize + centre crop, no augmentation).
- Checkpoints every `checkpoint_every` samples to `train_state.pt` beside the output (weights,
  optimizer, step, samples seen, a fingerprint of the settings and of the manifests' bytes); a
  rerun after a kill resumes from it by skipping the samples already seen, and reaches the weights
  of an uninterrupted run; a state of other settings or another build is ignored.
- Several GPUs (`gpus` > 1): `train_clip_launch` runs this module under
  `torchrun --standalone --nproc_per_node gpus`; each process (`WORLD_SIZE` > 1) joins the process
  group (nccl on CUDA, gloo on CPU), wraps the model in DistributedDataParallel (gradients
  averaged) and decodes its rank-strided share of each global batch of the one seeded stream;
  ClipLoss gathers the features with their gradients, so the contrastive loss sees the global
  batch (`batch_size` per process). The budget and the checkpoints count samples seen globally;
  only rank 0 writes the checkpoints, the weights and the summary. `samples` must then be a
  multiple of the process count, so that the last global batch splits evenly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from rs5m import offline
from rs5m.evaluation.settings import TrainSettings
from rs5m.models import RANDOM_WEIGHTS_MARKER, is_random_weights, load_clip, resolve_device
from rs5m.settings import from_section
from rs5m.tar import iter_shard_samples

logger = logging.getLogger("rs5m.evaluation.train_clip")

IMAGE_MEMBERS = ("img_content", "jpg", "jpeg", "png", "webp")
CAPTION_MEMBERS = ("caption", "txt")
STATE_NAME = "train_state.pt"


def train_tars(manifests: list[str | Path]) -> list[str]:
    """The `train` tars listed in the shard manifests (paths relative to each manifest's folder)."""
    tars = []
    for manifest in manifests:
        payload = json.loads(Path(manifest).read_text())
        tars += [str(Path(manifest).parent / s["path"]) for s in payload["shards"] if s["split"] == "train"]
    if not tars:
        raise ValueError(f"no train shards in {manifests}")
    return sorted(tars)


def _pair(members: dict[str, bytes]) -> tuple[bytes, str] | None:
    image = next((members[k] for k in IMAGE_MEMBERS if k in members), None)
    caption = next((members[k] for k in CAPTION_MEMBERS if k in members), None)
    if image is None or caption is None:
        return None
    return image, caption.decode("utf-8")


def sample_stream(tars: list[str], seed: int, shuffle: int) -> Iterator[tuple[bytes, str]]:
    """(image bytes, caption) forever: epoch by epoch, tars and samples shuffled from (seed, epoch)."""
    epoch = 0
    while True:
        rng = random.Random(f"{seed}:{epoch}")
        order = list(tars)
        rng.shuffle(order)
        buffer: list[tuple[bytes, str]] = []
        empty = True
        for tar in order:
            for _, members in iter_shard_samples(tar):
                pair = _pair(members)
                if pair is None:
                    continue
                empty = False
                buffer.append(pair)
                if len(buffer) >= max(1, shuffle):
                    index = rng.randrange(len(buffer))
                    buffer[index], buffer[-1] = buffer[-1], buffer[index]
                    yield buffer.pop()
        if empty:
            raise ValueError(f"no image-caption samples in {tars}")
        while buffer:
            index = rng.randrange(len(buffer))
            buffer[index], buffer[-1] = buffer[-1], buffer[index]
            yield buffer.pop()
        epoch += 1


def settings_fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def cosine_lr(step: int, total_steps: int, warmup_steps: int, lr: float) -> float:
    """open_clip_train's schedule: linear warm-up, then cosine decay to 0."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress)) * lr


def _atomic_save(obj, path: Path) -> None:
    import torch

    partial = path.with_name(path.name + ".partial")
    torch.save(obj, partial)
    os.replace(partial, path)


def save_state(state: dict, path: Path) -> None:
    """Write the resume state (a separate function, so a test can stop the run right after it)."""
    _atomic_save(state, path)


def train_clip(output: str | Path, manifests: list[str | Path], settings: TrainSettings, workers: int) -> dict:
    """Fine-tune the base model (`settings.base`) on the train shards for `train.samples` samples;
    writes the weights to `output` and a summary (`<output>.json`); returns the summary."""
    offline.setup()
    import torch
    from open_clip.loss import ClipLoss
    from PIL import Image

    model, pretrained = settings.base.model, settings.base.pretrained
    device, precision = settings.device, settings.precision
    train = settings.train
    samples, batch_size, lr, weight_decay = train.samples, train.batch_size, train.lr, train.weight_decay
    warmup_samples, shuffle, checkpoint_every, seed = (
        train.warmup_samples, train.shuffle, train.checkpoint_every, train.seed
    )  # fmt: skip
    fingerprinted = dict(
        manifests={str(m): hashlib.sha256(Path(m).read_bytes()).hexdigest() for m in manifests}, model=model, pretrained=pretrained, samples=samples,
        batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup_samples=warmup_samples,
        shuffle=shuffle, seed=seed,
    )  # fmt: skip
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world > 1:  # the global batch is batch_size x processes: a state of another count is not resumed
        fingerprinted["processes"] = world
    fingerprint = settings_fingerprint(fingerprinted)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    state_path = output.with_name(STATE_NAME)
    device = resolve_device(device)
    if world > 1:
        if samples % world:
            raise ValueError(f"samples ({samples}) must be a multiple of the {world} processes")
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    tars = train_tars(manifests)

    torch.manual_seed(seed)
    loaded = load_clip(model, pretrained, None, device)
    clip, preprocess, tokenizer = loaded.model.train(), loaded.preprocess, loaded.tokenizer
    # open_clip_train's parameter groups: no weight decay on gains, biases, embeddings, logit scale.
    no_decay = [
        p
        for n, p in clip.named_parameters()
        if p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
    ]
    decay = [p for n, p in clip.named_parameters() if not any(p is q for q in no_decay)]
    optimizer = torch.optim.AdamW(
        [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}],
        lr=lr, betas=(0.9, 0.98), eps=1e-6,
    )  # fmt: skip
    if world > 1:
        loss_fn = ClipLoss(local_loss=False, gather_with_grad=True, rank=rank, world_size=world)
        forward = torch.nn.parallel.DistributedDataParallel(
            clip, device_ids=[device] if device.startswith("cuda") else None
        )
    else:
        loss_fn, forward = ClipLoss(), clip
    global_batch = batch_size * world
    total_steps = math.ceil(samples / global_batch)
    warmup_steps = min(total_steps, math.ceil(warmup_samples / global_batch))

    step, seen, losses = 0, 0, []
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") == fingerprint:
            clip.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            step, seen, losses = state["step"], state["samples_seen"], state["losses"]
            logger.info("resuming at step %d, %d samples seen (%s)", step, seen, state_path)
        else:
            logger.warning("%s was written with other settings; training from the start", state_path)

    stream = sample_stream(tars, seed, shuffle)
    for _ in range(seen):  # skip what the interrupted run saw (bytes only, nothing decoded)
        next(stream)

    def prepare(pair):
        with Image.open(io.BytesIO(pair[0])) as image:
            return preprocess(image.convert("RGB"))

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16 if precision in ("auto", "bf16") else torch.float16)
        if device != "cpu" and precision != "fp32"
        else torch.autocast("cpu", enabled=False)
    )
    started = time.perf_counter()
    next_checkpoint = (seen // checkpoint_every + 1) * checkpoint_every
    with ThreadPoolExecutor(max(1, workers)) as pool:
        while seen < samples:
            batch = [next(stream) for _ in range(min(global_batch, samples - seen))]
            size, batch = len(batch), batch[rank::world]  # each process decodes its own share
            images = torch.stack(list(pool.map(prepare, batch))).to(device)
            texts = tokenizer([caption for _, caption in batch]).to(device)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total_steps, warmup_steps, lr)
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                out = forward(images, texts)
                if isinstance(out, dict):
                    image_features, text_features, logit_scale = (
                        out["image_features"], out["text_features"], out["logit_scale"]
                    )  # fmt: skip
                else:
                    image_features, text_features, logit_scale = out[:3]
                loss = loss_fn(image_features, text_features, logit_scale)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss {loss.item()} at step {step}")
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                clip.logit_scale.clamp_(0, math.log(100))
            step += 1
            seen += size
            losses.append(round(float(loss.item()), 6))
            if rank == 0 and (seen >= next_checkpoint or seen >= samples):
                next_checkpoint = (seen // checkpoint_every + 1) * checkpoint_every
                state = {
                    "fingerprint": fingerprint, "model": clip.state_dict(), "optimizer": optimizer.state_dict(),
                    "step": step, "samples_seen": seen, "losses": losses,
                }  # fmt: skip
                save_state(state, state_path)
                logger.info("step %d, %d/%d samples seen, loss %.4f", step, seen, samples, losses[-1])
    seconds = time.perf_counter() - started
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        if rank:
            return {}
    _atomic_save({k: v.detach().cpu() for k, v in clip.state_dict().items()}, output)
    marker = output.with_name(output.name + "." + RANDOM_WEIGHTS_MARKER)
    if not pretrained or is_random_weights(pretrained):
        marker.write_text("fine-tuned from random-init weights: a toy model\n")
    elif marker.exists():
        marker.unlink()
    summary = {
        "model": model, "pretrained": pretrained, "samples_seen": seen, "steps": step, "train_tars": len(tars),
        "final_loss": losses[-1] if losses else None, "losses": losses, "seconds_this_run": round(seconds, 3),
        "settings": fingerprinted,
    }  # fmt: skip
    Path(str(output) + ".json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def train_clip_launch(output: str | Path, manifests: list[str | Path], settings: TrainSettings, workers: int) -> dict:
    """`train_clip` in this process for one GPU; for more (`train.gpus`), under
    `torchrun --standalone --nproc_per_node gpus` (this module's `__main__`, the arguments and the
    settings, `dataclasses.asdict`, passed as a JSON file), returning the summary rank 0 wrote."""
    gpus = settings.train.gpus
    if gpus <= 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return train_clip(output, manifests, settings, workers)
    arguments_json = {
        "output": str(output), "manifests": [str(m) for m in manifests], "settings": dataclasses.asdict(settings),
        "workers": workers,
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        arguments = Path(folder) / "train_clip.json"
        arguments.write_text(json.dumps(arguments_json))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"]
        command += ["-m", __name__, str(arguments)]
        logger.info("launching %s", " ".join(command))
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
            for line in process.stdout:  # the processes' logs into the rule's log
                logger.info("%s", line.rstrip())
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, command)
    return json.loads(Path(str(output) + ".json").read_text())


if __name__ == "__main__":  # one torchrun process of train_clip_launch
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s [%(process)d] %(levelname)s %(message)s")
    arguments = json.loads(Path(sys.argv[1]).read_text())
    train_clip(**{**arguments, "settings": from_section(TrainSettings, arguments["settings"])})
