"""The DCNv2 rows: ppdet 2.6.0's parameter counts (../shared/reference/PADDLE.md) plus the static
zoo's 81-way R-CNN heads (+4,100 for an FPN box head, +257 for a mask head), and the deformable
convs exactly where the zoo puts them (each bottleneck's 3x3 conv in res3-res5; res5 only for
YOLOv3 R50-vd-DCN)."""
import pytest

from tfdet import models
from tfdet.layers import DeformableConv2D
from tfdet.layers.norm import count_params_without_norm_statistics as count

BOX, MASK = 4_100, 257
PPDET = {
    "faster_rcnn_dcn_r50_fpn_1x": 42_624_319 + BOX,
    "faster_rcnn_dcn_r50_vd_fpn_2x": 42_643_551 + BOX,
    "faster_rcnn_dcn_r101_vd_fpn_1x": 62_693_674 + BOX,
    "faster_rcnn_dcn_x101_vd_64x4d_fpn_1x": 107_385_130 + BOX,
    "mask_rcnn_dcn_r50_fpn_1x": 45_267_599 + BOX + MASK,
    "mask_rcnn_dcn_r50_vd_fpn_2x": 45_286_831 + BOX + MASK,
    "mask_rcnn_dcn_r101_vd_fpn_1x": 65_336_954 + BOX + MASK,
    "mask_rcnn_dcn_x101_vd_64x4d_fpn_1x": 110_028_410 + BOX + MASK,
    "yolov3_r50vd_dcn": 45_952_942,
}


@pytest.mark.parametrize("name", sorted(PPDET))
def test_dcn_rows_have_ppdet_counts_and_deformable_convs_where_the_zoo_has_them(name):
    model = models.get(name)
    assert count(model) == PPDET[name]
    deformable = {layer.name for layer in model.network.layers
                  if isinstance(layer, DeformableConv2D)}
    stages = (5,) if name.startswith("yolov3") else (3, 4, 5)
    blocks = {3: 4, 4: 23 if "101" in name else 6, 5: 3}
    assert deformable == {f"res{s}_{b}_b_conv" for s in stages for b in range(blocks[s])}


def test_dcn_on_a_c4_row_is_refused():
    with pytest.raises(ValueError, match="FPN rows only"):
        models.get("faster_rcnn_r50_1x", dcn_stages=(3, 4))
