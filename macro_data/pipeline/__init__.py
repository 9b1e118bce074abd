"""The stages as plain functions (draws, arrays, splits, stats, manifest); no Dagster import here."""
