import pytest

from rs5m.configured import defaults
from rs5m.pub11.prompts import build_prompts, indefinite_article
from rs5m.pub11.settings import ScoringSettings

PROMPTS = ScoringSettings.from_config(defaults()).prompts  # the configured lists (SPEC 2.5)


def test_33_distinct_prompts_in_spec_pattern():
    prompts = build_prompts(PROMPTS.modifiers, PROMPTS.nouns)
    assert len(prompts) == 33 and len(set(prompts)) == 33
    assert prompts[:3] == ["a remote sensing image.", "an aerial image.", "a satellite image."]
    assert "a low resolution aerial image." in prompts
    assert "a jpeg corrupted satellite image." in prompts
    assert "a black and white remote sensing image." in prompts
    assert prompts[-1] == "a good satellite image."
    # Only the bare "aerial image" starts with a vowel.
    assert [p for p in prompts if p.startswith("an ")] == ["an aerial image."]
    assert all(p.endswith(".") and "  " not in p for p in prompts)


def test_article_follows_first_letter():
    assert indefinite_article("orthophoto") == "an"
    assert indefinite_article("blurry aerial image") == "a"
    assert build_prompts(["", "old"], ["image"]) == ["an image.", "an old image."]


def test_duplicate_prompts_are_a_config_error():
    with pytest.raises(ValueError, match="duplicate"):
        build_prompts(["bad", "bad "], ["aerial image"])
    with pytest.raises(ValueError):
        build_prompts(["bad"], [""])
