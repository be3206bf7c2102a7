"""CRAFT text detector (VGG16-BN U-Net) and its LinkRefiner, in the official key layout.

The module tree reproduces the state_dict key names of the released checkpoints
(``craft_mlt_25k.pth``, ``craft_ic15_20k.pth``, ``craft_refiner_CTW1500.pth``) with the
``module.`` prefix removed, e.g. ``basenet.slice2.14.weight``, ``upconv1.conv.0.weight``,
``conv_cls.8.bias``, ``last_conv.0.weight``, ``aspp1.6.bias``.

Skip semantics. Upstream builds the backbone slices from torchvision's ``vgg16_bn.features``
with ``ReLU(inplace=True)`` modules, and slices 2-4 *start* with the ReLU that belongs to the
previous slice's last conv. Because that ReLU runs in place, the skip tensors kept by upstream are
post-ReLU at /2, /4 and /8 but pre-ReLU at /16 (slice5 starts with a max-pool, which does not
modify its input). Here every ReLU is out-of-place and sits at the *end* of the slice whose conv it
activates (keeping torchvision's index as its child name), except that slice4 ends at its BN. Each
slice output is therefore exactly the tensor upstream ends up using, with no aliasing involved:

============  ===========================  ========  ======
slice         features indices             output    stride
============  ===========================  ========  ======
slice1        0-12 (ends with ReLU 12)     128 ch    /2
slice2        13-19 (ends with ReLU 19)    256 ch    /4
slice3        20-29 (ends with ReLU 29)    512 ch    /8
slice4        30-38 (ends with BN 38)      512 ch    /16
slice5        pool 3x3 s1, dilated conv,   1024 ch   /16
              1x1 conv (no BN, no ReLU)
============  ===========================  ========  ======
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CRAFT", "RefineNet", "DoubleConv", "init_weights"]

# torchvision vgg16_bn config: conv widths per stage, each stage followed by a 2x2 max-pool.
_VGG16_STAGES: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)
# Index ranges [start, stop) of torchvision's vgg16_bn.features kept in each slice (see module doc).
_SLICE_RANGES: tuple[tuple[int, int], ...] = ((0, 13), (13, 20), (20, 30), (30, 39))


def _vgg16_bn_features() -> list[tuple[int, nn.Module]]:
    """Return ``(torchvision index, module)`` pairs of vgg16_bn ``features`` (out-of-place ReLUs)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for stage in _VGG16_STAGES:
        for out_ch in stage:
            layers += [
                nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=False),
            ]
            in_ch = out_ch
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return list(enumerate(layers))


def init_weights(modules: Iterable[nn.Module]) -> None:
    """Training initialisation used by CRAFT (SPEC §2.4), applied recursively.

    Conv2d: xavier-uniform weight, zero bias. BatchNorm2d: weight 1, bias 0.
    Linear: weight N(0, 0.01), zero bias.

    Args:
        modules: Modules whose sub-modules are initialised in place.
    """
    for root in modules:
        for m in root.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)


def kaiming_init(modules: Iterable[nn.Module]) -> None:
    """torchvision's VGG initialisation (Kaiming-normal convs, BN 1/0); also LightCRAFT's."""
    for root in modules:
        for m in root.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class VGG16BNBackbone(nn.Module):
    """VGG16-BN feature slices (``basenet``) with upstream's effective skip semantics.

    ``forward`` returns ``(fc7, s16, s8, s4, s2)``: slice5 output (1024 ch, /16, raw),
    slice4 output (512 ch, /16, pre-ReLU), slice3 (512 ch, /8, post-ReLU),
    slice2 (256 ch, /4, post-ReLU) and slice1 (128 ch, /2, post-ReLU).
    """

    def __init__(self) -> None:
        super().__init__()
        features = _vgg16_bn_features()
        slices = []
        for start, stop in _SLICE_RANGES:
            slices.append(nn.Sequential(OrderedDict((str(i), m) for i, m in features[start:stop])))
        self.slice1, self.slice2, self.slice3, self.slice4 = slices
        self.slice5 = nn.Sequential(
            OrderedDict(
                [
                    ("0", nn.MaxPool2d(kernel_size=3, stride=1, padding=1)),
                    ("1", nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6)),
                    ("2", nn.Conv2d(1024, 1024, kernel_size=1)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run the slices; see the class docstring for the returned tuple."""
        s2 = self.slice1(x)
        s4 = self.slice2(s2)
        s8 = self.slice3(s4)
        s16 = self.slice4(s8)  # conv5_2 + BN, deliberately without ReLU
        fc7 = self.slice5(s16)
        return fc7, s16, s8, s4, s2


class DoubleConv(nn.Module):
    """``conv`` = Conv1x1(in+mid -> mid) - BN - ReLU - Conv3x3(mid -> out) - BN - ReLU."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch + mid_ch, mid_ch, kernel_size=1),
            nn.BatchNorm2d(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        return self.conv(x)


def _upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize ``x`` to the spatial size of ``ref`` (align_corners=False)."""
    return F.interpolate(x, size=ref.shape[2:], mode="bilinear", align_corners=False)


class CRAFT(nn.Module):
    """CRAFT: VGG16-BN U-Net producing region and affinity heatmaps at half resolution.

    Input: ``N x 3 x H x W`` float32 RGB, normalised by ``normalize_mean_variance`` (H, W multiples
    of 32 as produced by ``resize_aspect_ratio``).

    Output of ``forward``: ``(y, feature)`` where ``y`` is ``N x H/2 x W/2 x 2`` channels-last raw
    scores (``[..., 0]`` region, ``[..., 1]`` affinity; no sigmoid) and ``feature`` is the
    ``N x 32 x H/2 x W/2`` upconv4 output (input of :class:`RefineNet`).

    Args:
        init: Apply the training initialisation (VGG init on slices 1-4, xavier elsewhere).
            Irrelevant when a checkpoint is loaded afterwards.
        freeze: Disable gradients of ``basenet.slice1`` (upstream ``freeze`` option).
    """

    def __init__(self, init: bool = True, freeze: bool = False) -> None:
        super().__init__()
        self.basenet = VGG16BNBackbone()
        self.upconv1 = DoubleConv(1024, 512, 256)
        self.upconv2 = DoubleConv(512, 256, 128)
        self.upconv3 = DoubleConv(256, 128, 64)
        self.upconv4 = DoubleConv(128, 64, 32)
        self.conv_cls = nn.Sequential(
            nn.Conv2d(32, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 16, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 2, kernel_size=1),
        )
        if init:
            b = self.basenet
            kaiming_init([b.slice1, b.slice2, b.slice3, b.slice4])
            init_weights([b.slice5, self.upconv1, self.upconv2, self.upconv3, self.upconv4, self.conv_cls])
        if freeze:
            for p in self.basenet.slice1.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(y NHWC 2ch at H/2 x W/2, feature N x 32 x H/2 x W/2)``."""
        fc7, s16, s8, s4, s2 = self.basenet(x)
        y = self.upconv1(torch.cat([fc7, s16], dim=1))
        y = self.upconv2(torch.cat([_upsample_to(y, s8), s8], dim=1))
        y = self.upconv3(torch.cat([_upsample_to(y, s4), s4], dim=1))
        feature = self.upconv4(torch.cat([_upsample_to(y, s2), s2], dim=1))
        y = self.conv_cls(feature)
        return y.permute(0, 2, 3, 1), feature


def _conv_bn_relu(in_ch: int, out_ch: int, kernel_size: int, dilation: int = 1) -> list[nn.Module]:
    pad = dilation * (kernel_size // 2)
    return [
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=pad, dilation=dilation),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


class RefineNet(nn.Module):
    """CRAFT LinkRefiner (``craft_refiner_CTW1500``): replaces the affinity map.

    ``forward(y, feature)`` takes CRAFT's outputs (``y`` N x H/2 x W/2 x 2 channels-last,
    ``feature`` N x 32 x H/2 x W/2) and returns raw link scores ``N x H/2 x W/2 x 1``.

    Args:
        init: Apply the xavier training initialisation.
    """

    DILATIONS: tuple[int, ...] = (6, 12, 18, 24)

    def __init__(self, init: bool = True) -> None:
        super().__init__()
        self.last_conv = nn.Sequential(
            *_conv_bn_relu(34, 64, 3), *_conv_bn_relu(64, 64, 3), *_conv_bn_relu(64, 64, 3)
        )
        for i, d in enumerate(self.DILATIONS, start=1):
            branch = nn.Sequential(
                *_conv_bn_relu(64, 128, 3, dilation=d),
                *_conv_bn_relu(128, 128, 1),
                nn.Conv2d(128, 1, kernel_size=1),
            )
            setattr(self, f"aspp{i}", branch)
        if init:
            init_weights([self])

    def forward(self, y: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """Return refined link scores ``N x H/2 x W/2 x 1`` (raw, channels-last)."""
        h = self.last_conv(torch.cat([y.permute(0, 3, 1, 2), feature], dim=1))
        out = self.aspp1(h) + self.aspp2(h) + self.aspp3(h) + self.aspp4(h)
        return out.permute(0, 2, 3, 1)
