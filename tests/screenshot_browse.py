"""Take the README screenshot of `rs5m browse` with headless Chromium.

    PYTHONPATH=workflow python tests/screenshot_browse.py [RUN_DIR] [--out docs/browse.png] [--path /samples?split=val]

Without RUN_DIR it builds the small test run folder of tests/browse_run.py in a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browse_run import make_run  # noqa: E402
from browser_support import chromium, serving  # noqa: E402


def take(run_dir: Path, out: Path, path: str, width: int, height: int) -> None:
    with serving(run_dir) as (_, base), chromium((width, height)) as page:
        page.goto(base + path)
        page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
    print(f"wrote {out} ({base}{path} on {run_dir})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="a finished run folder (default: a generated test run)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "browse.png"))
    parser.add_argument("--path", default="/samples?split=val", help="the page to show")
    parser.add_argument("--size", default="1280x820", help="viewport WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.run_dir:
        take(Path(args.run_dir), Path(args.out), args.path, width, height)
    else:
        with tempfile.TemporaryDirectory(prefix="rs5m-browse-") as tmp:
            make_run(Path(tmp))
            take(Path(tmp), Path(args.out), args.path, width, height)
    return 0


if __name__ == "__main__":
    sys.exit(main())
