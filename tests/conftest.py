"""Shared test settings: quiet TensorFlow, paths to the real sample data beside the checkout."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(
    os.environ.get("TFDET_SAMPLE_DATA", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def require_shared(*parts):
    """Path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"sample data not found at {path} (set TFDET_SAMPLE_DATA to ../shared/data)")
    return path
