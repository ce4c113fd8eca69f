"""tfdet: object detection on TensorFlow 2 / Keras 3 (the PaddleDetection static-graph zoo)."""
__version__ = "0.1.0"

from tfdet import _quiet

_quiet.import_tensorflow()  # without TF's start-up notices on stderr

from tfdet import data, evaluation, models, ops  # noqa: F401,E402
from tfdet.inference import detect  # noqa: F401,E402
