"""Checkpoints from any mmsegmentation (0.x or >= 1.2 without the patch-embedding bias, mmcv or mmengine config
text) and evaluation that follows the code a checkpoint came from."""

import pytest
import torch

from mmseg_reference import EncoderDecoder, randomize
from setr_edu.convert import (load_mmseg_setr, load_official_setr, official_stand_ins, read_checkpoint,
                              to_mmseg_state_dict)
from setr_edu.engine.inference import convention, predict, slide_inference, too_big_for_whole, whole_inference

FIX = official_stand_ins()  # tiny checkpoints written by the official code, shipped with the package


@pytest.mark.parametrize("kind", ["naive", "mla"])
def test_mmseg_without_patch_bias_loads_and_matches(kind):
    """mmsegmentation >= 1.2.0 builds its ViT with patch_bias=False: no 'projection.bias' in the checkpoint."""
    ref = randomize(EncoderDecoder(kind, patch_bias=False), seed=3)
    sd = ref.state_dict()
    assert "backbone.patch_embed.projection.bias" not in sd
    model = load_mmseg_setr(sd, num_heads=4)
    report = model.conversion_report
    assert report.inferred["patch_bias"] is False and "patch_bias=False" in str(report)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x)[0], atol=1e-5, rtol=0)
    back = to_mmseg_state_dict(model)  # as the checkpoint was: loads strictly into today's config
    assert set(back) == set(sd)
    ref.load_state_dict(back, strict=True)
    with_bias = to_mmseg_state_dict(model, patch_bias=True)  # into an mmseg 0.x-1.1 config
    assert torch.equal(with_bias["backbone.patch_embed.projection.bias"], torch.zeros(32))


def test_patch_bias_that_is_not_zero_cannot_be_dropped():
    model = load_mmseg_setr(randomize(EncoderDecoder("naive"), seed=4).state_dict(), num_heads=4)
    assert model.conversion_report.inferred["patch_bias"] is True
    assert "backbone.patch_embed.projection.bias" in to_mmseg_state_dict(model)
    with pytest.raises(ValueError, match="patch_bias=False"):
        to_mmseg_state_dict(model, patch_bias=False)


# mmengine's pretty text: keys sorted, so the auxiliary heads come before the decode head.
MMENGINE_CFG = """default_scope = 'mmseg'
model = dict(
    auxiliary_head=[
        dict(in_index=0, type='SETRUPHead'),
        dict(in_index=1, type='SETRUPHead'),
        dict(in_index=2, type='SETRUPHead'),
    ],
    backbone=dict(num_heads=4, out_indices=(
        4,
        7,
        9,
        11,
    ), patch_bias=False, type='VisionTransformer'),
    decode_head=dict(in_index=3, type='SETRUPHead'),
    type='EncoderDecoder')
norm_cfg = dict(requires_grad=True, type='SyncBN')
"""


def test_taps_from_mmengine_cfg_with_sorted_keys():
    sd = randomize(EncoderDecoder("naive", depth=12)).state_dict()
    model = load_mmseg_setr({"meta": {"cfg": MMENGINE_CFG}, "state_dict": sd})
    assert (model.decoder.main_tap, model.decoder.aux_taps) == (12, (5, 8, 10))
    assert "num_heads" in str(model.conversion_report) and model.encoder.blocks[0].attn.num_heads == 4


def test_official_taps_from_the_config_structure_not_its_text_order():
    """The official fixture's config re-written with the auxiliary heads first gives the same taps and logits."""
    sd, meta = read_checkpoint(FIX / "naive.pth")
    io = torch.load(FIX / "naive_io.pt", weights_only=True)
    text = meta["config"]
    start = text.index("model = ")
    import ast

    tree = ast.parse(text[start:].split("\n")[0])
    d = ast.literal_eval(tree.body[0].value)
    reordered = {"auxiliary_head": d["auxiliary_head"], **{k: v for k, v in d.items() if k != "auxiliary_head"}}
    model = load_official_setr({"meta": {"cfg": f"model = {reordered!r}\n"}, "state_dict": sd})
    assert (model.decoder.main_tap, model.decoder.aux_taps) == (24, (10, 15, 20))
    with torch.no_grad():
        assert (model(io["input"]) - io["logits"]).abs().max() < 1e-5


def test_config_text_is_parsed_never_run(tmp_path):
    marker = tmp_path / "pwned"
    sd = randomize(EncoderDecoder("naive", depth=12)).state_dict()
    cfg = f"import os\nos.system('touch {marker}')\nmodel = dict(backbone=dict(num_heads=__import__('os').getpid()))\n"
    with pytest.raises(ValueError, match="no SETR config for a 12-layer encoder"):
        load_mmseg_setr({"meta": {"cfg": cfg}, "state_dict": sd}, num_heads=4)
    assert not marker.exists()


class _Constant(torch.nn.Module):
    """Logits that depend on where a pixel sits in the window: padding vs shrinking shows."""

    def forward(self, x):
        h, w = x.shape[-2:]
        across = torch.linspace(0, 1, w).expand(x.shape[0], 1, h, w)
        down = torch.linspace(0, 1, h)[:, None].expand(x.shape[0], 1, h, w)
        return torch.cat([across, down, x[:, :1]], dim=1)


def test_small_windows_follow_the_checkpoint_code():
    model = _Constant()
    x = torch.randn(1, 3, 64, 176)
    padded = slide_inference(model, x, crop=96, stride=64, small="pad")
    shrunk = slide_inference(model, x, crop=96, stride=64, small="shrink")
    assert padded.shape == shrunk.shape == (1, 3, 64, 176)
    assert not torch.allclose(padded, shrunk)
    # mmsegmentation's window is clipped to the image: 64 rows, 96 columns, nothing padded
    manual = torch.zeros(1, 3, 64, 176)
    count = torch.zeros(1, 1, 64, 176)
    for x0 in (0, 64, 80):
        manual[..., x0:x0 + 96] += model(x[..., x0:x0 + 96])
        count[..., x0:x0 + 96] += 1
    torch.testing.assert_close(shrunk, manual / count)
    with pytest.raises(ValueError, match="official SETR"):
        slide_inference(model, x, 96, 64, small="crop")


def test_conventions():
    assert convention("official", 512, (0.5, 1.0)) == {"min_size": 512, "small": "pad"}
    assert convention("official", 512, (1.0,)) == {"min_size": None, "small": "pad"}
    assert convention("mmseg", 512, (0.5, 1.0)) == {"min_size": None, "small": "shrink"}
    with pytest.raises(ValueError):
        convention("timm", 512, (1.0,))
    x = torch.randn(1, 3, 40, 60)
    p = predict(_Constant(), x, "slide", 96, 64, scales=(0.5, 1.0), **convention("mmseg", 96, (0.5, 1.0)))
    assert p.shape == (1, 3, 40, 60)


def test_released_recipes_carry_their_convention():
    from setr_edu.released import RELEASED, released_recipe

    for entry in RELEASED.values():
        assert released_recipe(entry).eval_convention == entry.source


def test_big_images_are_not_run_whole():
    assert too_big_for_whole(4000, 6000, 512) and not too_big_for_whole(512, 683, 512)
    assert whole_inference(_Constant(), torch.randn(1, 3, 32, 48)).shape == (1, 3, 32, 48)
