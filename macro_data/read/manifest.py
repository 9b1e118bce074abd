"""Where a dataset is (a local folder or an object-storage prefix) and its manifest, read and checked.

The reader needs only the manifest and the stores: nothing here imports the pipeline, the worlds'
simulation code or the storage writers. The manifest is validated against
``schemas/manifest.schema.json`` (shipped with the package) and, on request, against the recipe it
embeds (:func:`recipe_problems`): the recipe's hash, T, H, the worlds and their sample counts, and
the priors (each drawn parameter's bounds from the manifest, narrowed by the recipe's overrides).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import zarr

from macro_data import schemas
from macro_data.errors import ManifestError
from macro_data.hashing import canonical_json
from macro_data.read.errors import DatasetNotFoundError
from macro_data.storage import locations

MANIFEST_NAME = "manifest.json"


class Folder:
    """A local folder or an object-storage prefix (``s3://bucket/prefix``), for reading only.

    ``path`` is a :class:`pathlib.Path` for a local folder and the URL otherwise. Object storage goes
    through fsspec with the package's storage options (``MACRO_DATA_S3_ENDPOINT``, credentials from
    the usual environment).

    Parameters
    ----------
    location : str or os.PathLike
        A local path or an ``s3://`` URL.
    """

    def __init__(self, location: str | os.PathLike, _fs=None, _fs_path: str | None = None):
        self.location = str(location)
        self.remote = locations.is_remote(self.location)
        if self.remote:
            if _fs is None:
                _fs, _fs_path = locations.filesystem(self.location)
            self._fs, self._fs_path = _fs, _fs_path.rstrip("/")
            self.path: Path | str = self.location.rstrip("/")
        else:
            self._fs, self._fs_path = None, None
            self.path = Path(self.location)

    def join(self, *parts: str) -> Folder:
        """The location ``parts`` below this one.

        Parameters
        ----------
        *parts : str
            Path components.

        Returns
        -------
        Folder
        """
        if not self.remote:
            return Folder(self.path.joinpath(*parts))
        sub = "/".join(p.strip("/") for p in parts if p)
        return Folder(f"{self.path}/{sub}", self._fs, f"{self._fs_path}/{sub}")

    @property
    def parent(self) -> Folder:
        if not self.remote:
            return Folder(self.path.parent)
        return Folder(str(self.path).rsplit("/", 1)[0], self._fs, self._fs_path.rsplit("/", 1)[0])

    @property
    def name(self) -> str:
        return self.path.name if not self.remote else str(self.path).rsplit("/", 1)[-1]

    def read_bytes(self) -> bytes:
        """The file's bytes; ``FileNotFoundError`` if there is no such file.

        Returns
        -------
        bytes
        """
        if not self.remote:
            return self.path.read_bytes()
        return self._fs.cat_file(self._fs_path)

    def is_file(self) -> bool:
        """Is there a file here?

        Returns
        -------
        bool
        """
        if not self.remote:
            return self.path.is_file()
        return self._fs.isfile(self._fs_path)

    def is_dir(self) -> bool:
        """Is there a folder (or, on object storage, a prefix) here?

        Returns
        -------
        bool
        """
        if not self.remote:
            return self.path.is_dir()
        return self._fs.isdir(self._fs_path)

    def has_stores(self) -> bool:
        """Does the folder hold world stores (``*.zarr``) or world prefixes?

        Returns
        -------
        bool
        """
        if not self.remote:
            return any(self.path.glob("*.zarr"))
        return bool(self._fs.glob(f"{self._fs_path}/*/world_*"))

    def open_array(self) -> zarr.Array:
        """The Zarr array stored here, opened read-only.

        Returns
        -------
        zarr.Array
        """
        if not self.remote:
            return zarr.open_array(str(self.path), mode="r")
        return zarr.open_array(self.location, mode="r", storage_options=locations.storage_options(self.location))

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Folder({str(self.path)!r})"


def resolve_manifest(path: str | os.PathLike) -> Folder:
    """The ``manifest.json`` of a dataset folder (or the file itself), local or on object storage.

    Parameters
    ----------
    path : str or os.PathLike
        A dataset folder ``<root>/<name>/<version>/``, its ``manifest.json``, or an ``s3://`` URL of either.

    Returns
    -------
    Folder
        The manifest file. :class:`~macro_data.read.errors.DatasetNotFoundError` if there is none (the
        message says whether world stores are there without a manifest).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise DatasetNotFoundError(
            f"path must be a dataset folder or its {MANIFEST_NAME} (str, path or s3:// URL); got {path!r}"
        )
    text = os.fspath(path)
    if isinstance(text, bytes):
        raise DatasetNotFoundError(f"path must be a str, a path or an s3:// URL; got bytes {path!r}")
    try:
        folder = Folder(text)
        manifest = folder.join(MANIFEST_NAME) if folder.is_dir() else folder
        found = manifest.is_file()
        stores = not found and manifest.parent.is_dir() and manifest.parent.has_stores()
    except (OSError, ValueError) as exc:  # a name too long for the file system, an unreachable bucket
        raise DatasetNotFoundError(
            f"path {text!r}: cannot be looked up ({getattr(exc, 'strerror', None) or exc}); pass a "
            f"dataset folder <root>/<name>/<version>/ or its manifest.json"
        ) from None
    if not found:
        hint = (
            " (world stores are there but no manifest: materialize dataset_manifest to publish the dataset)"
            if stores
            else ""
        )
        raise DatasetNotFoundError(
            f"path {text!r}: no {MANIFEST_NAME} found at {manifest}{hint}; pass a dataset "
            f"folder <root>/<name>/<version>/ or its manifest.json"
        )
    return manifest


def validate_manifest(document: dict, where: str) -> None:
    """:class:`ManifestError` naming ``where`` unless ``document`` matches the manifest schema.

    Parameters
    ----------
    document : dict
        A parsed manifest.
    where : str
        Where it was read from, for the message.
    """
    try:
        errors = schemas.errors("manifest", document)
    except RecursionError:
        raise ManifestError(f"manifest {where}: nested too deeply to be a manifest") from None
    if errors:
        lines = [f"{schemas.location(e)}: {e.message}" for e in errors[:10]]
        raise ManifestError(
            f"manifest {where}: manifest does not match schemas/manifest.schema.json:\n  " + "\n  ".join(lines)
        )


def parse_manifest(raw: bytes, where: str, check_schema: bool = True) -> dict:
    """The manifest in ``raw`` (the bytes of a ``manifest.json``), parsed and checked.

    Parameters
    ----------
    raw : bytes
        The file's content.
    where : str
        Where it was read from, for error messages.
    check_schema : bool, default True
        Validate against ``schemas/manifest.schema.json``. Without it only the shape is checked (a
        mapping with a ``worlds`` mapping): the validator reads damaged manifests this way and reports
        their schema errors as a failed check.

    Returns
    -------
    dict
        The manifest. :class:`~macro_data.errors.ManifestError` naming ``where`` if it is not JSON, not
        a manifest or (with ``check_schema``) does not match the schema.
    """
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest {where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ManifestError(f"manifest {where}: nested too deeply to be a manifest") from None
    if check_schema:
        validate_manifest(doc, where)
    elif not isinstance(doc, dict) or not isinstance(doc.get("worlds"), dict):
        raise ManifestError(f"manifest {where}: not a macro_data manifest (no 'worlds' mapping)")
    return doc


def read_manifest(manifest: Folder, check_schema: bool = True) -> dict:
    """Read and validate ``manifest.json``, local or on object storage (see :func:`parse_manifest`).

    Parameters
    ----------
    manifest : Folder
        The manifest file (:func:`resolve_manifest`).
    check_schema : bool, default True
        Validate against ``schemas/manifest.schema.json`` (else only the shape).

    Returns
    -------
    dict
        The manifest.
    """
    return parse_manifest(manifest.read_bytes(), str(manifest), check_schema)


def load_manifest(path: str | os.PathLike) -> dict:
    """Read and validate the manifest of a dataset.

    Parameters
    ----------
    path : str or os.PathLike
        A dataset folder ``<root>/<name>/<version>/``, its ``manifest.json``, or an ``s3://`` URL of either.

    Returns
    -------
    dict
        The manifest, validated against ``schemas/manifest.schema.json``.
    """
    return read_manifest(resolve_manifest(path))


def recipe_problems(manifest: dict) -> list[str]:
    """How the manifest contradicts the recipe it embeds (empty if it does not).

    Checked: the recipe matches ``schemas/recipe.schema.json`` and hashes (canonical JSON, SHA-256)
    to ``recipe_sha256``; T, H, the set of worlds and every world's ``n_samples`` agree; every
    world's ``priors`` are its drawn (uniform or integer) parameters' bounds as the manifest lists
    them, narrowed by the recipe's overrides.

    Parameters
    ----------
    manifest : dict
        A manifest that matches its schema.

    Returns
    -------
    list of str
        One sentence per contradiction.
    """
    recipe = manifest.get("recipe")
    problems = []
    errors = schemas.errors("recipe", recipe)
    if errors:
        return [
            f"its recipe does not match schemas/recipe.schema.json ({schemas.location(errors[0])}: {errors[0].message})"
        ]
    try:
        digest = hashlib.sha256(canonical_json(recipe)).hexdigest()
    except ValueError as exc:
        return [f"its recipe holds a non-finite number ({exc})"]
    if digest != manifest["recipe_sha256"]:
        problems.append(f"the recipe hashes to {digest}, recipe_sha256 says {manifest['recipe_sha256']}")
    if (manifest["T"], manifest["H"]) != (recipe["T"], recipe["H"]):
        problems.append(f"T={manifest['T']}, H={manifest['H']}, the recipe says T={recipe['T']}, H={recipe['H']}")
    listed, declared = sorted(manifest["worlds"]), sorted(recipe["worlds"])
    if listed != declared:
        problems.append(f"worlds {listed}, the recipe's are {declared}")
    for w, entry in manifest["worlds"].items():
        plan = recipe["worlds"].get(w)
        if plan is None:
            continue
        if entry["n_samples"] != plan["n_samples"]:
            problems.append(f"world {w!r} has n_samples {entry['n_samples']}, the recipe {plan['n_samples']}")
        overrides = plan.get("priors") or {}
        expected = {
            p["name"]: (float(p["low"]), float(p["high"]))
            for p in entry["parameters"]
            if p["kind"] in ("uniform", "integer") and p["low"] is not None and p["high"] is not None
        }
        for name, prior in overrides.items():  # narrowed bounds (a family alone keeps the world's)
            low, high = expected.get(name, (float("nan"), float("nan")))
            expected[name] = (float(prior.get("low", low)), float(prior.get("high", high)))
        given = {k: (v.get("low"), v.get("high")) for k, v in entry["priors"].items()}
        if given != expected:
            problems.append(f"world {w!r}: the priors differ from the recipe's")
    return problems
