"""Detection heads."""
from tfdet.heads.retina import RetinaNetHead
from tfdet.heads.roi_box import FCBoxHead, Res5BoxHead
from tfdet.heads.rpn import RPNHead
from tfdet.heads.roi_mask import MaskHead
from tfdet.heads.ssd import SSDHead
from tfdet.heads.yolo import yolo_head
