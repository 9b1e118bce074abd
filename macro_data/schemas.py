"""The project's JSON Schemas (``schemas/``): loading and validating a document against one."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from macro_data import paths


def load(name: str) -> dict:
    """The schema ``schemas/<name>.schema.json`` (shipped with the package)."""
    return json.loads(paths.schema_text(name))


def errors(name: str, document: Any) -> list[jsonschema.ValidationError]:
    """Every way ``document`` violates schema ``name`` (Draft 2020-12), ordered by location then message."""
    validator = jsonschema.Draft202012Validator(load(name))
    return sorted(validator.iter_errors(document), key=lambda e: ([str(p) for p in e.absolute_path], e.message))


def location(error: jsonschema.ValidationError) -> str:
    """Where an error is, as ``a/b/0``, or ``(top level)``."""
    return "/".join(map(str, error.absolute_path)) or "(top level)"
