"""The stages as plain functions (draws, arrays, splits, manifest); no Dagster import here."""
