"""Evaluation of CLIP models trained on a build: zero-shot classification and image-text retrieval
(the RS5M paper's table, SPEC 8), the `train_clip` fine-tuning and the results table."""
