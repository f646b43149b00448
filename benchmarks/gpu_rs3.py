"""GPU throughput of RS3 captioning at full size, without downloading weights.

PYTHONPATH=workflow python benchmarks/gpu_rs3.py [--batches 1,4,8,16] [--new-tokens 30]
Builds BLIP-2 OPT-6.7B (the Salesforce/blip2-opt-6.7b architecture) in fp16 with random
weights on the GPU and reports candidates/s and images/s of 20-candidate nucleus sampling per
batch size; then ViT-H-14 (20 texts) and RN50x64 (10 texts + 12 rotations) ranking throughput.
Random weights never stop early, so every candidate runs the full `--new-tokens`: an upper
bound on the work per image. Exits with a message (status 0) when no GPU is present;
`--cpu-smoke` runs the same code with tiny configs on the CPU to check the script.
"""

from __future__ import annotations

import argparse
import sys
import time


def blip2_opt_6_7b_config(tiny: bool = False):
    """The blip2-opt-6.7b architecture (ViT-g/14 vision, 12-layer Q-Former, OPT-6.7B), or a
    tiny one with the same structure for --cpu-smoke."""
    from transformers import Blip2Config, OPTConfig

    if tiny:
        vision = dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=224,
            patch_size=14,
        )
        qformer = dict(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, encoder_hidden_size=32
        )
        text = OPTConfig(
            vocab_size=50304,
            hidden_size=32,
            num_hidden_layers=1,
            ffn_dim=64,
            num_attention_heads=2,
            word_embed_proj_dim=32,
            max_position_embeddings=2048,
        )
    else:
        vision = dict(
            hidden_size=1408,
            intermediate_size=6144,
            num_hidden_layers=39,
            num_attention_heads=16,
            image_size=224,
            patch_size=14,
            qkv_bias=True,
        )
        qformer = dict(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            encoder_hidden_size=1408,
            cross_attention_frequency=2,
        )
        text = OPTConfig(
            vocab_size=50304,
            hidden_size=4096,
            num_hidden_layers=32,
            ffn_dim=16384,
            num_attention_heads=32,
            word_embed_proj_dim=4096,
            max_position_embeddings=2048,
            bos_token_id=2,
            eos_token_id=2,
            pad_token_id=1,
        )
    return Blip2Config(
        vision_config=vision,
        qformer_config=qformer,
        text_config=text.to_dict(),
        num_query_tokens=32,
        image_token_index=50265,
    )


def _sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_blip2(torch, device, dtype, batches, new_tokens, candidates, tiny):
    from transformers import Blip2ForConditionalGeneration

    started = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = Blip2ForConditionalGeneration(blip2_opt_6_7b_config(tiny)).eval()
        finally:
            torch.set_default_dtype(previous)
    _sync(torch, device)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"BLIP-2 OPT-6.7B architecture{' (tiny)' if tiny else ''}: {params / 1e9:.2f} B parameters, "
        f"{dtype}, built in {time.perf_counter() - started:.1f} s"
    )
    for batch in batches:
        pixels = torch.randn(batch, 3, 224, 224, device=device, dtype=dtype)
        kwargs = dict(
            pixel_values=pixels,
            do_sample=True,
            top_k=50,
            top_p=0.95,
            num_return_sequences=candidates,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
        )
        try:
            with torch.inference_mode():
                model.generate(**{**kwargs, "pixel_values": pixels[:1], "max_new_tokens": 2, "min_new_tokens": 2})
                _sync(torch, device)
                started = time.perf_counter()
                model.generate(**kwargs)
                _sync(torch, device)
        except torch.OutOfMemoryError:
            print(f"  batch {batch:>3}: out of memory")
            torch.cuda.empty_cache()
            break
        seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
        print(
            f"  batch {batch:>3} x {candidates} candidates x {new_tokens} tokens: {seconds:7.2f} s = "
            f"{batch * candidates / seconds:8.1f} candidates/s = {batch / seconds:7.2f} images/s "
            f"(peak {peak:.1f} GiB)"
        )
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def bench_clip(torch, device, name, images, texts_per_image, rotations, tiny, batch):
    import open_clip

    from rs5m.demo.rs3_tiny_models import register_tiny_clip

    if tiny:
        name = register_tiny_clip("rs5m-tiny-clip" if "ViT" in name else "rs5m-tiny-clip-rn")
    started = time.perf_counter()
    model = open_clip.create_model(
        name, pretrained=None, device=device, precision="fp16" if device.startswith("cuda") else "fp32"
    ).eval()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    dtype = next(model.parameters()).dtype
    print(f"{name}: image size {size}, built in {time.perf_counter() - started:.1f} s")
    tokens = torch.randint(1, 49000, (batch * texts_per_image, 77), device=device)
    pixels = torch.randn(batch * (rotations or 1), 3, size, size, device=device, dtype=dtype)
    with torch.inference_mode():
        model.encode_image(pixels[:2]), model.encode_text(tokens[:2])
        _sync(torch, device)
        started = time.perf_counter()
        done = 0
        while done < images:
            model.encode_image(pixels)
            model.encode_text(tokens)
            done += batch
        _sync(torch, device)
    seconds = time.perf_counter() - started
    what = f"{rotations} rotations + {texts_per_image} texts" if rotations else f"1 image + {texts_per_image} texts"
    print(f"  {done} images ({what} each, batch {batch}): {seconds:6.2f} s = {done / seconds:8.1f} images/s")
    del model
    return done / seconds


def bench_rotation_cpu(count):
    """The CPU side of ranking: 12 PIL rotations + preprocessing per image (one core)."""
    import numpy as np
    from PIL import Image

    from rs5m.rs3.rs3_caption import rotations

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (448, 448, 3), dtype=np.uint8))
    started = time.perf_counter()
    for _ in range(count):
        [r.resize((448, 448)) for r in rotations(image, 12, 30)]
    seconds = time.perf_counter() - started
    print(f"CPU: 12 rotations + resize of a 448 px image: {count / seconds:.1f} images/s per core")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,4,8,16,32", help="BLIP-2 images per generate call")
    parser.add_argument("--new-tokens", type=int, default=30)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--clip-images", type=int, default=256)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny configs on the CPU: checks the script only")
    args = parser.parse_args()
    import torch

    if args.cpu_smoke:
        device, dtype, tiny = "cpu", torch.float32, True
    elif not torch.cuda.is_available():
        print(
            "gpu_rs3: no CUDA GPU on this machine; nothing measured (run it where a GPU is lent, "
            "or use --cpu-smoke to check the script)"
        )
        return 0
    else:
        device, dtype, tiny = "cuda", torch.float16, False
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    from rs5m import offline

    offline.setup()
    batches = [int(b) for b in args.batches.split(",")]
    if tiny:
        batches = batches[:2]
    bench_blip2(torch, device, dtype, batches, args.new_tokens if not tiny else 4, args.candidates, tiny)
    images = args.clip_images if not tiny else 8
    rate_a = bench_clip(torch, device, "ViT-H-14", images, args.candidates, 0, tiny, batch=32 if not tiny else 4)
    rate_b = bench_clip(torch, device, "RN50x64", images, 10, 12, tiny, batch=16 if not tiny else 2)
    print(f"ranking (ViT-H-14 then RN50x64 with 12 rotations): {1 / (1 / rate_a + 1 / rate_b):.1f} images/s")
    bench_rotation_cpu(4 if tiny else 50)
    return 0


if __name__ == "__main__":
    sys.exit(main())
