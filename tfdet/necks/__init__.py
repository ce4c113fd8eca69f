"""Necks: multi-scale feature fusion."""
from tfdet.necks.fpn import fpn
