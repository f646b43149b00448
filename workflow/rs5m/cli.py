"""The `rs5m` command: tools that work on a finished (or running) build folder.

`rs5m browse` serves the web app; `rs5m funnel` prints the funnel of a run folder; `rs5m audit`
checks a finished run's invariant (every row one terminal state, every kept sample in one shard).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rs5m.assemble.audit import add_audit_parser
from rs5m.browse import add_browse_parser


def _funnel(args: argparse.Namespace) -> int:
    from rs5m.assemble.funnel import build_funnel, funnel_markdown
    from rs5m.ledger import read_stats

    files = sorted(Path(args.run_dir).glob("results/**/*.stats.json"))
    if not files:
        print(f"rs5m funnel: no ledger files under {args.run_dir}/results", file=sys.stderr)
        return 2
    funnel = build_funnel(read_stats(files))
    print(funnel_markdown(funnel), end="")
    return 0 if funnel.consistent else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rs5m", description="Tools for RS5M build folders.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_browse_parser(subparsers)
    add_audit_parser(subparsers)
    funnel = subparsers.add_parser("funnel", help="print the PUB11 funnel of a run folder from its ledger files")
    funnel.add_argument("run_dir", nargs="?", default=".", help="folder snakemake ran in (default: here)")
    funnel.set_defaults(func=_funnel)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
