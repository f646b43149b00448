"""The reason registry (rs5m.reasons) holds every reason the stage modules name, under their stage."""

import pytest

from rs5m.reasons import REGISTRY, count_only_of, reasons_of, register


def test_every_stage_module_reason_is_registered_under_its_stage():
    from rs5m.decontamination import matching
    from rs5m.pub11 import (
        crawl_guard,
        image_dedup,
        images_part,
        keyword_filter,
        outlier_threshold,
        sources,
        url_filter,
        urls,
    )
    from rs5m.rs3 import readers, rs3_caption

    named = {
        keyword_filter.STAGE: {sources.FILTER_REASON, sources.INDEX_REASON, *keyword_filter.COUNT_ONLY_REASONS},
        url_filter.STAGE: {urls.REASON_BAD_SCHEME, urls.REASON_BAD_URL, urls.REASON_BLOCKED},
        "download": set(crawl_guard.REASONS),
        images_part.STAGE: {
            images_part.INVALID_EMPTY,
            images_part.INVALID_DECODE,
            images_part.INVALID_TOO_MANY_PIXELS,
            images_part.INVALID_TOO_SMALL,
        },
        image_dedup.STAGE: {image_dedup.REASON},
        outlier_threshold.STAGE: {
            outlier_threshold.LOW_CLIP,
            outlier_threshold.LOW_RS,
            outlier_threshold.LOW_BOTH,
            outlier_threshold.UNDECODABLE,
        },
        matching.STAGE: {matching.REASON},
        readers.STAGE: {"missing_image", "unreadable_image"},
        rs3_caption.STAGE: {"unreadable_image", "empty_caption"},
    }
    for stage, reasons in named.items():
        assert reasons <= set(reasons_of(stage)), (stage, reasons - set(reasons_of(stage)))
    assert url_filter.REASON_DUPLICATE in reasons_of(url_filter.STAGE)
    assert url_filter.REASON_POOL_HASH in reasons_of(url_filter.STAGE)
    assert set(keyword_filter.COUNT_ONLY_REASONS) == set(count_only_of(keyword_filter.STAGE))
    assert set(named) == set(REGISTRY)


def test_a_stage_registered_again_must_agree():
    assert register("image_dedup", ("duplicate_image",)) == REGISTRY["image_dedup"]
    with pytest.raises(ValueError, match="registered twice"):
        register("image_dedup", ("duplicate_image", "another"))
    with pytest.raises(ValueError, match="count-only"):
        register("a_new_stage", ("x",), count_only=("y",))
    assert "a_new_stage" not in REGISTRY
