"""Shared test settings: quiet TensorFlow, paths to the real sample data beside the checkout."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(
    os.environ.get("TFDET_SAMPLE_DATA", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


@pytest.fixture(autouse=True, scope="module")
def _release_models_after_each_module():
    """Drop Keras' global graph state after each test module: the suite builds dozens of
    models, and keeping them all made one process grow past 12 GB."""
    yield
    import gc

    import keras
    keras.backend.clear_session()
    gc.collect()


def require_shared(*parts):
    """Path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"sample data not found at {path} (set TFDET_SAMPLE_DATA to ../shared/data)")
    return path
