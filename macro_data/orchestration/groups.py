"""Asset group names, in one place."""

WORLDS = "worlds"  # per-world stages: draws, arrays, splits, train-split statistics
DATASET = "dataset"  # all-worlds stages: manifest, validation report
