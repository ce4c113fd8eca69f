"""SavedModel export with TF Serving signatures (TF Object Detection API outputs)."""
from tfdet.export.saved_model import (DetectionServingModule, export_saved_model, next_version_dir,
                                      untrained_biases)
from tfdet.export.fold_norms import fold_norms
