"""tfdet: object detection on TensorFlow 2 / Keras 3 (the PaddleDetection static-graph zoo)."""
__version__ = "0.1.0"

import os
import platform

# TensorFlow turns its oneDNN kernels on by default only on x86 CPUs with AVX-512 VNNI / BF16 /
# AMX. Elsewhere (AMD Zen 3, older Intel) it runs Eigen's convolution gradients, whose input
# gradient took a YOLOv3 MobileNet training step from 0.8 to 3.2 s on a Zen 3. oneDNN on every
# x86-64 CPU (when tfdet is imported before tensorflow); TF_ENABLE_ONEDNN_OPTS=0 opts out.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from tfdet import _quiet  # noqa: E402

_quiet.import_tensorflow()  # without TF's start-up notices on stderr

from tfdet import data, evaluation, models, ops  # noqa: F401,E402
from tfdet.inference import detect  # noqa: F401,E402
