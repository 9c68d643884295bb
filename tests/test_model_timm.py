"""setr_edu's encoder equals timm's ViT, block for block, when both hold the same weights (issue 2).

timm models are created with ``pretrained=False`` (nothing downloads) and every parameter is perturbed so that
zero-initialised biases and unit LayerNorm weights cannot hide a wrongly mapped tensor.
"""
import pytest
import timm
import torch

from setr_edu import ViTEncoder, encoder_config, load_timm_weights
from setr_edu.model.encoder import resize_pos_embed

ATOL = 1e-4  # fp32; timm-vs-reimplementation differences are ~3e-6 (reference §1.3)


def perturbed_timm(name: str, **kw) -> torch.nn.Module:
    model = timm.create_model(name, pretrained=False, num_classes=0, **kw).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def vit_b384():
    return perturbed_timm("vit_base_patch16_384")


def timm_blocks(model, x):
    with torch.no_grad():
        return model.forward_intermediates(x, norm=False, intermediates_only=True, output_fmt="NCHW")


def assert_blocks_equal(ours, theirs):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, f"block {i}: {a.shape} vs {b.shape}"
        diff = (a - b).abs().max().item()
        assert diff < ATOL, f"block {i} differs from timm by {diff:.2e}"


def test_vit_base_384_equals_timm_every_block(vit_b384):
    enc = ViTEncoder(encoder_config("base"), img_size=384).eval()
    report = load_timm_weights(enc, vit_b384)
    assert report.missing == [] and report.unexpected == [] and report.pos_embed_resized is None
    assert set(report.dropped) == {"norm.weight", "norm.bias"}  # SETR has no final LayerNorm
    x = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        ours = enc(x)
    assert_blocks_equal(ours, timm_blocks(vit_b384, x))
    assert ours[-1].shape == (1, 768, 24, 24)


@pytest.mark.parametrize("size", [(512, 512), (384, 512)])
def test_other_resolution_matches_timm_dynamic_img_size(vit_b384, size):
    """At 512 (and a non-square input), timm resamples pos-embed with bicubic+antialias; so does ours in 'bicubic' mode."""
    dyn = perturbed_timm("vit_base_patch16_384", dynamic_img_size=True)
    dyn.load_state_dict(vit_b384.state_dict())
    x = torch.randn(1, 3, *size)
    expected = timm_blocks(dyn, x)
    # (a) built at 384, resized on the fly at forward time
    enc = ViTEncoder(encoder_config("base"), img_size=384, pos_resize="bicubic").eval()
    load_timm_weights(enc, vit_b384)
    with torch.no_grad():
        assert_blocks_equal(enc(x), expected)
    # (b) built at the target size: the loader resizes once (SETR's way), same numbers
    enc_b = ViTEncoder(encoder_config("base"), img_size=size, pos_resize="bicubic").eval()
    rep = load_timm_weights(enc_b, vit_b384)
    assert rep.pos_embed_resized == ((24, 24), (size[0] // 16, size[1] // 16))
    with torch.no_grad():
        assert_blocks_equal(enc_b(x), expected)


def test_bilinear_pos_resize_is_setr_not_timm(vit_b384):
    """SETR's bilinear resize is a different function from timm's bicubic one: results must differ."""
    pe = vit_b384.pos_embed.detach()
    bil = resize_pos_embed(pe, (24, 24), (32, 32), mode="bilinear")
    bic = resize_pos_embed(pe, (24, 24), (32, 32), mode="bicubic")
    assert bil.shape == bic.shape == (1, 1 + 32 * 32, 768)
    assert torch.equal(bil[:, 0], pe[:, 0]) and torch.equal(bic[:, 0], pe[:, 0])  # class token untouched
    assert (bil - bic).abs().max() > 1e-3
    manual = torch.nn.functional.interpolate(
        pe[:, 1:].reshape(1, 24, 24, 768).permute(0, 3, 1, 2), size=(32, 32), mode="bilinear", align_corners=False
    ).permute(0, 2, 3, 1).reshape(1, 1024, 768)
    torch.testing.assert_close(bil[:, 1:], manual)


def test_small_preset_loads_vit_small_and_tiny():
    for preset, name in [("small", "vit_small_patch16_224"), ("tiny", "vit_tiny_patch16_224")]:
        ref = perturbed_timm(name)
        enc = ViTEncoder(encoder_config(preset, depth=12), img_size=224).eval()
        load_timm_weights(enc, ref.state_dict())
        x = torch.randn(1, 3, 224, 224)
        with torch.no_grad():
            assert_blocks_equal(enc(x), timm_blocks(ref, x))


def test_loader_rejects_other_architectures():
    ref = perturbed_timm("vit_tiny_patch16_224")
    with pytest.raises(ValueError, match="12 transformer blocks but the encoder has 4"):
        load_timm_weights(ViTEncoder(encoder_config("tiny", depth=4), img_size=224), ref)
    with pytest.raises(ValueError, match="checkpoint is 192 wide but the encoder is 384 wide"):
        load_timm_weights(ViTEncoder(encoder_config("small"), img_size=224), ref)
    with pytest.raises(ValueError, match="shape mismatch for 'patch_embed.proj.weight'"):
        load_timm_weights(ViTEncoder(encoder_config("tiny", patch_size=8), img_size=224), ref)
    sd = {k: v for k, v in ref.state_dict().items() if not k.startswith("blocks.3.attn.")}
    with pytest.raises(ValueError, match="lacks 4 encoder tensor"):
        load_timm_weights(ViTEncoder(encoder_config("tiny"), img_size=224), sd)


def test_loader_accepts_wrapped_official_checkpoints():
    ref = perturbed_timm("vit_tiny_patch16_224")
    enc = ViTEncoder(encoder_config("tiny"), img_size=224)
    wrapped = {"state_dict": {"module." + k: v for k, v in ref.state_dict().items()}}
    report = load_timm_weights(enc, wrapped)
    assert not report.missing and not report.unexpected
    torch.testing.assert_close(enc.blocks[5].attn.qkv.weight, ref.blocks[5].attn.qkv.weight)


def test_download_paper_weights_from_url_hash_checked_no_silent_fallback(tmp_path, monkeypatch):
    """The real download path, pointed at a local file: hash-checked, cached, then loadable. A corrupted file is
    refused and deleted; another checkpoint is never substituted unless asked for by name."""
    import hashlib

    from setr_edu.model import pretrained

    ref = perturbed_timm("vit_tiny_patch16_224")
    raw = tmp_path / "raw.pth"
    torch.save(ref.state_dict(), raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    served = tmp_path / f"vit_tiny-{digest[:8]}.pth"  # the release convention: the hash prefix in the name
    raw.rename(served)
    monkeypatch.setitem(pretrained.PAPER_WEIGHTS, "tiny", dict(url=served.as_uri(), sha256=None,
                                                             timm="vit_tiny_patch16_224", note=""))
    sd, source = pretrained.paper_weights("tiny", cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / served.name).exists() and f"prefix {digest[:8]} verified" in source
    enc = ViTEncoder(encoder_config("tiny"), img_size=224)
    report = load_timm_weights(enc, sd, source=source)
    assert not report.missing and str(report).startswith(served.name)
    # the full hash, when pinned, is checked too
    monkeypatch.setitem(pretrained.PAPER_WEIGHTS["tiny"], "sha256", digest)
    assert "full SHA-256 verified" in pretrained.paper_weights("tiny", cache_dir=tmp_path / "cache")[1]
    monkeypatch.setitem(pretrained.PAPER_WEIGHTS["tiny"], "sha256", "0" * 64)
    with pytest.raises(ValueError, match="does not have the expected SHA-256"):
        pretrained.paper_weights("tiny", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / served.name).exists()  # the bad file is gone

    # a corrupted download fails the prefix check; no fallback to timm happens
    monkeypatch.setitem(pretrained.PAPER_WEIGHTS["tiny"], "sha256", None)
    served.write_bytes(b"not a checkpoint")
    fake = perturbed_timm("vit_tiny_patch16_224")
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: pytest.fail("silent fallback to timm"))
    with pytest.raises(ValueError, match="expected SHA-256"):
        pretrained.paper_weights("tiny", cache_dir=tmp_path / "cache2")
    # an unreachable file: a clear error that names the opt-in substitute
    monkeypatch.setitem(pretrained.PAPER_WEIGHTS["tiny"], "url", (tmp_path / "gone-12345678.pth").as_uri())
    with pytest.raises(FileNotFoundError, match=r"could not download.*pretrained='timm:vit_tiny_patch16_224'"):
        pretrained.paper_weights("tiny", cache_dir=tmp_path / "cache3")
    # asked for by name, the substitute is used and the source says so
    monkeypatch.setattr(timm, "create_model", lambda name, pretrained=False: fake)
    sd, source = pretrained.paper_weights("timm:vit_tiny_patch16_224")
    assert sd["pos_embed"].shape == (1, 197, 192) and "named substitute" in source


def test_deit_distilled_weights_load_as_the_official_code_loads_them():
    """DeiT (distilled): SETR's ViT has one prefix token, so dist_token and pos_embed[:, 1] are dropped."""
    deit = perturbed_timm("deit_tiny_distilled_patch16_224")
    sd = deit.state_dict()
    assert sd["pos_embed"].shape == (1, 2 + 196, 192)
    enc = ViTEncoder(encoder_config("tiny"), img_size=224)
    report = load_timm_weights(enc, {"model": sd})  # the DeiT release files wrap the weights in {"model": ...}
    assert report.distillation_dropped and "distillation token" in str(report)
    assert "dist_token" in report.dropped and not report.missing and not report.unexpected
    torch.testing.assert_close(enc.pos_embed[:, :1], sd["pos_embed"][:, :1])
    torch.testing.assert_close(enc.pos_embed[:, 1:], sd["pos_embed"][:, 2:])
    # at another size, the patch entries are resized (bilinear, as in the official code), the class entry kept
    enc384 = ViTEncoder(encoder_config("tiny"), img_size=384)
    load_timm_weights(enc384, sd)
    grid = sd["pos_embed"][:, 2:].reshape(1, 14, 14, 192).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(24, 24), mode="bilinear", align_corners=False)
    torch.testing.assert_close(enc384.pos_embed[:, 1:], expected.flatten(2).transpose(1, 2))
