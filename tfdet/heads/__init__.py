"""Detection heads."""
from tfdet.heads.retina import RetinaNetHead
