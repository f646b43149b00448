"""Eval-set decontamination: readers of the benchmark sets, matching by perceptual hash and CLIP
embedding, the drop or report of overlapping samples before assembly."""
