"""Opening a published dataset: lazy, labelled, verified access to its arrays.

A dataset folder ``<root>/<name>/<version>/`` holds ``manifest.json`` and one Zarr v3 group per
world. :func:`open_dataset` reads and validates the manifest and opens every listed array's
metadata (no data is read). Arrays are read only when indexed, one chunk at a time, so memory is
bounded by the request plus one chunk.

Integrity, in three layers:

* Always (cheap, at open): every array the manifest lists exists, with the manifest's shape,
  dtype and dimension names, and the content hash the store recorded when it was written equals
  the manifest's. A store republished after the manifest, or an edited manifest, is refused.
* Always (on read): every chunk is checked against its crc32c checksum as it is decoded, and a
  missing chunk file is an error (Zarr would otherwise fill it with NaN, or 0 for split labels).
  Both raise :class:`IntegrityError` naming the chunk file.
* On request (``verify=True`` or :meth:`Dataset.verify`): every array is decoded chunk by chunk
  and its content hash (the manifest's ``hash.algorithm``, computed by
  :func:`macro_data.storage.arrays.content_hash`) is recomputed and compared with the manifest's;
  a mismatch raises naming the world, the array, and the expected and actual hashes. Verification
  also checks every split's index set (count and ``index_hash``), the store's coordinate arrays
  (the names and index ranges that label the arrays) against the manifest, and the manifest
  against its own recipe (``recipe_sha256``, T, H, worlds, sample counts, priors), so an edited
  manifest cannot relabel or re-normalize intact data. Split index sets are also checked against
  the manifest's ``index_hash`` whenever :meth:`WorldData.split_indices` computes them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import zarr

from macro_data.errors import MacroDataError, ManifestError
from macro_data.read.errors import DatasetNotFoundError, IntegrityError, ReadArgumentError
from macro_data.storage.arrays import HASH_ALGORITHM, content_hash

MANIFEST_NAME = "manifest.json"
SHOCK_UNIT = "standard deviations"  # shocks are standard-normal innovations (spec, "Conventions")


def _known(names: Iterable[str]) -> str:
    return ", ".join(names) or "(none)"


def _names_arg(what: str, value) -> list[str]:
    """A name or a list of names; anything else is a :class:`ReadArgumentError` naming the argument."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise ReadArgumentError(f"{what} must be a name or a list of names; got {value!r}")
    names = list(value)
    bad = [v for v in names if not isinstance(v, str)]
    if bad:
        raise ReadArgumentError(f"{what} must be a name or a list of names; got {bad[0]!r} in {names!r}")
    return names


class LazyArray:
    """One stored array of one world, read lazily chunk by chunk along ``sample``.

    Indexing (``arr[i]``, ``arr[lo:hi]``, ``arr[[3, 1, 2]]``, ``arr[mask]``, ``arr[lo:hi, :, 0]``)
    reads only the chunks holding the requested samples, one at a time, and returns a NumPy array.
    ``coords`` maps each dimension name to its labels (``None`` for ``sample``), ``units`` maps
    the labels of the variable dimension (``param``, ``shock``, ``observable``, ``extra``) to their
    units.
    """

    def __init__(
        self,
        world: str,
        name: str,
        folder: Path,
        spec: Mapping,
        coords: Mapping[str, tuple | None],
        units: Mapping[str, str],
        hash_algorithm: str = HASH_ALGORITHM,
    ):
        self.world = world
        self.hash_algorithm = hash_algorithm
        self.name = name
        self.relpath = str(spec["path"])
        self.path = folder / self.relpath
        self.description = str(spec.get("description", ""))
        self.expected_sha256 = str(spec["sha256"])
        if not (self.path / "zarr.json").is_file():
            raise IntegrityError(
                f"world {world!r} array {name!r}: the manifest lists {self.relpath} but "
                f"there is no Zarr array at {self.path}"
            )
        try:
            self._z = zarr.open_array(str(self.path), mode="r")
        except Exception as exc:  # unreadable metadata is corruption from the reader's point of view
            raise IntegrityError(f"world {world!r} array {name!r}: cannot open {self.path}: {exc}") from exc
        self.shape: tuple[int, ...] = tuple(int(s) for s in self._z.shape)
        self.dtype = np.dtype(self._z.dtype)
        self.dims: tuple[str, ...] = tuple(self._z.metadata.dimension_names or ())
        problems = []
        if list(self.shape) != list(spec["shape"]):
            problems.append(f"shape {list(self.shape)} (manifest {spec['shape']})")
        if str(self.dtype) != spec["dtype"]:
            problems.append(f"dtype {self.dtype} (manifest {spec['dtype']})")
        if list(self.dims) != list(spec["dimension_names"]):
            problems.append(f"dimension names {list(self.dims)} (manifest {spec['dimension_names']})")
        stored_hash = self._z.attrs.get("sha256")
        if stored_hash != self.expected_sha256:
            problems.append(
                f"content hash recorded by the store {stored_hash} (manifest expects {self.expected_sha256})"
            )
        for d, size in zip(self.dims, self.shape):  # labels come from the manifest: they must fit the store
            if coords.get(d) is not None and len(coords[d]) != size:
                problems.append(f"dimension {d!r} has {size} entries, the manifest labels {len(coords[d])}")
        if problems:
            raise IntegrityError(
                f"world {world!r} array {name!r} ({self.path}) does not match the manifest: "
                + "; ".join(problems)
                + ". The store was changed after the manifest was "
                "written (or the manifest was edited); rebuild dataset_manifest or the world"
            )
        self.chunk_rows = int(self._z.chunks[0])
        self._chunk_grid = [range(-(-s // c)) for s, c in zip(self.shape[1:], self._z.chunks[1:])]
        self.n_chunks = -(-self.shape[0] // self.chunk_rows)
        self.coords = {d: coords.get(d) for d in self.dims}
        self.units = dict(units)

    # ---- description ----------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def attrs(self) -> dict:
        """The Zarr attributes of the array (descriptions, provenance)."""
        return dict(self._z.attrs)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        dims = ", ".join(f"{d}: {s}" for d, s in zip(self.dims, self.shape))
        return f"<LazyArray {self.world}/{self.name} ({dims}) {self.dtype}>"

    # ---- chunk access -----------------------------------------------------------------------
    def chunk_range(self, c: int) -> tuple[int, int]:
        lo = c * self.chunk_rows
        return lo, min(lo + self.chunk_rows, self.shape[0])

    def chunk_files(self, c: int) -> list[Path]:
        enc = self._z.metadata.chunk_key_encoding
        return [self.path / enc.encode_chunk_key((c, *rest)) for rest in itertools.product(*self._chunk_grid)]

    def read_chunk(self, c: int) -> np.ndarray:
        """Decode sample chunk ``c`` (rows ``c*chunk_rows`` onward); :class:`IntegrityError` if it is
        missing or fails its checksum."""
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < self.n_chunks:
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: chunk {c!r} is not an integer in 0..{self.n_chunks - 1}"
            )
        c = int(c)
        lo, hi = self.chunk_range(c)
        files = self.chunk_files(c)
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise IntegrityError(
                f"world {self.world!r} array {self.name!r}: chunk file {missing[0]} (samples {lo}..{hi - 1}) is missing"
            )
        try:
            return np.asarray(self._z[lo:hi])
        except Exception as exc:  # crc32c mismatch, truncated or undecodable chunk
            where = files[0] if len(files) == 1 else f"{files[0]} (one of {len(files)} files)"
            raise IntegrityError(
                f"world {self.world!r} array {self.name!r}: chunk file {where} "
                f"(samples {lo}..{hi - 1}) is corrupt: {exc}"
            ) from exc

    def iter_chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first sample, decoded chunk)`` in storage order."""
        for c in range(self.n_chunks):
            yield self.chunk_range(c)[0], self.read_chunk(c)

    # ---- reading ----------------------------------------------------------------------------
    def take(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows ``indices`` (any order, repeats allowed) along ``sample``, reading each needed chunk once."""
        try:
            idx = np.asarray(indices)
        except (TypeError, ValueError) as exc:  # ragged or absurdly nested sequences
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: sample indices must be a 1-d integer array ({exc})"
            ) from None
        if idx.dtype == bool:
            if idx.shape != (self.shape[0],):
                raise ReadArgumentError(
                    f"world {self.world!r} array {self.name!r}: boolean sample mask must have "
                    f"shape ({self.shape[0]},); got {idx.shape}"
                )
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: sample indices must be a 1-d "
                f"integer array; got dtype {idx.dtype}, shape {idx.shape}"
            )
        n = self.shape[0]
        if idx.size and (idx.min() < -n or idx.max() >= n):  # before the int64 cast, which wraps uint64
            bad = idx[(idx < -n) | (idx >= n)][0]
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: sample index {bad} out of range for {n} samples"
            )
        idx = idx.astype(np.int64)
        idx = np.where(idx < 0, idx + n, idx)
        out = np.empty((idx.size, *self.shape[1:]), dtype=self.dtype)
        if not idx.size:
            return out
        chunk_of = idx // self.chunk_rows
        order = np.argsort(chunk_of, kind="stable")
        cuts = np.flatnonzero(np.diff(chunk_of[order])) + 1
        for group in np.split(order, cuts):
            c = int(chunk_of[group[0]])
            block = self.read_chunk(c)
            out[group] = block[idx[group] - c * self.chunk_rows]
        return out

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if sum(k is Ellipsis for k in key) > 1:
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: invalid index {key!r} (an index "
                f"can only have a single ellipsis)"
            )
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            fill = self.ndim - (len(key) - 1)
            key = key[:i] + (slice(None),) * max(fill, 0) + key[i + 1 :]
        if not key:
            key = (slice(None),)
        first, rest = key[0], key[1:]
        if not isinstance(first, slice) and any(
            isinstance(k, (list, tuple, bool, np.bool_)) or isinstance(k, np.ndarray) and k.ndim > 0 for k in rest
        ):
            # numpy would broadcast these indices together (and may move axes); this reader indexes the sample
            # axis first, so the results would differ: refuse rather than answer differently from numpy
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: invalid index {key!r}: an integer or "
                f"index array on the sample axis together with an index array on another axis "
                f"is ambiguous; index the samples first, then the result"
            )
        try:  # the key beyond the sample axis, tried on an empty array of the same shape: nothing is read
            np.empty((0, *self.shape[1:]), dtype=self.dtype)[(slice(None), *rest)]
            if isinstance(first, slice):
                idx = np.arange(self.shape[0])[first]
        except (IndexError, TypeError, ValueError, OverflowError) as exc:
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r} with dimensions {self.dims} and "
                f"shape {self.shape}: invalid index {key!r} ({exc})"
            ) from None
        if isinstance(first, (int, np.integer)) and not isinstance(first, bool):
            return self.take([first])[0][rest]
        if not isinstance(first, slice):
            idx = first
        return self.take(idx)[(slice(None), *rest)]

    def read(self) -> np.ndarray:
        """The whole array (explicit, since it loads everything into memory)."""
        return self[:]

    # ---- integrity --------------------------------------------------------------------------
    def compute_sha256(self) -> str:
        """Recompute the content hash (:func:`macro_data.storage.arrays.content_hash`) by decoding every
        chunk; a missing or corrupt chunk raises :class:`IntegrityError` naming its file."""
        for c in range(self.n_chunks):
            missing = [f for f in self.chunk_files(c) if not f.is_file()]
            if missing:
                lo, hi = self.chunk_range(c)
                raise IntegrityError(
                    f"world {self.world!r} array {self.name!r}: chunk file {missing[0]} "
                    f"(samples {lo}..{hi - 1}) is missing"
                )
        try:
            return content_hash(self._z)
        except Exception as exc:
            for c in range(self.n_chunks):  # find and name the chunk that fails
                self.read_chunk(c)
            raise IntegrityError(
                f"world {self.world!r} array {self.name!r} ({self.path}): cannot be decoded: {exc}"
            ) from exc

    def verify(self) -> str:
        """Recompute the content hash; :class:`IntegrityError` unless it equals the manifest's."""
        if self.hash_algorithm != HASH_ALGORITHM:
            raise IntegrityError(
                f"world {self.world!r} array {self.name!r}: cannot verify: the manifest's hash "
                f"algorithm is {self.hash_algorithm!r}, this version of macro_data computes "
                f"{HASH_ALGORITHM!r}"
            )
        actual = self.compute_sha256()
        if actual != self.expected_sha256:
            raise IntegrityError(
                f"world {self.world!r} array {self.name!r} ({self.path}): content hash mismatch: "
                f"manifest expects sha256 {self.expected_sha256}, the stored data hashes to "
                f"{actual}; the data is corrupt or was modified, refusing to use it"
            )
        return actual


class WorldData:
    """One world of a dataset: its description (from the manifest) and its arrays."""

    def __init__(self, dataset: Dataset, name: str, entry: Mapping):
        self.dataset = dataset
        self.name = name
        self.entry = entry
        self.n_samples = int(entry["n_samples"])
        self.parameters: tuple[dict, ...] = tuple(entry["parameters"])
        self.parameter_names = tuple(p["name"] for p in self.parameters)
        self.shocks = tuple(entry["shocks"])
        self.observables = tuple(o["name"] for o in entry["observables"])
        self.extras = tuple(o["name"] for o in entry["extras"])
        self.priors: dict[str, dict] = dict(entry.get("priors") or {})
        self.split_labels: dict[str, int] = dict(dataset.manifest["split_labels"])
        coords = {
            "sample": None,
            "time": tuple(range(dataset.T)),
            "horizon": tuple(range(dataset.H + 1)),
            "param": self.parameter_names,
            "shock": self.shocks,
            "observable": self.observables,
            "extra": self.extras,
        }
        obs_units = {o["name"]: o["unit"] for o in entry["observables"]}
        units = {
            "theta": {p["name"]: p["unit"] for p in self.parameters},
            "shocks": {s: SHOCK_UNIT for s in self.shocks},
            "trajectories": obs_units,
            "irfs": obs_units,
            "extras": {o["name"]: o["unit"] for o in entry["extras"]},
        }
        self.arrays: dict[str, LazyArray] = {
            a: LazyArray(name, a, dataset.path, spec, coords, units.get(a, {}), dataset.manifest["hash"]["algorithm"])
            for a, spec in entry["arrays"].items()
        }
        theta = self.arrays["theta"]
        if theta.shape[0] != self.n_samples or theta.shape[1] != len(self.parameters):
            raise IntegrityError(
                f"world {name!r}: theta has shape {theta.shape}, the manifest describes "
                f"{self.n_samples} samples of {len(self.parameters)} parameters"
            )
        self._split_cache: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return (
            f"<WorldData {self.name}: {self.n_samples} samples, {len(self.parameters)} parameters, "
            f"shocks {list(self.shocks)}, arrays {list(self.arrays)}>"
        )

    def __getitem__(self, array: str) -> LazyArray:
        return self.array(array)

    def array(self, array: str) -> LazyArray:
        if not isinstance(array, str) or array not in self.arrays:
            raise ReadArgumentError(f"world {self.name!r}: unknown array {array!r}; its arrays: {_known(self.arrays)}")
        return self.arrays[array]

    # ---- splits -----------------------------------------------------------------------------
    @property
    def split_sizes(self) -> dict[str, int]:
        """Samples per split, as the manifest records them."""
        return {s: int(v["count"]) for s, v in self.entry["splits"].items()}

    def check_split(self, split: str) -> str:
        if not isinstance(split, str) or split not in self.split_labels:
            raise ReadArgumentError(
                f"unknown split {split!r}; splits: {_known(self.split_labels)} (or None for all samples)"
            )
        return split

    def split_indices(self, split: str | Sequence[str] | None) -> np.ndarray:
        """Sorted sample indices (int64) of ``split``, a list of splits (their union), or ``None`` (all).

        The labels are read chunk by chunk; the set is checked against the manifest's count and
        ``index_hash`` (:class:`IntegrityError` if they differ).
        """
        if split is None:
            return np.arange(self.n_samples, dtype=np.int64)
        if not isinstance(split, str):
            names = _names_arg("split", split)
            if not names:
                raise ReadArgumentError("split: an empty list of splits selects nothing")
            return np.unique(np.concatenate([self.split_indices(s) for s in names]))
        self.check_split(split)
        if split not in self._split_cache:
            label = self.split_labels[split]
            parts = [lo + np.flatnonzero(block == label) for lo, block in self.arrays["split"].iter_chunks()]
            idx = np.concatenate(parts).astype(np.int64)
            info = self.entry["splits"][split]
            digest = hashlib.sha256(idx.astype("<i8").tobytes()).hexdigest()
            if idx.size != info["count"] or digest != info["index_hash"]:
                raise IntegrityError(
                    f"world {self.name!r} split {split!r}: the stored labels give {idx.size} samples "
                    f"with index hash {digest}, the manifest records {info['count']} samples with "
                    f"index hash {info['index_hash']}"
                )
            idx.setflags(write=False)
            self._split_cache[split] = idx
        return self._split_cache[split]

    # ---- parameters ------------------------------------------------------------------------
    def normalizer(self, bounds: str = "prior", derived: str | Mapping[str, tuple[float, float]] = "identity"):
        """The :class:`~macro_data.read.normalize.ParameterNormalizer` of this world's theta."""
        from macro_data.read.normalize import ParameterNormalizer

        return ParameterNormalizer.from_manifest(self.entry, bounds=bounds, derived=derived)

    def theta_moments(self, split: str | Sequence[str] | None = "train") -> dict[str, tuple[float, float]]:
        """Per-parameter ``(mean, sd)`` of theta over ``split``, streamed chunk by chunk (float64).

        Computed from the data (not stored in the manifest), e.g. to standardize ``derived``
        parameters: ``world.normalizer(derived=world.theta_moments("train"))``.
        """
        idx = self.split_indices(split)
        theta = self.arrays["theta"]
        count, mean, m2 = 0, np.zeros(theta.shape[1]), np.zeros(theta.shape[1])
        bounds = np.searchsorted(idx, [theta.chunk_range(c)[0] for c in range(theta.n_chunks)] + [theta.shape[0]])
        for c in range(theta.n_chunks):
            sel = idx[bounds[c] : bounds[c + 1]]
            if not sel.size:
                continue
            block = theta.read_chunk(c)[sel - c * theta.chunk_rows].astype(np.float64)
            k, bmean = block.shape[0], block.mean(axis=0)
            bm2 = ((block - bmean) ** 2).sum(axis=0)
            delta = bmean - mean
            total = count + k
            mean = mean + delta * (k / total)  # Chan et al. parallel update: stable for any chunking
            m2 = m2 + bm2 + delta**2 * (count * k / total)
            count = total
        if count < 2:
            raise ReadArgumentError(
                f"world {self.name!r}: split {split!r} has {count} samples; at least 2 are needed for moments"
            )
        sd = np.sqrt(m2 / (count - 1))
        return {name: (float(m), float(s)) for name, m, s in zip(self.parameter_names, mean, sd)}

    # ---- integrity --------------------------------------------------------------------------
    def verify(self, arrays: Sequence[str] | None = None) -> dict[str, str]:
        """Recompute content hashes (all arrays by default); raises on the first mismatch or bad chunk.
        Verifying all arrays also checks the coordinate arrays and every split's index set."""
        names = list(self.arrays) if arrays is None else [self.array(a).name for a in _names_arg("arrays", arrays)]
        hashes = {a: self.arrays[a].verify() for a in names}
        if arrays is None:
            self.verify_labels()
            for split in self.split_labels:
                self.split_indices(split)
        return hashes

    def verify_labels(self) -> None:
        """The store's coordinate arrays (names, ``time``, ``horizon``) equal the labels the manifest gives."""
        theta = self.arrays["theta"]
        store = theta.path.parent
        expected = {
            "param": self.parameter_names,
            "shock": self.shocks,
            "observable": self.observables,
            "extra": self.extras,
            "time": tuple(range(self.dataset.T)),
            "horizon": tuple(range(self.dataset.H + 1)),
        }
        dims = sorted({d for a in self.arrays.values() for d in a.dims if d in expected})
        for d in dims:
            where = store / d
            try:
                values = np.asarray(zarr.open_array(str(where), mode="r")[...]).tolist()
            except Exception as exc:  # missing, truncated or checksum-failing coordinate array
                raise IntegrityError(
                    f"world {self.name!r}: coordinate array {d!r} ({where}) cannot be read: {exc}"
                ) from exc
            if [str(v) for v in values] != [str(v) for v in expected[d]]:
                raise IntegrityError(
                    f"world {self.name!r}: coordinate array {d!r} ({where}) holds "
                    f"{[str(v) for v in values][:12]}, the manifest labels the dimension "
                    f"{[str(v) for v in expected[d]][:12]}; the manifest or the store was changed"
                )


class Dataset:
    """A published dataset: its manifest and, per world, a :class:`WorldData`."""

    def __init__(self, path: Path, manifest: dict, worlds: Sequence[str] | None = None):
        self.path = path
        self.manifest = manifest
        self.name = manifest["dataset"]["name"]
        self.version = manifest["dataset"]["version"]
        self.T = int(manifest["T"])
        self.H = int(manifest["H"])
        self.seed = int(manifest["recipe"]["seed"])
        self.split_names: tuple[str, ...] = tuple(manifest["split_labels"])
        available = tuple(manifest["worlds"])
        if worlds is None:
            selected = available
        else:
            worlds = _names_arg("worlds", worlds)
            unknown = [w for w in worlds if w not in available]
            if unknown:
                raise ReadArgumentError(
                    f"worlds: {unknown[0]!r} is not in dataset {self.name} {self.version} "
                    f"(its worlds: {_known(available)})"
                )
            selected = tuple(w for w in available if w in set(worlds))
        self.available_worlds = available
        self._worlds = {w: WorldData(self, w, manifest["worlds"][w]) for w in selected}

    @property
    def worlds(self) -> tuple[str, ...]:
        """The opened worlds, in the manifest's order."""
        return tuple(self._worlds)

    def __getitem__(self, world: str) -> WorldData:
        if not isinstance(world, str) or world not in self._worlds:
            extra = (
                f"; {world!r} is in the dataset but was not opened (worlds=...)"
                if world in self.available_worlds
                else ""
            )
            raise ReadArgumentError(f"unknown world {world!r}; opened worlds: {_known(self._worlds)}{extra}")
        return self._worlds[world]

    def __iter__(self) -> Iterator[str]:
        return iter(self._worlds)

    def __contains__(self, world: object) -> bool:
        return world in self._worlds

    def __len__(self) -> int:
        return len(self._worlds)

    def __repr__(self) -> str:
        return (
            f"<Dataset {self.name} {self.version} at {self.path}: T={self.T}, H={self.H}, "
            f"worlds {', '.join(f'{w} ({d.n_samples})' for w, d in self._worlds.items())}>"
        )

    def verify(self, worlds: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
        """Recompute every content hash of the opened worlds (or ``worlds``); :class:`IntegrityError`
        naming the world, array, expected and actual hash (or the corrupt chunk file) on failure.
        Also checks labels and splits (:meth:`WorldData.verify`) and the manifest against its recipe."""
        names = self.worlds if worlds is None else [self[w].name for w in _names_arg("worlds", worlds)]
        self.verify_manifest()
        return {w: self._worlds[w].verify() for w in names}

    def verify_manifest(self) -> None:
        """The manifest agrees with the recipe it embeds: hash, T, H, worlds, sample counts, priors."""
        from macro_data.recipes import parse_recipe

        where = self.path / MANIFEST_NAME
        try:
            recipe = parse_recipe(self.manifest["recipe"], source=f"{where} (field recipe)")
        except MacroDataError as exc:
            raise IntegrityError(f"manifest {where}: its recipe does not parse: {exc}") from None
        problems = []
        if recipe.sha256 != self.manifest["recipe_sha256"]:
            problems.append(
                f"the recipe hashes to {recipe.sha256}, recipe_sha256 says {self.manifest['recipe_sha256']}"
            )
        if (self.T, self.H) != (recipe.T, recipe.H):
            problems.append(f"T={self.T}, H={self.H}, the recipe says T={recipe.T}, H={recipe.H}")
        if list(self.available_worlds) != recipe.world_ids:
            problems.append(f"worlds {list(self.available_worlds)}, the recipe's are {recipe.world_ids}")
        for w, data in self._worlds.items():
            if w not in recipe.worlds:
                continue
            plan = recipe.world(w)
            if data.n_samples != plan.n_samples:
                problems.append(f"world {w!r} has n_samples {data.n_samples}, the recipe {plan.n_samples}")
            listed = {k: (v.get("low"), v.get("high")) for k, v in data.priors.items()}
            if listed != plan.priors:
                problems.append(f"world {w!r}: the priors differ from the recipe's")
        if problems:
            raise IntegrityError(
                f"manifest {where} contradicts its own recipe: "
                + "; ".join(problems)
                + ". The manifest was edited; rebuild dataset_manifest"
            )

    def training_view(self, split: str | Sequence[str] | None = "train", **options):
        """A :class:`~macro_data.read.training.TrainingView` over this dataset (see its options)."""
        from macro_data.read.training import TrainingView

        return TrainingView(self, split, **options)


def resolve_manifest_path(path: str | Path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ReadArgumentError(f"path must be a dataset folder or its {MANIFEST_NAME} (str or path); got {path!r}")
    p = Path(path)
    try:
        if p.is_dir():
            p = p / MANIFEST_NAME
        found = p.is_file()
        stores = not found and p.parent.is_dir() and any(p.parent.glob("*.zarr"))
    except OSError as exc:  # e.g. a file name too long for the file system
        raise DatasetNotFoundError(
            f"path {str(path)!r}: cannot be looked up ({exc.strerror or exc}); pass a "
            f"dataset folder <root>/<name>/<version>/ or its manifest.json"
        ) from None
    if not found:
        hint = (
            " (world stores are there but no manifest: materialize dataset_manifest to publish the dataset)"
            if stores
            else ""
        )
        raise DatasetNotFoundError(
            f"path {str(path)!r}: no {MANIFEST_NAME} found at {p}{hint}; pass a dataset "
            f"folder <root>/<name>/<version>/ or its manifest.json"
        )
    return p


def load_manifest(path: str | Path) -> dict:
    """Read and validate ``manifest.json`` (schema ``schemas/manifest.schema.json``)."""
    from macro_data.pipeline.manifest import validate_manifest

    p = resolve_manifest_path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest {p}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ManifestError(f"manifest {p}: nested too deeply to be a manifest") from None
    try:
        validate_manifest(doc)
    except ManifestError as exc:
        raise ManifestError(f"manifest {p}: {exc}") from None
    except RecursionError:
        raise ManifestError(f"manifest {p}: nested too deeply to be a manifest") from None
    return doc


def open_dataset(path: str | Path, *, worlds: Sequence[str] | None = None, verify: bool = False) -> Dataset:
    """Open the dataset at ``path`` (its folder or its ``manifest.json``).

    ``worlds`` restricts which worlds are opened (default: all). With ``verify=True`` every array
    of the opened worlds is decoded and its content hash checked against the manifest before the
    dataset is returned (:class:`IntegrityError` otherwise); this reads the whole dataset once.
    """
    manifest_path = resolve_manifest_path(path)
    ds = Dataset(manifest_path.parent, load_manifest(manifest_path), worlds)
    if verify:
        ds.verify()
    return ds
