"""Exceptions users see. Each names what is wrong and where (file, field, world, parameter)."""


class MacroDataError(Exception):
    """Base class of every error this package raises on purpose."""


class WorldError(MacroDataError, ValueError):
    """Bad input to a simulator world: unknown world, wrong shape, out-of-bounds or non-finite value."""


class RecipeError(MacroDataError, ValueError):
    """A dataset recipe that fails its schema or a semantic rule."""


class StorageError(MacroDataError):
    """A dataset store that cannot be written, published or read back intact."""


class ManifestError(MacroDataError):
    """A manifest that cannot be built or does not match the stores."""
