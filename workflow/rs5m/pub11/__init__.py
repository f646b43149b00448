"""PUB11 stages, in DAG order: keyword_filter, url_filter, download_part (and download_retry),
images_part, image_dedup, train_rs_detector, score_part, outlier_threshold, outlier_qa, pub11_places,
pub11_metacaption. One module per rule, named for it."""
