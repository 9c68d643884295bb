"""A local-receptive-field CNN baseline for the global-context experiment (paper §1: "limited receptive fields").

SETR's argument is that a transformer sees the whole image from its first layer, while a fully convolutional network
(FCN) only ever sees a window around each pixel: its *receptive field*. ``LocalCNN`` is a small FCN of about the
same size as the book's CPU SETR, whose receptive field is deliberately a fraction of the image, so on the synthetic
context task (``setr_edu.data.SyntheticContextDataset``, where a shape's class depends on a key block in a far
corner) it can see a shape's geometry but not the key.

Architecture (``(B, 3, H, W) -> (B, K, H, W)``), at output stride 8 like the paper's dilated-FCN baselines:

* ``stem``: three 3x3 stride-2 ``conv + BN + ReLU`` (``3 -> w/4 -> w/2 -> w``), ``(B, w, H/8, W/8)``;
* ``body``: ``depth`` residual blocks, each a 3x3 conv (the only layers that widen the receptive field) and a
  1x1 conv, at width ``w``;
* ``decode_head``: 1x1 ``conv + BN + ReLU`` and a 1x1 classifier, bilinear upsampling to the input size;
* ``auxiliary_heads``: one 1x1 classifier on the middle of the body (weight 0.4, like SETR's auxiliary heads).

The submodule names match ``SETR`` (``decode_head``, ``auxiliary_heads``), so the same optimiser (x10 learning
rate on heads), loss and ``setr_edu.engine.trainer.Trainer`` train it unchanged.

    >>> import torch
    >>> cnn = LocalCNN(num_classes=7, width=64, depth=2)
    >>> cnn(torch.randn(1, 3, 96, 96)).shape, cnn.receptive_field
    (torch.Size([1, 7, 96, 96]), 55)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    """``Conv2d(k x k, stride) + BatchNorm + ReLU``: ``(B, c_in, h, w) -> (B, c_out, h/stride, w/stride)``."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """``x + conv1x1(conv3x3(x))``: one 3x3 conv widens the receptive field by 2 x stride pixels."""

    def __init__(self, width: int):
        super().__init__()
        self.conv3 = conv_bn_relu(width, width, 3)
        self.conv1 = nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv1(self.conv3(x)))


class LocalCNN(nn.Module):
    """Fully convolutional baseline with a bounded receptive field (see the module docstring).

    Args:
        num_classes: the number of classes K.
        width: channels of the body (the stem uses w/4 and w/2).
        depth: residual blocks in the body; the receptive field is ``23 + 16 * depth`` pixels.
        aux: build the auxiliary head (training only).

    ``forward(x)`` -> logits ``(B, K, H, W)``; ``forward(x, with_aux=True)`` -> ``(logits, [aux_logits])``.
    """

    stride = 8

    def __init__(self, num_classes: int, width: int = 176, depth: int = 2, in_chans: int = 3, aux: bool = True):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_classes, self.depth = num_classes, depth
        self.stem = nn.Sequential(conv_bn_relu(in_chans, width // 4, 3, 2), conv_bn_relu(width // 4, width // 2, 3, 2),
                                  conv_bn_relu(width // 2, width, 3, 2))
        self.body = nn.ModuleList(ResidualBlock(width) for _ in range(depth))
        self.decode_head = nn.Sequential(conv_bn_relu(width, width, 1), nn.Conv2d(width, num_classes, 1))
        self.auxiliary_heads = nn.ModuleList([nn.Conv2d(width, num_classes, 1)] if aux else [])

    @property
    def receptive_field(self) -> int:
        """Side of the square input window one output pixel depends on (theoretical receptive field).

        Stem: 3 + 2*2 + 2*4 = 15 pixels at stride 8; each body block's 3x3 conv adds 2*8 = 16; the final bilinear
        upsampling blends two neighbouring feature pixels, which adds one stride (8). ``depth=2``: 55 pixels.
        """
        return 15 + 2 * self.stride * self.depth + self.stride

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        size = tuple(x.shape[-2:])
        f = self.stem(x)  # (B, w, H/8, W/8)
        aux_in = f
        for i, block in enumerate(self.body):
            f = block(f)
            if i == (self.depth - 1) // 2:
                aux_in = f  # the middle of the body
        logits = F.interpolate(self.decode_head(f), size=size, mode="bilinear", align_corners=False)
        if not with_aux:
            return logits
        aux = [F.interpolate(h(aux_in), size=size, mode="bilinear", align_corners=False) for h in self.auxiliary_heads]
        return logits, aux


def build_local_cnn(num_classes: int, width: int = 176, depth: int = 2, aux: bool = True) -> LocalCNN:
    """The CNN baseline; ``width=176, depth=2`` (0.83M parameters) is about the size of the ``cpu`` profile's
    SETR-Naive (0.86M); its receptive field (55 px) is just over half of the 96 px image."""
    return LocalCNN(num_classes, width=width, depth=depth, aux=aux)
