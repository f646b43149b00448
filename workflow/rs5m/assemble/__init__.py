"""Assembly stages: funnel, shards (with split), metafiles, dataset_stats, dataset_card, audit.
One module per rule, named for it."""
