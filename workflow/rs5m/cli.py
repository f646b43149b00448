"""The `rs5m` command: tools that work on a finished (or running) build folder.

`rs5m browse` serves the web app; `rs5m funnel` prints the funnel of a run folder; `rs5m audit`
checks a finished run's invariant (every row one terminal state, every kept sample in one shard);
`rs5m plan` prints a build's jobs, hours and crawl bound before it starts, `rs5m status` where a
running build stands (rs5m.plan); `rs5m compare` prints the evaluation tables of two run folders side by side.
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


def _add_workflow_arguments(parser, configfile_help: str) -> None:
    """The run folder, config files and Snakefile that `rs5m plan` and `rs5m status` plan from."""
    parser.add_argument("run_dir", nargs="?", default=".", help="folder snakemake runs in (default: here)")
    parser.add_argument("--configfile", nargs="+", default=[], help=configfile_help)
    parser.add_argument("--snakefile", help="the workflow's Snakefile (default: this checkout's)")


def _workflow_files(args: argparse.Namespace) -> tuple[Path, list[str]]:
    """(Snakefile, absolute config files) of `_add_workflow_arguments`' options."""
    from rs5m.plan.dag import default_snakefile

    snakefile = Path(args.snakefile) if args.snakefile else default_snakefile()
    return snakefile, [str(Path(c).resolve()) for c in args.configfile]


def _plan(args: argparse.Namespace) -> int:
    from rs5m.plan.plan import load_config, plan_markdown, write_plan
    from rs5m.plan.settings import PlanSettings

    snakefile, configfiles = _workflow_files(args)
    config = load_config(configfiles, snakefile)
    out = Path(args.out) if args.out else Path(args.run_dir) / "results" / "plan"
    hosts_known = any(Path(args.run_dir).glob("results/pub11/urldedup/*.parquet")) and not args.published
    if args.url_sample is None and not hosts_known:
        print("rs5m plan: no URL filter output to count hosts in: give --url-sample FILE (real URLs)", file=sys.stderr)
        return 2
    plan = write_plan(
        run_dir=args.run_dir,
        snakefile=snakefile,
        configfiles=configfiles,
        out_md=out / "plan.md",
        out_json=out / "plan.json",
        out_png=out / "hosts.png",
        settings=PlanSettings.from_config(config),
        published=args.published,
        url_sample=args.url_sample,
    )
    print(plan_markdown(plan), end="")
    return 0


def _add_plan_parser(subparsers) -> None:
    plan = subparsers.add_parser(
        "plan", help="jobs, bytes, CPU/GPU-hours per stage and the crawl's makespan bound, before the build starts"
    )
    _add_workflow_arguments(plan, "the build's config files (default: the demo)")
    plan.add_argument("--published", action="store_true", help="volumes from the published counts (SPEC 2.2, 3)")
    plan.add_argument(
        "--url-sample",
        help="real URLs (parquet/csv, a `url` column) whose host shares stand for "
        "the crawl's when the URL filter has not run",
    )
    plan.add_argument("--out", help="folder of plan.md, plan.json, hosts.png (default: RUN_DIR/results/plan)")
    plan.set_defaults(func=_plan)


def _status(args: argparse.Namespace) -> int:
    import json
    import time

    from rs5m.plan.dag import PlannedJob, planned_jobs
    from rs5m.plan.status import build_status, status_text

    run_dir = Path(args.run_dir)
    plan_json = run_dir / "results" / "plan" / "plan.json"
    if plan_json.is_file():
        plan = json.loads(plan_json.read_text())
        jobs = [PlannedJob(j["rule"], tuple(j["outputs"])) for j in plan["jobs"]]
        stages = plan["stages"]
    else:  # no plan written yet: Snakemake's dry run gives the jobs (no lock), the plan's hours are unknown
        jobs = planned_jobs(run_dir, *_workflow_files(args))
        stages = []
    while True:
        status = build_status(run_dir, jobs, stages, window_s=args.window * 60, top=args.top)
        print(json.dumps(status, indent=1, default=str) if args.json else status_text(status), flush=True)
        if not args.watch or status["done"] == status["total"]:
            return 0
        time.sleep(args.watch)


def _add_status_parser(subparsers) -> None:
    status = subparsers.add_parser(
        "status", help="jobs done per rule, download rate, success and drops per source, ETA of a (running) build"
    )
    _add_workflow_arguments(status, "the build's config files, when no plan.json")
    status.add_argument(
        "--watch", type=float, default=0, metavar="SECONDS", help="print again every SECONDS until done"
    )
    status.add_argument("--json", action="store_true", help="one JSON object per report, for scripts")
    status.add_argument(
        "--window", type=float, default=5, metavar="MIN", help="download rate over the last MIN minutes"
    )
    status.add_argument("--top", type=int, default=3, help="drop reasons per source and failing hosts listed")
    status.set_defaults(func=_status)


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
    _add_plan_parser(subparsers)
    _add_status_parser(subparsers)
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
