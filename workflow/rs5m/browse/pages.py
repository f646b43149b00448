"""Browse: the HTML pages, plain functions from query results to markup.

Reads nothing itself; every value placed in a page goes through `esc` (or `urlencode`).
"""

from __future__ import annotations

import csv
import json
from html import escape
from pathlib import Path
from urllib.parse import quote, urlencode

from rs5m.browse.index import SCORE_FIELDS
from rs5m.browse.ratings import SCORES


def esc(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def read_csv_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        return list(csv.reader(handle))


def json_pretty(text: str | None) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return text or ""


NAV = (("/", "Overview"), ("/samples", "Samples"), ("/dropped", "Dropped"), ("/rate", "Rate"), ("/summary", "Summary"))


def layout(title: str, body: str, run_dir: Path) -> str:
    nav = "".join(f'<a href="{href}">{esc(label)}</a>' for href, label in NAV)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{esc(title)} · rs5m browse</title><link rel="stylesheet" href="/assets/app.css">'
        '<script src="/assets/app.js" defer></script></head><body>'
        f'<header><strong>rs5m browse</strong><nav>{nav}</nav><span class="run">{esc(run_dir)}</span></header>'
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )


def error_page(status: int, message: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error</title>'
        '<link rel="stylesheet" href="/assets/app.css"></head><body><main>'
        f'<h1>{status}</h1><p class="error">{esc(message)}</p><p><a href="/">Back to the overview</a></p>'
        "</main></body></html>"
    )


def table(header: list[str], rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def pager(total: int, page: int, per: int, path: str, query: dict) -> str:
    pages = max(1, -(-total // per))
    links = []
    if page > 1:
        links.append(f'<a rel="prev" href="{path}?{esc(urlencode({**query, "page": page - 1}))}">← previous</a>')
    links.append(f"<span>page {page} of {pages} · {total} in all</span>")
    if page < pages:
        links.append(f'<a rel="next" href="{path}?{esc(urlencode({**query, "page": page + 1}))}">next →</a>')
    return f'<div class="pager">{" ".join(links)}</div>'


def overview(facets: dict, drop_counts: list, funnel_rows: list, figures: list, stat_files: list, refresh) -> str:
    parts = ["<section><h2>Samples in the shards</h2>"]
    if facets["table"]:
        rows = [
            [
                esc(split),
                esc(subset),
                f'<a href="/samples?{esc(urlencode({"split": split, "source": source}))}">{esc(source)}</a>',
                n,
            ]
            for split, subset, source, n in facets["table"]
        ]
        parts.append(table(["split", "subset", "source", "samples"], rows))
    else:
        parts.append("<p>No shards found under <code>results/shards/</code>.</p>")
    parts.append("</section><section><h2>Dropped samples</h2>")
    if drop_counts:
        rows = [
            [
                esc(stage),
                f'<a href="/dropped?{esc(urlencode({"stage": stage or "", "reason": reason or ""}))}">{esc(reason)}</a>',
                n,
                with_image,
            ]
            for stage, reason, n, with_image in drop_counts
        ]
        parts.append(table(["stage", "reason", "recorded", "with image"], rows))
    else:
        parts.append("<p>No drop records found.</p>")
    parts.append("</section>")
    if funnel_rows:
        parts.append("<section><h2>Funnel</h2>")
        parts.append(table(funnel_rows[0], [[esc(c) for c in row] for row in funnel_rows[1:]], "funnel"))
        parts.append("</section>")
    if figures:
        parts.append('<section><h2>Figures</h2><div class="figures">')
        parts.extend(f'<img src="/files/{esc(quote(rel))}" alt="{esc(Path(rel).name)}">' for rel in figures)
        parts.append("</div></section>")
    if stat_files:
        links = " · ".join(f'<a href="/files/{esc(quote(rel))}">{esc(Path(rel).name)}</a>' for rel in stat_files)
        parts.append(f"<section><h2>Statistics files</h2><p>{links}</p></section>")
    parts.append(
        f'<p class="note">Index: {len(refresh.indexed)} files read now, {refresh.unchanged} unchanged, '
        f"{len(refresh.removed)} gone.</p>"
    )
    return "".join(parts)


def select(name: str, options: list, current: str | None, label: str) -> str:
    opts = [f'<option value="">any {esc(label)}</option>']
    for value, count in options:
        chosen = " selected" if value is not None and str(value) == (current or "") else ""
        opts.append(f'<option value="{esc(value)}"{chosen}>{esc(value)} ({count})</option>')
    return f'<label>{esc(label)} <select name="{name}">{"".join(opts)}</select></label>'


def scores_line(sample: dict) -> str:
    return f"clip {fmt(sample.get('clip_score'))} · rs {fmt(sample.get('rs_score'))}"


def sample_image(sample: dict, attributes: str, missing: str) -> str:
    """The sample's image tag (with `attributes`), or `missing` when its shard has no image member."""
    if sample.get("img_offset") is None:
        return missing
    return f'<img {attributes} src="/image/{esc(sample["uid"])}" alt="{esc(sample["img_name"])}">'


def sample_card(sample: dict) -> str:
    uid = esc(sample["uid"])
    image = sample_image(sample, 'loading="lazy"', '<div class="noimg">no image</div>')
    return (
        f'<article class="card" data-uid="{uid}"><a href="/sample/{uid}">{image}</a>'
        f'<p class="caption">{esc(sample["caption"])}</p>'
        f'<p class="meta"><span class="badge">{esc(sample["split"])}</span> <span class="badge">{esc(sample["subset"])}</span> '
        f"{esc(sample['source'])} · {scores_line(sample)}</p></article>"
    )


def sample_list(facets: dict, args: dict, rows: list, total: int, page: int, per: int, query: dict) -> str:
    score_options = "".join(
        f'<option value="{f}"{" selected" if args.get("score", "clip_score") == f else ""}>{f}</option>'
        for f in SCORE_FIELDS
    )
    form = (
        '<form class="filters" method="get" action="/samples">'
        + select("split", facets["split"], args.get("split"), "split")
        + select("subset", facets["subset"], args.get("subset"), "subset")
        + select("source", facets["source"], args.get("source"), "source")
        + select("keyword", facets["keyword"], args.get("keyword"), "keyword")
        + f'<label>caption contains <input name="q" value="{esc(args.get("q"))}"></label>'
        + f'<label>score <select name="score">{score_options}</select></label>'
        + f'<label>from <input name="min" size="5" value="{esc(args.get("min"))}"></label>'
        + f'<label>to <input name="max" size="5" value="{esc(args.get("max"))}"></label>'
        + '<button type="submit">Filter</button></form>'
    )
    cards = "".join(sample_card(row) for row in rows) or "<p>No sample matches.</p>"
    return (
        form
        + pager(total, page, per, "/samples", query)
        + f'<div class="grid">{cards}</div>'
        + pager(total, page, per, "/samples", query)
    )


def sample_detail(sample: dict) -> str:
    uid = esc(sample["uid"])
    image = sample_image(sample, 'class="full"', "<p>No image member.</p>")
    keywords = (
        ", ".join(f'<a href="/samples?{esc(urlencode({"keyword": k}))}">{esc(k)}</a>' for k in sample["keywords"])
        or "–"
    )
    facts = [
        ["uid", uid],
        ["image name", esc(sample["img_name"])],
        ["split", esc(sample["split"])],
        ["subset", esc(sample["subset"])],
        ["source", esc(sample["source"])],
        ["clip_score", fmt(sample.get("clip_score"))],
        ["rs_score", fmt(sample.get("rs_score"))],
        ["matched keywords", keywords],
        ["shard", f"{esc(sample['tar'])} · key {esc(sample['key'])}"],
    ]
    rows = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in facts)
    return (
        f'<div class="detail"><div>{image}</div><div><p class="caption big">{esc(sample["caption"])}</p>'
        f'<table class="facts">{rows}</table><h2>Provenance</h2><pre class="json">{esc(json_pretty(sample["provenance"]))}</pre>'
        "</div></div>"
    )


def dropped(drop_counts, ledger, ledger_errors, args, with_image, rows, total, page, per, query) -> str:
    parts = ["<section><h2>Drops by stage and reason</h2>"]
    count_rows = [
        [
            esc(stage),
            f'<a href="/dropped?{esc(urlencode({"stage": stage or "", "reason": reason or ""}))}">{esc(reason)}</a>',
            n,
            with_img,
        ]
        for stage, reason, n, with_img in drop_counts
    ]
    parts.append(
        table(["stage", "reason", "recorded rows", "with image"], count_rows)
        if count_rows
        else "<p>No drop records found.</p>"
    )
    parts.append("</section>")
    if ledger or ledger_errors:
        rows_ledger = [
            [
                esc(entry.stage),
                esc(entry.source),
                entry.rows_in,
                entry.kept,
                esc(", ".join(f"{k}: {v}" for k, v in sorted(entry.dropped.items()))),
            ]
            for _, entry in ledger
        ]
        parts.append("<section><details><summary>Ledger (every stats file)</summary>")
        parts.append(table(["stage", "source", "rows in", "kept", "dropped"], rows_ledger))
        parts.extend(f'<p class="error">{esc(e)}</p>' for e in ledger_errors)
        parts.append("</details></section>")
    checked = " checked" if with_image else ""
    parts.append(
        '<form class="filters" method="get" action="/dropped">'
        f'<label>stage <input name="stage" value="{esc(args["stage"])}"></label>'
        f'<label>reason <input name="reason" value="{esc(args["reason"])}"></label>'
        f'<label>source <input name="source" value="{esc(args["source"])}"></label>'
        f'<label><input type="checkbox" name="with_image" value="1"{checked}> with image only</label>'
        '<button type="submit">Filter</button></form>'
    )
    parts.append(pager(total, page, per, "/dropped", query))
    cards = []
    for row in rows:
        uid = esc(row["uid"])
        image = (
            f'<img loading="lazy" src="/download-image/{uid}" alt="{uid}">'
            if row["has_image"]
            else '<div class="noimg">image not downloaded</div>'
        )
        cards.append(
            f'<article class="card drop" data-uid="{uid}">{image}<p class="meta"><span class="badge">{esc(row["stage"])}</span> '
            f'<strong class="reason">{esc(row["reason"])}</strong></p><p class="detail-text">{esc(row["detail"])}</p>'
            f'<p class="meta">{esc(row["source"])} · {uid}</p></article>'
        )
    parts.append(f'<div class="grid">{"".join(cards) or "<p>No drop matches.</p>"}</div>')
    return "".join(parts)


def rate_start(sessions: list, csrf: str, error: str) -> str:
    message = f'<p class="error">{esc(error)}</p>' if error else ""
    form = (
        f'{message}<form class="start" method="post" action="/rate"><input type="hidden" name="csrf_token" value="{esc(csrf)}">'
        '<label>Rater name <input name="rater" required maxlength="100" autofocus></label>'
        '<label>Seed <input name="seed" value="rs5m" maxlength="100"></label>'
        '<label>Samples <input name="size" value="500" size="6"></label>'
        '<button type="submit">Start or resume</button></form>'
        '<p class="note">Samples are drawn from the validation split in an order fixed by the seed: the same seed '
        "gives every rater the same images in the same order. Starting again with the same name, seed and size "
        "resumes that session.</p>"
    )
    rows = [
        [
            s["id"],
            esc(s["rater"]),
            esc(s["seed"]),
            f"{s['rated']} / {s['items']}",
            esc(s["created_at"]),
            f'<a href="/rate/{s["id"]}">resume</a> · <a href="/export.csv?session={s["id"]}">CSV</a> · '
            f'<a href="/summary?session={s["id"]}">summary</a>',
        ]
        for s in sessions
    ]
    listing = table(["session", "rater", "seed", "rated", "started", ""], rows, "sessions") if rows else ""
    return form + (f"<h2>Sessions</h2>{listing}" if listing else "")


def rate_page(session, item: dict, sample: dict | None, rated: int, total: int, csrf: str) -> str:
    pos = item["pos"]
    head = (
        f'<p class="progress">Rater <strong>{esc(session.rater)}</strong> · seed {esc(session.seed)} · '
        f'sample {pos + 1} of {total} · <span id="rated-count">{rated}</span> rated</p>'
    )
    nav = []
    if pos > 0:
        nav.append(f'<a id="prev" href="/rate/{session.id}?pos={pos - 1}">← previous (←)</a>')
    if pos + 1 < total:
        nav.append(f'<a id="next" href="/rate/{session.id}?pos={pos + 1}">next (→)</a>')
    nav.append(f'<a href="/export.csv?session={session.id}">export CSV</a>')
    if sample is None:
        return (
            head + '<p class="error">This sample is no longer in the index (the shards changed).</p>' + " · ".join(nav)
        )
    groups = []
    for index, (name, label, five) in enumerate(SCORES):
        current = item.get(name)
        radios = "".join(
            f'<label class="score"><input type="radio" name="{name}" value="{v}"{" checked" if current == v else ""}>{v}</label>'
            for v in range(1, 6)
        )
        groups.append(
            f'<fieldset class="score-group" data-field="{name}" data-index="{index}"><legend>{esc(label)} '
            f'<span class="key">{esc(label[0].lower())}</span></legend>{radios}'
            f'<p class="hint">5: {esc(five)}</p></fieldset>'
        )
    image = (
        f'<img class="full" src="/image/{esc(sample["uid"])}" alt="{esc(sample["img_name"])}">'
        if sample.get("img_offset") is not None
        else "<p>No image member.</p>"
    )
    return (
        head
        + f'<div class="detail"><div>{image}<p class="meta">{esc(sample["img_name"])} · {esc(sample["source"])}</p></div><div>'
        f'<p class="caption big" id="caption">{esc(sample["caption"])}</p>'
        f'<form id="rate-form" method="post" action="/rate/{session.id}">'
        f'<input type="hidden" name="csrf_token" value="{esc(csrf)}"><input type="hidden" name="uid" value="{esc(sample["uid"])}">'
        + "".join(groups)
        + '<button type="submit">Save (Enter)</button> <span id="rate-message" class="error"></span></form>'
        f'<p class="nav">{" · ".join(nav)}</p>'
        '<p class="note">Keys: <kbd>1</kbd>–<kbd>5</kbd> score the highlighted question and move to the next; '
        "<kbd>r</kbd> <kbd>h</kbd> <kbd>f</kbd> pick a question; <kbd>Backspace</kbd> clears it; "
        "<kbd>Enter</kbd> saves and shows the next unrated sample; <kbd>←</kbd> <kbd>→</kbd> move without saving.</p>"
        "</div></div>"
    )


def rate_done(session, rated: int, total: int) -> str:
    return (
        f"<p>Session {session.id} of <strong>{esc(session.rater)}</strong> is complete: {rated} of {total} rated.</p>"
        f'<p><a href="/export.csv?session={session.id}">Export CSV</a> · <a href="/summary?session={session.id}">Summary</a> · '
        f'<a href="/rate/{session.id}?pos=0">review from the start</a></p>'
    )


def summary(summary_rows: dict, sessions: list, scope: str) -> str:
    score_heads = [label for _, label, _ in SCORES]
    names = [name for name, _, _ in SCORES]

    def rows_for(level: str, keys: list[str]) -> list[list]:
        return [
            [*(esc(row[k]) for k in keys), row["n"], *(fmt(row[n], 2) for n in names)] for row in summary_rows[level]
        ]

    if not summary_rows["overall"]:
        body = "<p>No ratings yet.</p>"
    else:
        body = (
            "<h2>All ratings</h2>"
            + table(["ratings", *score_heads], rows_for("overall", []), "summary-overall")
            + "<h2>Per subset</h2>"
            + table(["subset", "ratings", *score_heads], rows_for("subset", ["subset"]), "summary-subset")
            + "<h2>Per source</h2>"
            + table(
                ["subset", "source", "ratings", *score_heads],
                rows_for("source", ["subset", "source"]),
                "summary-source",
            )
            + "<h2>Per rater</h2>"
            + table(["rater", "ratings", *score_heads], rows_for("rater", ["rater"]), "summary-rater")
        )
    export = f'<p><a href="/export.csv{"?" + esc(scope) if scope else ""}">Export these ratings as CSV</a></p>'
    scopes = " · ".join(
        ['<a href="/summary">all</a>']
        + [f'<a href="/summary?session={s["id"]}">session {s["id"]} ({esc(s["rater"])})</a>' for s in sessions]
    )
    return (
        f'<p class="note">Scope: {scopes}</p>'
        + body
        + export
        + ('<p class="note">The RS5M paper reports means of 4.53 / 4.73 / 4.94 over 1,805 ratings.</p>')
    )
