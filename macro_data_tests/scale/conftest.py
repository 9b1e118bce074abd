import pytest

from macro_data import compute


@pytest.fixture(autouse=True, scope="package")
def close_shared_clusters():
    """Stop the LocalClusters these tests start when they are done: their threads would otherwise
    keep running (and allocating) during later tests, e.g. those that measure memory."""
    yield
    compute._close_clusters()
