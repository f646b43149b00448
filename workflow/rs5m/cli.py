"""The `rs5m` command: tools that work on a finished (or running) build folder.

`rs5m browse` serves the web app; `rs5m funnel` prints the funnel of a run folder; `rs5m audit`
checks a finished run's invariant (every row one terminal state, every kept sample in one shard);
`rs5m compare` prints the evaluation tables of two run folders side by side.
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


def _compare(args: argparse.Namespace) -> int:
    from rs5m.evaluation.evaluation_table import compare_runs

    try:
        print(compare_runs(args.run_a, args.run_b), end="")
    except FileNotFoundError as error:
        print(f"rs5m compare: {error}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rs5m", description="Tools for RS5M build folders.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_browse_parser(subparsers)
    add_audit_parser(subparsers)
    funnel = subparsers.add_parser("funnel", help="print the PUB11 funnel of a run folder from its ledger files")
    funnel.add_argument("run_dir", nargs="?", default=".", help="folder snakemake ran in (default: here)")
    funnel.set_defaults(func=_funnel)
    compare = subparsers.add_parser(
        "compare", help="print two run folders' evaluation tables (results/eval/results.json) side by side"
    )
    compare.add_argument("run_a", help="run folder whose base model the deltas are taken to")
    compare.add_argument("run_b", help="the other run folder")
    compare.set_defaults(func=_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
