"""Browser test for `rs5m browse`: rate three samples with the keyboard in headless Chromium, reload,
see them saved, and export the CSV."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browse_run import make_run  # noqa: E402
from browser_support import chromium, serving  # noqa: E402

SCORE_KEYS = [("5", "4", "3"), ("2", "5", "1"), ("4", "4", "5")]


@pytest.fixture()
def run_dir(tmp_path):
    expected = make_run(tmp_path)
    return tmp_path, expected


def checked(page, name):
    return (
        page.eval_on_selector(f'input[name="{name}"]:checked', "e => e.value")
        if page.query_selector(f'input[name="{name}"]:checked')
        else None
    )


def test_rate_three_with_keyboard_reload_and_export(run_dir):
    root, expected = run_dir
    by_uid = {s["uid"]: s for s in expected["val"]}
    with serving(root) as (app, base), chromium() as page:
        page.goto(f"{base}/rate")
        page.fill('input[name="rater"]', "tester")
        with page.expect_navigation():
            page.press('input[name="rater"]', "Enter")
        assert page.url == f"{base}/rate/1"
        order = [item["uid"] for item in app.ratings.items(1)]

        # Enter with a question unanswered keeps the page and says what is missing.
        page.keyboard.press("3")
        page.keyboard.press("Enter")
        assert "Still to score: Hallucination, Fluency" in page.inner_text("#rate-message")
        assert page.url == f"{base}/rate/1"
        page.keyboard.press("Backspace")  # the active question is Hallucination, still empty: step back
        page.keyboard.press("Backspace")  # clears Relevance
        assert checked(page, "relevance_detail") is None

        for n, keys in enumerate(SCORE_KEYS):
            assert page.input_value('input[name="uid"]') == order[n]
            assert page.inner_text("#caption") == by_uid[order[n]]["caption"]
            for key in keys:
                page.keyboard.press(key)
            assert [checked(page, f) for f in ("relevance_detail", "hallucination", "fluency")] == list(keys)
            with page.expect_navigation():
                page.keyboard.press("Enter")

        page.reload()
        assert page.inner_text("#rated-count") == "3"
        assert page.input_value('input[name="uid"]') == order[3]
        assert "sample 4 of" in page.inner_text(".progress")
        # Step back with the arrow key: the third sample shows its saved scores.
        with page.expect_navigation():
            page.keyboard.press("ArrowLeft")
        assert page.input_value('input[name="uid"]') == order[2]
        assert [checked(page, f) for f in ("relevance_detail", "hallucination", "fluency")] == list(SCORE_KEYS[2])

        with page.expect_download() as download_info:
            page.click("text=export CSV")
        download = download_info.value
        assert download.suggested_filename == "ratings_session1.csv"
        text = Path(download.path()).read_text(encoding="utf-8")

        page.goto(f"{base}/summary")
        overall = page.inner_text("table.summary-overall tbody tr")
        assert overall.split("\t")[0] == "3"

    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["image_path", "description", "relevance_detail", "hallucination", "fluency"]
    assert rows[1:] == [
        [f"static/{by_uid[uid]['img_name']}", by_uid[uid]["caption"], *keys] for uid, keys in zip(order, SCORE_KEYS)
    ]


def test_browse_pages_show_images(run_dir):
    root, expected = run_dir
    with serving(root) as (_, base), chromium() as page:
        page.goto(f"{base}/samples?split=val")
        cards = page.query_selector_all("article.card")
        assert len(cards) == len(expected["val"])
        # Every thumbnail decoded: the bytes came out of the tar at the indexed offset.
        page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        widths = page.eval_on_selector_all("article.card img", "imgs => imgs.map(i => i.naturalWidth)")
        assert widths == [96] * len(expected["val"])
        page.goto(f"{base}/dropped?with_image=1")
        page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        widths = page.eval_on_selector_all("article.card img", "imgs => imgs.map(i => i.naturalWidth)")
        assert widths == [96, 96]
