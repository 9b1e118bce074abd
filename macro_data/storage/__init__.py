"""On-disk storage: Zarr arrays (``arrays``) and atomic publish of world groups (``publish``)."""
