"""Detection heads."""
from tfdet.heads.retina import RetinaNetHead
from tfdet.heads.roi_box import FCBoxHead
from tfdet.heads.rpn import RPNHead
