"""Readers (COCO, VOC, CSV, YOLO txt, TFRecord), transforms and the tf.data pipeline."""
from tfdet.data.coco import read_coco
from tfdet.data.csv_labels import read_csv_labels
from tfdet.data.example import DetectionDataset, Example, SkipLog, make_example
from tfdet.data.faces import ellipse_box, read_dlib_xml, read_fddb, read_wider_face
from tfdet.data.image_check import InvalidImage, check_image, probe_image, verify_image
from tfdet.data.pipeline import decode_image, input_pipeline, release_iterator
from tfdet.data.sample import load_sample_dataset
from tfdet.data.specs import load_dataset
from tfdet.data.tfrecord import read_tfrecord_annotations, write_tfrecords
from tfdet.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    ResizeKeepAspect,
    ResizeSquare,
    detection_transforms,
)
from tfdet.data.ssd_augment import (
    DataAnchorSamplingCrop,
    MinIoURandomCrop,
    PhotometricDistort,
    RandomExpand,
    ssd_transforms,
)
from tfdet.data.validate import AnnotationError
from tfdet.data.yolo_augment import YoloBatchAugment
from tfdet.data.voc import VOC_CLASSES, read_voc
from tfdet.data.yolo import read_yolo
