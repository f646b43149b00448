"""The Snakemake layer: lint, formatting, dry-run plans and the demo run end to end."""

import csv
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from conftest import REPO, planned_jobs, snakemake

from rs5m.configured import defaults

pytestmark = pytest.mark.workflow


@pytest.mark.parametrize("configfile", ["config.yaml", "rs5m.yaml"])
def test_lint_passes(tmp_path, configfile):
    result = snakemake(tmp_path, "--lint", "--configfile", str(REPO / "config" / configfile))
    assert "Congratulations" in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("keep, absent", [("pub11", "rs3"), ("rs3", "pub11")])
def test_one_subset_alone_plans_the_whole_assembly(tmp_path, keep, absent):
    """A PUB11-only (or RS3-only) build plans its shards, metafiles, stats, card and audit."""
    import yaml

    settings = yaml.safe_load((REPO / "config/config.yaml").read_text())
    if keep == "pub11":
        settings["rs3"]["datasets"] = []
    else:
        settings["sources"] = {}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(settings))
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config))
    jobs = planned_jobs(result.stdout)
    for rule in ("shards", "metafiles", "dataset_stats", "dataset_card", "audit"):
        assert jobs.get(rule) == 1, (rule, jobs)
    assert f"results/shards/{keep}.manifest.json" in result.stdout
    assert f"results/shards/{absent}.manifest.json" not in result.stdout
    assert f"rs5m: assembling without the {absent} subset" in result.stderr
    audit_block = next(b for b in result.stdout.split("\n\n") if "rule audit:" in b)
    assert "mem_mb=" in audit_block  # item 5: the audit declares its memory


def test_snakefmt_check_passes():
    files = [str(REPO / "Snakefile"), *map(str, sorted((REPO / "rules").glob("*.smk")))]
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_dry_run_plans_one_keyword_job_per_chunk(tmp_path):
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2").stdout)
    # laion2b and laion400m have two files each; redcaps groups its two files into one job.
    assert jobs["keyword_filter"] == 13
    assert jobs["demo_metadata"] == 1 and jobs["funnel"] == 1


def test_missing_source_files_are_skipped_with_a_message(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("sources:\n  laion2b:\n    paths: ['nowhere/*.parquet']\n  cc12m:\n    paths: [in.tsv]\n")
    (tmp_path / "in.tsv").write_text("http://a/1\taerial view\n")
    result = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(config))
    assert "source laion2b: no input file matches" in result.stderr
    jobs = planned_jobs(result.stdout)
    assert jobs["keyword_filter"] == 1 and "demo_metadata" not in jobs


def test_two_input_files_of_one_name_in_a_source_are_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "in.tsv").write_text("http://a/1\taerial view\n")
    config = tmp_path / "c.yaml"
    config.write_text("sources:\n  cc12m:\n    paths: ['*/in.tsv']\n")
    result = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(config), check=False)
    assert result.returncode != 0
    assert "source cc12m: input files a/in.tsv and b/in.tsv share the name 'in.tsv'" in result.stdout + result.stderr


def test_missing_cc3m_labels_file_is_skipped_with_a_message(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "sources:\n  cc3m:\n    paths: [in.tsv]\nmetacaption:\n  cc3m_labels: nowhere/labels.tsv\n"
        "rs3:\n  datasets: []\n"
    )
    (tmp_path / "in.tsv").write_text("aerial view\thttp://a/1\n")
    result = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(config), "--", "pub11_metacaption")
    assert "metacaption.cc3m_labels: nowhere/labels.tsv not found" in result.stderr
    assert planned_jobs(result.stdout)["pub11_metacaption"] == 1
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere/labels.tsv").write_text("")
    result = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(config), "--", "pub11_metacaption")
    assert "not found" not in result.stderr and "nowhere/labels.tsv" in result.stdout


def test_demo_end_to_end_keyword_stage(demo_run):
    funnel = {row["source"]: row for row in csv.DictReader(open(demo_run / "results/stats/funnel.csv"))}
    assert len(funnel) == 12  # eleven sources and the total
    for source, row in funnel.items():
        assert int(row["after_keyword_filter"]) > 0, source
    files = list(csv.DictReader(open(demo_run / "results/stats/input_files.csv")))
    unreadable = [f["path"] for f in files if f["status"] != "ok"]
    assert unreadable == ["resources/demo/metadata/laion400m/part-00001.parquet"]
    # Every input row ends kept or dropped with a reason, file by file.
    for account in files:
        dropped = sum(json.loads(account["dropped"]).values())
        assert int(account["rows_in"]) == int(account["kept"]) + dropped
    kept = pq.read_table(demo_run / "results/pub11/metadata/laion2b/00001.parquet")
    assert all(kept.column("matched_keywords").to_pylist())
    reasons = {
        r["reason"] for r in pq.read_table(demo_run / "results/pub11/metadata/laion2b/00001.drops.parquet").to_pylist()
    }
    assert reasons == {"null_url", "bad_url_scheme", "null_caption"}
    cc12m = json.loads((demo_run / "results/pub11/metadata/cc12m/00000.stats.json").read_text())[0]
    assert cc12m["dropped"]["undecodable_row"] == 2 and cc12m["dropped"]["caption_too_long"] == 1


def test_forcerun_one_stage_plans_only_that_stage(demo_run):
    jobs = planned_jobs(
        snakemake(demo_run, "-n", "--cores", "2", "--forcerun", "keyword_filter", "--until", "keyword_filter").stdout
    )
    assert jobs == {"keyword_filter": 13}


def test_nothing_to_do_after_the_demo_and_a_changed_key_reruns_its_stage(demo_run):
    result = snakemake(demo_run, "-n", "--cores", "2")
    assert "Nothing to be done" in result.stdout + result.stderr
    override = demo_run / "override.yaml"
    override.write_text("metadata:\n  max_caption_bytes: 1000\n")
    configs = ["--configfile", str(REPO / "config" / "config.yaml"), str(override)]
    jobs = planned_jobs(snakemake(demo_run, "-n", "--cores", "2", *configs).stdout)
    assert jobs.get("keyword_filter") == 13 and "demo_metadata" not in jobs


def test_a_changed_key_reruns_only_the_rules_that_read_it(demo_run):
    """Snakemake's params trigger on the finished demo: a rule's params hold only the keys its
    settings read (rs5m.settings.section_for), so outliers.qa_levels reruns the QA sheet and not the
    GPU scoring, the threshold or anything after them, while a key score_part reads reruns it."""

    def planned(override_text):
        override = demo_run / "override.yaml"
        override.write_text(override_text)
        configs = ["--configfile", str(REPO / "config" / "config.yaml"), str(override)]
        return planned_jobs(snakemake(demo_run, "-n", "--cores", "2", "--rerun-triggers", "params", *configs).stdout)

    qa = planned("outliers:\n  qa_levels: [100, 50]\n")
    assert qa.get("outlier_qa") == 1 and not {"score_part", "train_rs_detector", "outlier_threshold", "shards"} & set(
        qa
    )
    scoring = planned("outliers:\n  batch_size: 3\n")
    assert scoring.get("score_part", 0) >= 1 and "train_rs_detector" not in scoring
    changed = defaults("decontamination", "confirm", "threshold") + 0.1  # any value but the demo's
    matching = planned(f"decontamination:\n  confirm:\n    threshold: {changed}\n")
    assert "decontaminate_pub11" in matching
    assert not {"decontamination_eval", "decontamination_rs3_features"} & set(matching)


def test_demo_every_row_has_one_terminal_state_and_the_shards_pass_the_audit(demo_run):
    funnel = json.loads((demo_run / "results/stats/funnel.json").read_text())
    assert funnel["consistent"] and funnel["problems"] == []
    total = next(r for r in funnel["rows"] if r["source"] == "total")
    removed = total["invalid"] + total["duplicates"] + total["outliers"] + total["eval_overlap"]
    assert total["downloaded"] - removed == total["remain"] > 0
    assert total["url_duplicates"] >= 1 and total["duplicates"] >= 1 and total["outliers"] >= 1
    assert total["eval_overlap"] >= 1  # the demo's planted eval-set copies
    audit = json.loads((demo_run / "results/stats/audit.json").read_text())
    assert audit["ok"] and audit["checked"]["shard_samples"] == audit["checked"]["kept"] > 0
    assert sorted(p.name for p in (demo_run / "results/shards/train").glob("*.tar"))[0] == "pub11-train-0000.tar"
    assert list((demo_run / "results/shards/val").glob("rs3-val-*.tar"))


def test_demo_bad_downloads_and_unsafe_urls_end_with_named_reasons(demo_run):
    from rs5m.demo.demo_metadata import BAD_PATHS, DEMO_HOST, UNSAFE_URLS

    drops = {}
    for path in (demo_run / "results").rglob("*.drops.parquet"):
        for row in pq.read_table(path).to_pylist():
            drops.setdefault(row["uid"], []).append((row["stage"], row["reason"]))
    kept = set(pq.read_table(demo_run / "results/pub11/final.parquet").column("uid").to_pylist())
    # The laion2b rows of each URL: kept by the keyword stage, or dropped there (detail: the URL).
    uids_of = {}
    keyword = demo_run / "results/pub11/metadata/laion2b"
    for path in keyword.glob("*.parquet"):
        table = pq.read_table(path)
        if path.name.endswith(".drops.parquet"):
            pairs = zip(table.column("uid").to_pylist(), table.column("detail").to_pylist())
        else:
            pairs = zip(table.column("uid").to_pylist(), table.column("url").to_pylist())
        for uid, url in pairs:
            uids_of.setdefault(url, set()).add(uid)
    blocked = set()
    for url in [DEMO_HOST + p for p in BAD_PATHS] + UNSAFE_URLS:
        assert uids_of.get(url), url
        for uid in uids_of[url]:
            states = drops.get(uid, []) + ([("kept", "")] if uid in kept else [])
            assert len(states) == 1, (url, states)
        if url == "http://169.254.169.254/latest/meta-data/aerial-view.jpg":
            blocked = {state for uid in uids_of[url] for state in drops[uid]}
    reasons = {reason for rows in drops.values() for _, reason in rows}
    assert {"blocked_url", "bad_url_scheme", "download_failed"} <= reasons
    assert any(r.startswith("invalid_") for r in reasons)
    assert blocked == {("url_filter", "blocked_url")}


def test_demo_pub11_meta_captions_reach_metafiles_and_shards(demo_run):
    from rs5m.tar import iter_shard_samples

    rows = []
    for name in ("pub11_train_metadata.csv", "pub11_validation_metadata.csv"):
        with open(demo_run / "results/metafiles" / name, encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    by_source = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    assert all(r["meta_caption"] for s in ("yfcc15m", "redcaps") for r in by_source[s])
    assert all(not r["meta_caption"] for s in ("laion2b", "coyo700m", "sbu") for r in by_source[s])
    # the demo's geotag-less YFCC photos keep their date clause and lose the place
    assert {bool(r["geo_country"]) for r in by_source["yfcc15m"]} == {True, False}
    # the labels file cycles the three cases of the SPEC 4 rule (3 of 4 confident, 2, none: argmax)
    assert {r["labels"] for r in by_source["cc3m"]} == {"aerial photography|landscape|field", "landscape|sky", "field"}
    # pub11_caption: keep (the default) - the shard caption is the web text; the meta-caption is in the json
    meta = {r["uid"]: r["meta_caption"] for r in rows if r["meta_caption"]}
    found = 0
    for tar in sorted((demo_run / "results/shards").glob("*/pub11-*.tar")):
        for key, members in iter_shard_samples(tar):
            if key in meta:
                info = json.loads(members["json"])
                assert info["meta_caption"] == meta[key] and not members["caption"].decode().startswith(meta[key])
                found += 1
    assert found == len(meta) > 20
