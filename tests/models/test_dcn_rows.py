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


# GroupNorm rows (ppdet 2.x gn/*.yml): GN after every FPN conv (no conv bias), the 4conv1fc
# box head (4 GN convs, 1 fc) and GN in the mask head's convs; the backbone keeps its norm.
GN_ROWS = {
    "faster_rcnn_r50_fpn_gn_2x": 43_066_848 + BOX,
    "mask_rcnn_r50_fpn_gn_2x": 45_711_152 + BOX + MASK,
    "cascade_rcnn_r50_fpn_gn_2x": 73_332_046 + 3 * BOX,
    "cascade_mask_rcnn_r50_fpn_gn_2x": 75_976_350 + 3 * BOX + MASK,
}


@pytest.mark.parametrize("name", sorted(GN_ROWS))
def test_gn_rows_have_ppdet_counts_and_group_norm_where_ppdet_has_it(name):
    import keras
    model = models.get(name, build_size=64)
    assert count(model) == GN_ROWS[name]
    fpn_norms = [layer for layer in model.network.layers if layer.name.startswith("fpn_")
                 and isinstance(layer, keras.layers.GroupNormalization)]
    assert len(fpn_norms) == 8  # 4 lateral + 4 output convs (P6 is a max pool)
    backbone_norms = {type(layer).__name__ for layer in model.network.layers
                      if layer.name.startswith("res") and "norm" in layer.name}
    assert "GroupNormalization" not in backbone_norms
    for head in model.roi_heads.box_heads:
        assert (head.num_convs, head.num_fc, head.norm) == (4, 1, "gn")
        assert not any(getattr(layer, "use_bias", False) for layer in head.convs.layers)
    if "mask" in name:
        assert model.mask_head.norm == "gn"


def test_dcn_on_a_c4_row_goes_where_the_backbone_is():
    """A C4 model's backbone ends at res4 (res5 is its box head): DCN in res3-res4 builds
    (R50: a deformable 3x3 conv in each of res3's 4 and res4's 6 blocks); DCN asked in res5
    is refused, naming the reason."""
    with pytest.raises(ValueError, match="ends at stage 4"):
        models.get("faster_rcnn_r50_1x", dcn_stages=(3, 4, 5), build_size=64)
    model = models.get("faster_rcnn_r50_1x", dcn_stages=(3, 4), build_size=64)
    deformable = [layer.name for layer in model.network.layers
                  if isinstance(layer, DeformableConv2D)]
    assert len(deformable) == 4 + 6
    assert {name.split("_")[0] for name in deformable} == {"res3", "res4"}
