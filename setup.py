"""tfdet: the PaddleDetection (static-graph) model zoo on TensorFlow 2 / Keras 3."""
from setuptools import find_packages, setup

setup(
    name="tfdet",
    version="0.1.0",
    description="Object detection on TensorFlow 2 / Keras 3: R-CNN family, RetinaNet, SSD, YOLOv3.",
    packages=find_packages(include=["tfdet", "tfdet.*"]),
    # The zoo's configs: the registry of rows (tfdet.models) reads them.
    package_data={"tfdet": ["configs/*.gin", "configs/*/*.gin"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.20",
        "keras>=3.10",
        "numpy>=1.26",
        "absl-py",
        "gin-config>=0.5",
        "pycocotools>=2.0.7",
        "tqdm",
        "tensorboard",
        "pillow>=10.1",  # drawing labelled detections (tfdet.visualize)
    ],
    extras_require={
        # TF Serving's request protos: scripts/serving_client.py and export's warm-up file.
        "serving": ["tensorflow-serving-api>=2.20"],
        # WIDER FACE's official .mat ground truth (Easy / Medium / Hard keep lists).
        "widerface": ["scipy>=1.10"],
        "dev": ["pytest>=8", "pytest-xdist>=3.5", "tensorflow-serving-api>=2.20",
                "scipy>=1.10"],
    },
)
