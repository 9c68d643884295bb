"""SETR's loss: pixel CE with ignore 255, official averaging over all pixels, 0.4 x aux (paper §3.3-§4; official mmseg/models/losses/cross_entropy_loss.py)."""
import math

import pytest
import torch
import torch.nn.functional as F

from setr_edu.engine.losses import SETRLoss, pixel_cross_entropy, setr_loss


def _manual_ce(logits, target, avg_non_ignore=False):
    """Independent loop: -log softmax at the true class, summed over labelled pixels."""
    B, K, H, W = logits.shape
    total, labelled = 0.0, 0
    for b in range(B):
        for i in range(H):
            for j in range(W):
                t = int(target[b, i, j])
                if t == 255:
                    continue
                z = logits[b, :, i, j].double()
                total += float(torch.logsumexp(z, 0) - z[t])
                labelled += 1
    return total / (labelled if avg_non_ignore else B * H * W)


def test_pixel_ce_matches_a_manual_loop_for_both_averagings():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g)
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    target[0, :2] = 255  # 12 of 60 pixels ignored
    ours = pixel_cross_entropy(logits, target)
    assert math.isclose(ours.item(), _manual_ce(logits, target), rel_tol=1e-5)
    non_ignore = pixel_cross_entropy(logits, target, avg_non_ignore=True)
    assert math.isclose(non_ignore.item(), _manual_ce(logits, target, True), rel_tol=1e-5)
    assert math.isclose(non_ignore.item(), F.cross_entropy(logits, target, ignore_index=255).item(), rel_tol=1e-5)
    assert math.isclose(ours.item() / non_ignore.item(), 48 / 60, rel_tol=1e-5)  # the official factor


def test_logits_are_resized_bilinearly_to_the_label_size():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (1, 8, 8))
    up = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(pixel_cross_entropy(logits, target), F.cross_entropy(up, target))
    pixel_cross_entropy(logits, target).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_all_ignored_gives_zero_loss_not_nan():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), 255)
    for avg in (False, True):
        loss = pixel_cross_entropy(logits, target, avg_non_ignore=avg)
        assert loss.item() == 0.0
        loss.backward()


def test_setr_loss_weights_aux_heads_by_0_4_and_reports_parts():
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 5, (2, 8, 8), generator=g)
    main, aux1, aux2 = (torch.randn(2, 5, 8, 8, generator=g) for _ in range(3))
    loss, parts = setr_loss(main, target, [aux1, aux2])
    expected = sum(w * pixel_cross_entropy(z, target) for w, z in ((1.0, main), (0.4, aux1), (0.4, aux2)))
    assert torch.allclose(loss, expected)
    assert set(parts) == {"loss", "loss_main", "loss_aux0", "loss_aux1"}
    assert torch.allclose(parts["loss_aux1"], pixel_cross_entropy(aux2, target))
    # the module accepts SETR's (logits, [aux, ...]) output directly, or bare logits
    loss2, _ = SETRLoss()((main, [aux1, aux2]), target)
    assert torch.equal(loss, loss2)
    assert torch.equal(SETRLoss()(main, target)[0], pixel_cross_entropy(main, target))
    loss3, _ = setr_loss(main, target, [aux1, aux2], aux_weight=[0.2, 0.0])
    assert torch.allclose(loss3, pixel_cross_entropy(main, target) + 0.2 * pixel_cross_entropy(aux1, target))
    with pytest.raises(ValueError, match="aux weights"):
        setr_loss(main, target, [aux1], aux_weight=[0.4, 0.4])


def test_bad_label_values_raise_a_clear_error():
    logits = torch.randn(1, 3, 2, 2)
    with pytest.raises(ValueError, match=r"\[3, 254\].*neither a class"):
        pixel_cross_entropy(logits, torch.tensor([[[0, 3], [254, 255]]]))
    with pytest.raises(ValueError, match="expected logits"):
        pixel_cross_entropy(logits[0], torch.zeros(1, 2, 2, dtype=torch.long))
