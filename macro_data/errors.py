"""Exceptions users see. Each names what is wrong and where (file, field, world, parameter)."""


class MacroDataError(Exception):
    """Base class of every error this package raises on purpose."""


class WorldError(MacroDataError, ValueError):
    """Bad input to a simulator world: unknown world, wrong shape, out-of-bounds or non-finite value."""


class WorldFileError(WorldError):
    """A declared-world model file that cannot be read or breaks a rule.

    The message names the file, the 1-based line and column in it (when known) and the problem;
    ``path``, ``line``, ``column`` and ``problem`` are also attributes.
    """

    def __init__(self, path, problem: str, line: int | None = None, column: int | None = None):
        self.path, self.problem, self.line, self.column = str(path), problem, line, column
        where = f", line {line}, column {column}" if line is not None else ""
        super().__init__(f"world file {path}{where}: {problem}")

    def __reduce__(self):  # picklable across processes despite the custom signature
        return (type(self), (self.path, self.problem, self.line, self.column))


class RecipeError(MacroDataError, ValueError):
    """A dataset recipe that fails its schema or a semantic rule."""


class StorageError(MacroDataError):
    """A dataset store that cannot be written, published or read back intact."""


class ManifestError(MacroDataError):
    """A manifest that cannot be built or does not match the stores."""
