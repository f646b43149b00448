"""The build plan as text and picture: the markdown `rs5m plan` prints and writes, the host histogram plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def _human(n: float | None, unit: str = "") -> str:
    if n is None:
        return "-"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {suffix}{unit}"
    return f"{n:.0f} {unit}".strip()


def _hours(h: float | None) -> str:
    if h is None:
        return "-"
    return f"{h:.3f}" if h < 10 else f"{h:,.0f}"


def plan_markdown(plan: dict[str, Any]) -> str:
    lines = ["# Build plan", ""]
    lines.append(f"Config: {', '.join(plan['configfiles']) or 'the embedded demo'}; run folder `{plan['run_dir']}`.")
    lines.append(f"Volumes from: {plan['volumes_from']}.")
    lines += ["", "| volume | items | from |", "|---|---:|---|"]
    for name, value in plan["volumes"].items():
        lines.append(f"| {name} | {value:,} | {plan['volume_origin'].get(name, '-')} |")
    lines += ["", "## Stages (rules in DAG order)", ""]
    lines.append("| rule | jobs | items | of | input | output | CPU-h | GPU-h | rate (machine) |")
    lines.append("|---|---:|---:|---|---:|---:|---:|---:|---|")
    for row in plan["stages"]:
        machine = "" if row["machine"] is None else f" ({row['machine']}{'' if row['measured'] else ', assumed'})"
        lines.append(
            f"| {row['rule']} | {row['jobs']} | {_human(row['items'])} | {row['item'] or '-'} | "
            f"{_human(row['bytes_in'], 'B')} | {_human(row['bytes_out'], 'B')} | {_hours(row['cpu_hours'])} | "
            f"{_hours(row['gpu_hours'])} | {'-' if row['rate'] is None else 'rates.yaml' + machine} |"
        )
    totals = plan["totals"]
    lines.append(
        f"| **total** | {totals['jobs']} | | | | | {_hours(totals['cpu_hours'])} | {_hours(totals['gpu_hours'])} | |"
    )
    c = plan["crawl"]
    lines += ["", "## Crawl", ""]
    lines.append(
        f"{c['urls']:,} URLs on {c['hosts']:,} hosts; parts {c['parts']}, parts_per_host {c['parts_per_host']}, "
        f"per_host_rate {c['per_host_rate']:g} req/s, per_host_burst {c['per_host_burst']:g} ({c['split']})."
    )
    adaptive = c.get("adaptive")
    if adaptive is None:
        lines.append(
            f"Makespan bound: **{c['makespan_bound_s'] / 3600:.2f} h** ({c['makespan_bound_s']:,.1f} s): no schedule "
            "sends the last request of the hosts below earlier, however many machines run the parts "
            "(a host's URLs lie in at most min(parts_per_host, parts) parts, each pacing it at "
            "per_host_rate / that many)."
        )
    else:
        lines += _adaptive_lines(adaptive)
    lines += ["", "| host | URLs | parts | URLs in fullest part | bound (h) |", "|---|---:|---:|---:|---:|"]
    for b in c["top_hosts"]:
        lines.append(
            f"| {b['host'] or '(none)'} | {b['urls']:,} | {b['parts']} | {b['max_part_urls']:,} | {b['seconds'] / 3600:.2f} |"
        )
    lines += ["", "Effect of the settings (each changed alone):", "", "| setting | bound (h) |", "|---|---:|"]
    for s in c["settings"]:
        lines.append(f"| {s['setting']} | {s['bound_s'] / 3600:.2f} |")
    lines += ["", "## Rates assumed", ""]
    for rule, rate in plan["rates"]["rules"].items():
        gpu = f", {rate['gpu_per_s']:g}/s per GPU" if rate.get("gpu_per_s") else ""
        kind = "measured" if rate["measured"] else "ASSUMED"
        lines.append(
            f"- `{rule}`: {rate['cpu_per_s']:g} {rate['items']}/s per core{gpu}, {rate['job_s']:g} s a job; {kind} on {rate['machine']}: {rate['source']}"
        )
    for key, text in plan["rates"]["machines"].items():
        lines.append(f"- machine `{key}`: {text}")
    return "\n".join(lines) + "\n"


def _adaptive_lines(adaptive: dict[str, Any]) -> list[str]:
    """The bounds under adaptive politeness: each host's pace lies in [min_rate, per_host_rate_max]."""
    best, worst = adaptive["best_case"], adaptive["worst_case"]

    def hosts(case: dict[str, Any]) -> str:
        return ", ".join(f"{b['host'] or '(none)'} ({b['urls']:,} URLs)" for b in case["setting_hosts"]) or "none"

    return [
        f"Adaptive politeness: a host's pace lies between min_rate {adaptive['min_rate']:g} and "
        f"per_host_rate_max {adaptive['per_host_rate_max']:g} req/s, split over min(parts_per_host, parts) parts.",
        f"Makespan bound, best case (every host at per_host_rate_max): **{best['makespan_bound_s'] / 3600:.2f} h** "
        f"({best['makespan_bound_s']:,.1f} s), set by {hosts(best)}; no schedule finishes earlier.",
        f"Worst case (every host slowed to min_rate, no bursts): **{worst['makespan_bound_s'] / 3600:.2f} h** "
        f"({worst['makespan_bound_s']:,.1f} s), set by {hosts(worst)} (robots.txt may slow a host further).",
    ]


def plot_hosts(histogram: Sequence[tuple[int, int]], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    if histogram:
        ax.loglog([h[0] for h in histogram], [h[1] for h in histogram], "o", markersize=3)
    ax.set_xlabel("URLs of a host (after the URL filter)")
    ax.set_ylabel("hosts")
    ax.set_title("Host histogram")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
