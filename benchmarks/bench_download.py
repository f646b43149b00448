"""Benchmark the download stage against a direct img2dataset call on the same loopback URLs.

Both fetch the same N URLs from the demo web on 127.0.0.1 with the same img2dataset settings (2
processes x 16 threads, webdataset, keep_ratio_largest 4096, uid and source carried); the stage
adds reading its part, the ledger and its own process around img2dataset. Runs alternate and the
best of each is kept (the machine is shared). Target: stage / direct <= 1.10.

    PYTHONPATH=workflow python benchmarks/bench_download.py [--small]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.columns import make_uid
from rs5m.demo.web import DemoWebServer, render_image
from rs5m.pub11.download_part import download_part

DISTINCT_IMAGES = 100  # rendered once; URLs differ by a query the server ignores
SETTINGS = dict(thread_count=16, image_size=4096, resize_mode="keep_ratio_largest", resize_only_if_bigger=True,
                encode_quality=95, skip_reencode=True, timeout=10, retries=0, number_sample_per_shard=10000)


def direct(url_list: Path, out_dir: Path, processes: int) -> None:
    arguments = dict(url_list=str(url_list), input_format="parquet", url_col="url", output_format="webdataset",
                     output_folder=str(out_dir), processes_count=processes, save_additional_columns=["uid", "source"],
                     extract_exif=False, enable_wandb=False, **SETTINGS)
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    code = "import json, sys\nfrom img2dataset import download\nif __name__ == '__main__':\n    download(**json.loads(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, json.dumps(arguments)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="300 URLs instead of 2,000")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    count = 300 if args.small else 2000
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        os.environ.pop(name, None)  # loopback only, straight to the server
    for n in range(DISTINCT_IMAGES):
        render_image("rs", n, None)

    root = Path(tempfile.mkdtemp(prefix="bench-download-"))
    with DemoWebServer() as server:
        urls = [f"{server.url}/img/rs/{i % DISTINCT_IMAGES}.jpg?rep={i}" for i in range(count)]
        uids = [make_uid("laion2b", url) for url in urls]
        table = pa.table({"uid": uids, "source": ["laion2b"] * count, "url": urls})
        pq.write_table(table, root / "urls.parquet")
        best = {"stage": float("inf"), "direct": float("inf")}
        for round_index in range(args.rounds):
            for name in ("direct", "stage") if round_index % 2 == 0 else ("stage", "direct"):
                out_dir = root / name
                shutil.rmtree(out_dir, ignore_errors=True)
                started = time.perf_counter()
                if name == "direct":
                    direct(root / "urls.parquet", out_dir, processes=2)
                else:
                    download_part(str(root / "urls.parquet"), str(out_dir), str(root / "stage.stats.json"),
                                  str(root / "stage.drops.parquet"), threads=2, **SETTINGS)
                elapsed = time.perf_counter() - started
                best[name] = min(best[name], elapsed)
                print(f"round {round_index + 1} {name:6s}: {elapsed:6.1f} s ({count / elapsed:5.0f} images/s)", flush=True)
    (stats,) = json.loads((root / "stage.stats.json").read_text())
    print(f"stage ledger: {stats['kept']} of {stats['rows_in']} fetched, dropped {stats['dropped']}")
    print(f"best: stage {best['stage']:.1f} s, direct img2dataset {best['direct']:.1f} s, "
          f"overhead ratio {best['stage'] / best['direct']:.2f} (target <= 1.10)")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
