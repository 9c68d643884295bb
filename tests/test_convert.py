"""Converters of released SETR checkpoints.

Official code: the fixtures in setr_edu/convert/official_setr were saved by fudan-zvg/SETR's own model code (see
their README); the converted setr_edu model must reproduce their main and auxiliary logits. mmsegmentation: a
hand-written stand-in with mmsegmentation's module names (tests/mmseg_reference.py) provides the keys and the
expected logits.
"""

import pytest
import torch

import setr_edu
from mmseg_reference import EncoderDecoder, randomize
from setr_edu.convert import (load_mmseg_setr, load_official_setr, official_stand_ins, read_checkpoint,
                              to_mmseg_state_dict)

FIX = official_stand_ins()  # setr_edu/convert/official_setr (package data)
VARIANTS = ["naive", "pup", "mla", "pup_deit"]


def fixture(variant):
    io = torch.load(FIX / f"{variant}_io.pt", weights_only=True)
    return FIX / f"{variant}.pth", io


def max_diffs(model, io):
    with torch.no_grad():
        logits, aux = model(io["input"], with_aux=True)
    assert len(aux) == len(io["aux_logits"])
    return (logits - io["logits"]).abs().max().item(), [(a - b).abs().max().item() for a, b in zip(aux, io["aux_logits"])]


@pytest.mark.parametrize("variant", VARIANTS)
def test_official_fixture_logits(variant):
    path, io = fixture(variant)
    model = load_official_setr(path, num_heads=io["config"]["num_heads"])
    main, aux = max_diffs(model, io)
    assert main <= 1e-5 and max(aux) <= 1e-5, (main, aux)
    report = model.conversion_report
    cfg = io["config"]
    assert report.inferred["depth"] == cfg["depth"] and report.inferred["num_classes"] == cfg["num_classes"]
    # exactly the unused conv_seg layers are dropped: one per head
    assert sorted(report.dropped) == sorted(f"{p}.conv_seg.{w}" for p in ["decode_head"] + [
        f"auxiliary_head.{i}" for i in range(len(io["aux_logits"]))] for w in ("weight", "bias"))
    assert "conv_seg" in str(report) and not report.zero_filled


@pytest.mark.parametrize("variant", VARIANTS)
def test_official_bare_state_dict_uses_the_official_taps(variant):
    """Without meta['config'] (e.g. a re-saved state dict) the taps of the official configs for that depth apply."""
    path, io = fixture(variant)
    sd, _ = read_checkpoint(path)
    model = load_official_setr({"state_dict": sd}, num_heads=4)
    main, aux = max_diffs(model, io)
    assert main <= 1e-5 and max(aux) <= 1e-5
    assert "official configs' taps" in str(model.conversion_report)


def test_official_fixtures_catch_wrong_taps():
    """The fixtures are sensitive: reading the MLA taps one layer off changes the logits a lot."""
    path, io = fixture("mla")
    model = load_official_setr(path, mla_taps=(5, 11, 17, 23))
    assert max_diffs(model, io)[0] > 0.05


def test_official_num_heads_from_meta_and_width():
    path, _ = fixture("naive")
    assert "from the checkpoint's config" in str(load_official_setr(path).conversion_report)
    sd, _ = read_checkpoint(path)
    with pytest.raises(ValueError, match="pass num_heads="):  # width 16: no standard head width to assume
        load_official_setr(sd)


def test_official_errors_and_options(tmp_path):
    path, io = fixture("pup")
    with pytest.raises(ValueError, match="holds a SETR-pup"):
        load_official_setr(path, decoder="mla")
    sd, meta = read_checkpoint(path)
    extra = {"meta": meta, "state_dict": {**sd, "backbone.dist_token": torch.zeros(1, 1, 16)}}
    with pytest.raises(ValueError, match=r"no place in the setr_edu model.*backbone.dist_token"):
        load_official_setr(extra)
    report = load_official_setr(extra, strict=False).conversion_report
    assert report.dropped["backbone.dist_token"].startswith("unknown")
    # aux=False: the heads are gone and the report says why
    model = load_official_setr(path, aux=False)
    assert len(model.auxiliary_heads) == 0
    assert sum("aux=False" in why for why in model.conversion_report.dropped.values()) > 10
    torch.testing.assert_close(model(io["input"]), io["logits"], atol=1e-5, rtol=0)
    # a truncated download is refused with a clear message
    broken = tmp_path / "broken.pth"
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="download it again"):
        load_official_setr(broken)
    with pytest.raises(ValueError, match="not an official SETR checkpoint"):
        load_official_setr({"state_dict": {"backbone.cls_token": torch.zeros(1, 1, 16)}})


def test_official_other_training_size_resizes_pos_embed():
    path, _ = fixture("naive")
    model = load_official_setr(path, img_size=128)
    assert model.encoder.pos_embed.shape == (1, 1 + 64, 16)
    assert "pos_embed resized (4, 4) -> (8, 8)" in str(model.conversion_report)
    assert model(torch.randn(1, 3, 128, 128)).shape == (1, 5, 128, 128)


def test_public_api_exports():
    assert setr_edu.load_official_setr is load_official_setr and setr_edu.load_mmseg_setr is load_mmseg_setr


# --- mmsegmentation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["naive", "pup", "mla"])
@pytest.mark.parametrize("size", [(64, 64), (96, 64)])
def test_mmseg_matches_reference_forward(kind, size):
    ref = randomize(EncoderDecoder(kind), seed=1)
    model = load_mmseg_setr(ref.state_dict(), num_heads=4)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected, expected_aux = ref(x)
        logits, aux = model(x, with_aux=True)
    if kind == "mla":  # mmsegmentation's aux head N reads its neck output N, which lists the levels deepest first
        aux = aux[::-1]
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    for a, b in zip(aux, expected_aux, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["naive", "pup", "mla"])
def test_mmseg_round_trip(kind):
    sd = randomize(EncoderDecoder(kind), seed=2).state_dict()
    model = load_mmseg_setr(sd, num_heads=4)
    back = to_mmseg_state_dict(model)
    assert set(back) == set(sd)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
    again = load_mmseg_setr(back, num_heads=4)  # setr_edu -> mmseg -> setr_edu
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    assert model.conversion_report.zero_filled == [k for k in model.state_dict() if ".convs." in k
                                                    and k.endswith(".0.bias")]


def test_mmseg_key_names_are_mmsegmentations():
    sd = randomize(EncoderDecoder("mla")).state_dict()
    for key in ("backbone.layers.3.attn.attn.in_proj_weight", "backbone.layers.3.ffn.layers.0.0.weight",
                "backbone.patch_embed.projection.weight", "neck.mla.channel_proj.0.bn.running_var",
                "neck.mla.feat_extract.3.conv.weight", "decode_head.up_convs.2.1.bn.weight",
                "auxiliary_head.3.conv_seg.bias"):
        assert key in sd
    model = load_mmseg_setr(sd, num_heads=4)
    # the deepest level is first in mmsegmentation's neck: feat_extract.0 smooths setr_edu's last stream
    assert torch.equal(model.neck.smooth[3][0].weight, sd["neck.mla.feat_extract.0.conv.weight"])


def test_mmseg_taps_from_meta_and_errors():
    sd = randomize(EncoderDecoder("naive", depth=12)).state_dict()
    with pytest.raises(ValueError, match="no SETR config for a 12-layer encoder"):
        load_mmseg_setr(sd, num_heads=4)
    meta = {"config": "model = dict(backbone=dict(num_heads=4, out_indices=(4, 7, 9, 11)), decode_head="
                      "dict(in_index=3), auxiliary_head=[dict(in_index=0), dict(in_index=1), dict(in_index=2)])"}
    model = load_mmseg_setr({"meta": meta, "state_dict": sd})
    assert (model.decoder.main_tap, model.decoder.aux_taps) == (12, (5, 8, 10))
    with pytest.raises(ValueError, match="not an mmsegmentation SETR checkpoint"):
        load_mmseg_setr(read_checkpoint(FIX / "pup.pth")[0])
    model = load_mmseg_setr(randomize(EncoderDecoder("pup")).state_dict(), num_heads=4)
    model.decode_head.convs[0][0].bias.data.fill_(1.0)
    with pytest.raises(ValueError, match="has no such tensor"):
        to_mmseg_state_dict(model)


def test_num_heads_assumed_from_width_is_reported():
    """Without meta['config'], width 64 -> 1 head of width 64 (ViT-B/L, DeiT-B convention); the report says so."""
    ref = randomize(EncoderDecoder("naive", D=64, heads=1), seed=4)
    model = load_mmseg_setr(ref.state_dict())
    assert "num_heads = 1 (assumed: head width 64" in str(model.conversion_report)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x)[0], atol=1e-5, rtol=0)


def test_checkpoint_with_numpy_meta_loads_and_code_is_refused(tmp_path):
    """mmcv training checkpoints may carry numpy values in meta: allowed; any other Python object is refused."""
    import numpy as np

    sd, meta = read_checkpoint(FIX / "naive.pth")
    path = tmp_path / "np.pth"
    torch.save({"meta": {**meta, "seed": np.int64(3), "palette": np.array([[1, 2, 3]])}, "state_dict": sd}, path)
    assert load_official_setr(path).conversion_report.loaded == 336
    torch.save({"meta": {"hook": torch.nn.ReLU()}, "state_dict": sd}, tmp_path / "obj.pth")
    with pytest.raises(ValueError, match="refused, nothing in it was run"):
        read_checkpoint(tmp_path / "obj.pth")


def test_a_setr_edu_checkpoint_is_pointed_to_the_right_loader():
    model = setr_edu.build_setr("naive", "tiny", depth=2, num_classes=3, img_size=32)
    for load in (load_official_setr, load_mmseg_setr):
        with pytest.raises(ValueError, match="setr_edu checkpoint already"):
            load({"model": model.state_dict()})
