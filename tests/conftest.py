"""Shared test settings: quiet TensorFlow, paths to the real sample data beside the checkout."""
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's kernels on every x86-64 CPU, as tfdet sets them (tfdet/__init__.py): tests may import
# tensorflow before tfdet. Without them a Zen 3 ran the suite's training steps 2-4x slower.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# Parallel test processes share the CPUs: each gets its share of TensorFlow's intra-op threads
# (and so do the scripts it starts). Two processes of two threads each on two cores spent much
# of their time spinning against each other: the learning tests ran about a quarter faster with
# one thread each.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(
        1, (_cpus or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import pathlib  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(
    os.environ.get("TFDET_SAMPLE_DATA", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


# Tests of a minute or more (learning tests, parity rows, exports, script and multi-process
# runs, whole-zoo builds): `python -m pytest -q -m "not slow" tests` leaves them out. Roughly
# longest first: the suite runs them in this order.
SLOW = (
    "tests/models/test_yolov3_learning.py", "tests/models/test_mask_rcnn_learning.py",
    "tests/models/test_ssd_learning.py", "tests/training/test_multiworker.py",
    "tests/models/test_cascade_rcnn_learning.py", "tests/models/test_gn_learning.py",
    "tests/models/test_blazeface_learning.py",
    "tests/models/test_retinanet_learning.py",
    "tests/parity/test_paddle_parity.py", "tests/training/test_trainer.py",
    "tests/training/test_checkpoint_roundtrip.py", "tests/training/test_keras_fit.py",
    "tests/test_train_command.py", "tests/test_scripts.py", "tests/export/test_saved_model.py",
    "tests/parity/test_convert_command.py",
    "tests/parity/test_static_convert.py::test_static_names_fill_every_variable_of_the_row",
    "tests/parity/test_static_convert.py::test_convert_weights_static_row_writes_a_run_folder",
    "tests/parity/test_convert.py::test_imagenet_backbone",
    "tests/models/test_dcn_rows.py",
    "tests/models/test_faster_rcnn.py::test_every_faster_rcnn_row",
    "tests/models/test_mask_rcnn.py::test_every_mask_rcnn_row",
    "tests/models/test_cascade_rcnn.py::test_every_cascade_row",
    "tests/test_tta.py::test_tta_evaluation_and_serving_tta_agree",
    "tests/models/test_retinanet.py::test_losses_fall_when_fitting_one_batch",
    "tests/models/test_retinanet.py::test_registered_retinanet_rows",
    "tests/models/test_yolov3.py::test_rows_build",
    "tests/models/test_yolov3.py::test_random_input_sizes",
    "tests/models/test_ssd.py::test_ssd_rows_build", "tests/test_quiet.py::test_start_up",
    "tests/models/test_mask_rcnn.py::test_masks_at_inference",
    "tests/models/test_faster_rcnn.py::test_c4_form",
)


# Memory one test process may reach (the largest tests build several R50-R101 detectors).
GB_PER_WORKER = 8


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one process per CPU, as many as the memory holds at GB_PER_WORKER each.
    Parallel processes pay off in the tests' single-threaded parts (tracing, graph building,
    model construction); TensorFlow's kernels already use every core."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        memory_gb = int(info["MemAvailable"].split()[0]) / 2 ** 20
    except (OSError, KeyError, ValueError):
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return max(1, min(cpus or 1, int(memory_gb // GB_PER_WORKER)))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: half a minute or more (see tests/conftest.py SLOW); "
                            "-m 'not slow' runs the rest in a few minutes")


def pytest_collection_modifyitems(config, items):
    """Marks the SLOW tests and runs them first, in SLOW's order (longest first), so that
    parallel workers end on short tests rather than one of them on a learning test."""
    def rank(item):
        return next((i for i, prefix in enumerate(SLOW) if item.nodeid.startswith(prefix)),
                    len(SLOW))
    for item in items:
        if rank(item) < len(SLOW):
            item.add_marker(pytest.mark.slow)
    items.sort(key=rank)


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
