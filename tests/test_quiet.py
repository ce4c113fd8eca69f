"""Importing tfdet hides TensorFlow's start-up notices (written before absl's logging starts,
out of TF_CPP_MIN_LOG_LEVEL's reach) and keeps real errors; gin's include checks are not
logged."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ("import sys, logging\n"
          "logging.basicConfig(level=logging.INFO)\n"
          "import tfdet, tensorflow as tf\n"
          "from tfdet.config import load_experiment\n"
          "load_experiment(sys.argv[1])\n"
          "print(int(tf.constant(1) + 1))\n"
          "print('an error of ours', file=sys.stderr)\n")


def _run(**env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFDET_VERBOSE_STARTUP")}
    config = str(ROOT / "configs" / "faster_rcnn_r50_fpn_1x.gin")  # has includes
    return subprocess.run([sys.executable, "-c", SCRIPT, config], capture_output=True,
                          text=True, timeout=300, env=dict(base, PYTHONPATH=str(ROOT), **env))


def test_start_up_notices_are_hidden_and_errors_kept():
    from tfdet._quiet import _NOISE
    verbose = _run(TFDET_VERBOSE_STARTUP="1")
    quiet = _run()
    assert quiet.returncode == 0 and quiet.stdout.strip() == "2", quiet.stderr[-2000:]
    noise = [line for line in verbose.stderr.splitlines() if _NOISE.match(line)]
    if not noise:
        pytest.skip("this TensorFlow build prints no start-up notices")
    assert not [line for line in quiet.stderr.splitlines() if _NOISE.match(line)]
    assert "an error of ours" in quiet.stderr
    assert "system_path_file_exists" not in quiet.stderr + verbose.stderr
