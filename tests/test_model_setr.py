"""SETR assembly: the paper's parameter counts to the parameter, shapes, gradients, learning, errors (issue 2)."""
import pytest
import torch
import torch.nn.functional as F

from setr_edu import PatchEmbedding, build_setr, encoder_config
from setr_edu.model.attention import MultiHeadSelfAttention

# ADE20K setting (150 classes, 512x512, aux heads included), without the official code's unused
# Conv2d(512, K, 1) per head (``conv_seg`` of mmseg 0.6's BaseDecodeHead, which fudan-zvg/SETR ships).
EXACT = {
    ("naive", "large"): 305_361_496, ("pup", "large"): 317_922_542, ("mla", "large"): 310_184_086,
    ("naive", "base"): 87_382_872, ("pup", "base"): 97_256_430, ("mla", "base"): 92_205_462,
}
PAPER_MILLIONS = {  # paper Tables 2/4
    ("naive", "large"): 305.67, ("pup", "large"): 318.31, ("mla", "large"): 310.57,
    ("naive", "base"): 87.69, ("pup", "base"): 97.64, ("mla", "base"): 92.59,
}
NUM_HEADS = {"naive": 4, "pup": 5, "mla": 5}  # main + aux heads
TOY = dict(encoder="tiny", depth=4, embed_dim=64, num_heads=2, decoder_channels=16)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("decoder,encoder", list(EXACT))
def test_paper_parameter_counts(decoder, encoder):
    with torch.device("meta"):  # no memory, no init time: only shapes
        model = build_setr(decoder, encoder, num_classes=150, img_size=512, aux=True)
    assert n_params(model) == EXACT[decoder, encoder]
    unused_official = NUM_HEADS[decoder] * (512 * 150 + 150)  # Conv2d(512, K, 1) with bias, per head
    assert n_params(model) + unused_official == 76_950 * NUM_HEADS[decoder] + EXACT[decoder, encoder]
    assert round((n_params(model) + unused_official) / 1e6, 2) == PAPER_MILLIONS[decoder, encoder]


def test_backbone_alone_matches_spec():
    with torch.device("meta"):
        m = build_setr("naive", "large", img_size=512)
    assert n_params(m.encoder) == 304_147_456  # ViT-L/16 with a 1025-entry pos-embed: 304.15M at 512
    with torch.device("meta"):
        m = build_setr("naive", "large", img_size=768)
    assert round(n_params(m.encoder) / 1e6, 2) == 305.46


@pytest.mark.parametrize("decoder", ["naive", "pup", "mla"])
@pytest.mark.parametrize("size", [(64, 64), (96, 64), (48, 112)])
def test_output_shapes_with_and_without_aux(decoder, size):
    model = build_setr(decoder, num_classes=7, img_size=64, patch_size=16, **TOY).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out = model(x)
        out2, aux = model(x, with_aux=True)
    assert out.shape == (2, 7, *size)
    torch.testing.assert_close(out, out2)
    expected_aux = {"naive": 2, "pup": 3, "mla": 4}[decoder]  # toy depth 4: scaled taps (see config.py)
    assert len(aux) == expected_aux and all(a.shape == (2, 7, *size) for a in aux)
    no_aux = build_setr(decoder, num_classes=7, img_size=64, aux=False, patch_size=16, **TOY)
    assert len(no_aux.auxiliary_heads) == 0 and no_aux(x, with_aux=True)[1] == []


def test_official_taps_for_paper_encoders():
    with torch.device("meta"):
        pup_l, mla_l = build_setr("pup", "large"), build_setr("mla", "large")
        naive_b, pup_b = build_setr("naive", "base"), build_setr("pup", "base")
    assert (pup_l.decoder.main_tap, pup_l.decoder.aux_taps) == (24, (10, 15, 20, 24))
    assert mla_l.decoder.mla_taps == (6, 12, 18, 24) and not mla_l.encoder.keep_cls_token
    assert (naive_b.decoder.main_tap, naive_b.decoder.aux_taps) == (12, (3, 6, 9))
    assert pup_b.decoder.aux_taps == (5, 8, 10, 12) and pup_l.encoder.keep_cls_token


@pytest.mark.parametrize("decoder", ["naive", "pup", "mla"])
def test_gradients_reach_every_used_parameter(decoder):
    model = build_setr(decoder, num_classes=5, img_size=32, patch_size=16, **TOY).train()
    logits, aux = model(torch.randn(2, 3, 32, 48), with_aux=True)
    (logits.square().mean() + sum(a.square().mean() for a in aux)).backward()
    # MLA drops the class token (and its position embedding) before the first block: unused by design.
    unused = {"encoder.cls_token"} if decoder == "mla" else set()
    for name, p in model.named_parameters():
        if name in unused:
            assert p.grad is None or p.grad.abs().max() == 0, name
            continue
        assert p.grad is not None and p.grad.abs().max() > 0, f"no gradient reaches {name}"
    if decoder == "mla":
        assert model.encoder.pos_embed.grad[0, 0].abs().max() == 0 and model.encoder.pos_embed.grad[0, 1:].abs().max() > 0


def test_mla_encoder_runs_without_class_token():
    model = build_setr("mla", num_classes=3, img_size=32, patch_size=16, **TOY).eval()
    tokens, grid = model.encoder.embed(torch.randn(1, 3, 32, 32))
    assert tokens.shape == (1, 4, 64) and grid == (2, 2)  # 4 patch tokens, no class token
    pup = build_setr("pup", num_classes=3, img_size=32, patch_size=16, **TOY)
    assert pup.encoder.embed(torch.randn(1, 3, 32, 32))[0].shape == (1, 5, 64)


def test_tiny_setr_overfits_one_batch():
    """A 3-class toy where the class of a pixel is its colour: a tiny SETR must fit it.

    Labels come in 4x4 blocks aligned with the 4x4 patches; bilinear upsampling of the logits blurs block borders,
    so accuracy saturates a little below 1.
    """
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 3, (4, 4, 4), generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
    colours = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    x = colours[label].permute(0, 3, 1, 2) + 0.1 * torch.randn(4, 3, 16, 16, generator=g)  # (4, 3, 16, 16)
    model = build_setr("naive", num_classes=3, img_size=16, patch_size=4, **TOY)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        logits, aux = model(x, with_aux=True)
        loss = F.cross_entropy(logits, label) + 0.4 * sum(F.cross_entropy(a, label) for a in aux)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == label).float().mean().item()
    assert losses[-1] < 0.25 * losses[0] and acc > 0.9, (losses[0], losses[-1], acc)


def test_patch_embedding_conv_equals_unfold_linear():
    pe = PatchEmbedding(patch_size=8, in_chans=3, embed_dim=32)
    x = torch.randn(2, 3, 32, 48)
    out = pe(x)
    assert out.shape == (2, 4 * 6, 32)
    torch.testing.assert_close(out, pe.forward_unfold(x), atol=1e-5, rtol=1e-5)
    # row-major patch order: token 1 is the patch right of token 0
    manual = x[0, :, 0:8, 8:16].reshape(-1) @ pe.proj.weight.flatten(1).T + pe.proj.bias
    torch.testing.assert_close(out[0, 1], manual, atol=1e-5, rtol=1e-5)


def test_explicit_and_fused_attention_agree():
    attn = MultiHeadSelfAttention(64, 4)
    x = torch.randn(2, 50, 64)
    fused = attn(x)
    explicit, weights = attn(x, return_attention=True)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    assert weights.shape == (2, 4, 50, 50)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 50))
    attn.fused = False
    torch.testing.assert_close(attn(x), explicit)


def test_grad_checkpointing_gives_same_gradients():
    model = build_setr("naive", num_classes=3, img_size=32, patch_size=16, **TOY).train()
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for ckpt in (False, True):
        model.zero_grad()
        model.encoder.grad_checkpointing = ckpt
        model(x).sum().backward()
        grads.append(model.encoder.blocks[0].attn.qkv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_clear_errors_on_bad_input():
    model = build_setr("naive", num_classes=3, img_size=32, patch_size=16, **TOY)
    with pytest.raises(ValueError, match="expected 3 input channels, got 1.*grayscale"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="channels-last"):
        model(torch.randn(1, 32, 32, 3))
    with pytest.raises(ValueError, match="not a multiple of the patch size 16; resize or pad it to 48x32"):
        model(torch.randn(1, 3, 40, 32))
    with pytest.raises(ValueError, match="decoder must be one of"):
        build_setr("fpn")
    with pytest.raises(ValueError, match="unknown encoder 'huge'"):
        build_setr("pup", "huge")
    with pytest.raises(TypeError, match="unknown decoder option"):
        build_setr("pup", "tiny", dept=4)
    with pytest.raises(ValueError, match="outside the encoder's layers 1..4"):
        build_setr("pup", "tiny", depth=4, aux_taps=(2, 9))
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        encoder_config("tiny", embed_dim=100)
    with pytest.raises(ValueError, match="pos_resize must be one of"):
        build_setr("pup", "tiny", depth=4, pos_resize="nearest")
