"""LightCRAFT: a CPU-friendly detector with CRAFT's input/output contract.

Same contract as :class:`~ocr_tasks.models.detection.craft.CRAFT`: input ``N x 3 x H x W``
normalised RGB (``normalize_mean_variance``), H and W multiples of 32; ``forward`` returns
``(y, feature)`` with ``y`` ``N x H/2 x W/2 x 2`` channels-last raw scores (0 = region,
1 = affinity) and ``feature`` ``N x C x H/2 x W/2`` (``C = model.feature_channels``).

Design (channel numbers for ``width=1.0``; every count is a multiple of 16, which the CPU conv
kernels handle far better than e.g. 24):

* Encoder, strides /2 ... /32:
  /2 dense 3x3 stem (3->16, s2) + 3x3 (16); /4 dense 3x3 (16->32, s2) + a residual basic block;
  /8 dense 3x3 (32->64, s2) + 2 inverted residuals (64, expansion 2);
  /16 inverted residuals (64->128 s2, then 3 x 128, dilations 1, 2, 1);
  /32 inverted residuals (128->256 s2, then 2 x 256, dilations 2, 4) for page-scale context.
  Dense convs where the maps are large and channels few (fast on CPU), depthwise-separable
  blocks where channels are many.
* U-Net decoder back to /2 (widths 64, 64, 32, 16 at /16, /8, /4, /2). Each step is CRAFT's
  ``1x1 conv on cat(up(coarse), skip)`` followed by a 3x3 conv, computed as
  ``up(1x1(coarse)) + 1x1(skip)``: the same function (a 1x1 conv commutes with bilinear
  upsampling, and a conv over a concatenation is a sum of convs), but the upsampling runs on
  the reduced channel count and no concatenated tensor is materialised.
* Head at /2: 3x3 conv + ReLU, 1x1 + ReLU, 1x1 -> 2 (no sigmoid, like CRAFT).
* Inference speed: in eval mode every BatchNorm is folded into its conv on the fly, and the
  forward runs in the channels-last memory format (several times faster for the large /2 maps
  on CPU). Training mode is a plain conv-BN-ReLU network.

Receptive field is several hundred input pixels (enough for affinity between characters of
large headings); the /2 output keeps the separation of dense small text lines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .craft import kaiming_init

__all__ = ["LightCRAFT"]


def _ch(base: int, width: float) -> int:
    """Scale a channel count and round it to a multiple of 16 (at least 16)."""
    return max(16, int(round(base * width / 16.0)) * 16)


class ConvBNReLU(nn.Module):
    """Conv (no bias) - BatchNorm - optional ReLU; BN is folded into the conv in eval mode.

    In training mode this is ``relu(bn(conv(x)))``. When the BN is in eval mode its running
    statistics are folded into the conv weights on the fly (same result up to float rounding),
    which removes a full pass over every feature map; the state_dict keys stay ``conv.*`` and
    ``bn.*``. Set ``fold_bn = False`` to run the BN as a separate layer.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        relu: bool = True,
    ) -> None:
        super().__init__()
        pad = dilation * (kernel_size // 2)
        self.conv = nn.Conv2d(
            in_ch, out_ch, kernel_size, stride, pad, dilation=dilation, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = relu
        self.fold_bn = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply conv, BN (folded when it uses running statistics) and ReLU."""
        if _can_fold(self.bn, self.fold_bn):
            y = _folded_conv(self.conv, self.bn, x)
        else:
            y = self.bn(self.conv(x))
        return F.relu(y, inplace=True) if self.relu else y


def _can_fold(bn: nn.BatchNorm2d, enabled: bool) -> bool:
    """True when ``bn`` normalises with running statistics (eval mode) and folding is enabled."""
    return enabled and not bn.training and bn.running_mean is not None and bn.running_var is not None


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as ``x * scale + shift`` (per channel)."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))`` with eval-mode BN folded into the conv weight and bias."""
    scale, bias = _bn_affine(bn)
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand - 3x3 depthwise (stride/dilation) - 1x1 linear project."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, expand: int = 2, dilation: int = 1) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.use_residual = stride == 1 and in_ch == out_ch
        self.block = nn.Sequential(
            ConvBNReLU(in_ch, hidden, kernel_size=1),
            ConvBNReLU(hidden, hidden, 3, stride=stride, dilation=dilation, groups=hidden),
            ConvBNReLU(hidden, out_ch, kernel_size=1, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block (with the identity shortcut when shapes allow)."""
        out = self.block(x)
        return x + out if self.use_residual else out


class BasicBlock(nn.Module):
    """ResNet basic block: 3x3 conv-BN-ReLU, 3x3 conv-BN, identity shortcut, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(channels, channels, 3)
        self.conv2 = ConvBNReLU(channels, channels, 3, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        return F.relu(x + self.conv2(self.conv1(x)), inplace=True)


class SeparableConv(nn.Sequential):
    """3x3 depthwise conv-BN-ReLU then 1x1 conv-BN-ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(ConvBNReLU(in_ch, in_ch, 3, groups=in_ch), ConvBNReLU(in_ch, out_ch, 1))


class UpBlock(nn.Module):
    """U-Net decoder step: ``relu(bn(up(1x1(coarse)) + 1x1(skip)))`` then a 3x3 conv."""

    def __init__(self, coarse_ch: int, skip_ch: int, out_ch: int, separable: bool) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(coarse_ch, out_ch, kernel_size=1, bias=False)
        self.lateral = nn.Conv2d(skip_ch, out_ch, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.conv = SeparableConv(out_ch, out_ch) if separable else ConvBNReLU(out_ch, out_ch, 3)
        self.fold_bn = True

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Merge the coarse decoder state with the encoder skip at the skip's resolution."""
        size = skip.shape[2:]
        if not _can_fold(self.bn, self.fold_bn):
            up = F.interpolate(self.reduce(coarse), size=size, mode="bilinear", align_corners=False)
            merged = self.bn(up + self.lateral(skip))
        else:  # BN folded into the two 1x1 convs (all linear, so this is exact up to rounding)
            scale, shift = _bn_affine(self.bn)
            scale4 = scale.reshape(-1, 1, 1, 1)
            up = F.interpolate(
                F.conv2d(coarse, self.reduce.weight * scale4), size=size, mode="bilinear", align_corners=False
            )
            merged = F.conv2d(skip, self.lateral.weight * scale4, shift)
            merged.add_(up)
        return self.conv(F.relu(merged, inplace=True))


class LightCRAFT(nn.Module):
    """Cheap CRAFT-compatible detector (see the module docstring for the architecture).

    Args:
        width: Channel multiplier for encoder, decoder and head (counts are rounded to
            multiples of 16, minimum 16). 1.0 is the default model (about 1.0 M parameters,
            8.2 GMAC at 928 x 1280); 0.5 halves the deep stages, 1.5 or 2.0 add capacity.
        init: Apply the training initialisation (Kaiming for convs, BN weight 1 / bias 0,
            small-std head output layer).

    Attributes:
        feature_channels: Channels of the returned ``feature`` map.
    """

    def __init__(self, width: float = 1.0, init: bool = True) -> None:
        super().__init__()
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width!r}")
        c2, c4, c8, c16, c32 = (_ch(c, width) for c in (16, 32, 64, 128, 256))
        d16, d8, d4, d2 = (_ch(c, width) for c in (64, 64, 32, 16))
        self.width = float(width)
        self.feature_channels = d2

        self.stage2 = nn.Sequential(ConvBNReLU(3, c2, 3, stride=2), ConvBNReLU(c2, c2, 3))
        self.stage4 = nn.Sequential(ConvBNReLU(c2, c4, 3, stride=2), BasicBlock(c4))
        self.stage8 = nn.Sequential(
            ConvBNReLU(c4, c8, 3, stride=2),
            InvertedResidual(c8, c8),
            InvertedResidual(c8, c8),
        )
        self.stage16 = nn.Sequential(
            InvertedResidual(c8, c16, stride=2),
            InvertedResidual(c16, c16),
            InvertedResidual(c16, c16, dilation=2),
            InvertedResidual(c16, c16),
        )
        self.stage32 = nn.Sequential(
            InvertedResidual(c16, c32, stride=2),
            InvertedResidual(c32, c32, dilation=2),
            InvertedResidual(c32, c32, dilation=4),
        )
        self.up16 = UpBlock(c32, c16, d16, separable=True)
        self.up8 = UpBlock(d16, c8, d8, separable=True)
        self.up4 = UpBlock(d8, c4, d4, separable=False)
        self.up2 = UpBlock(d4, c2, d2, separable=False)
        self.head = nn.Sequential(
            nn.Conv2d(d2, d2, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(d2, d2, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(d2, 2, kernel_size=1),
        )
        if init:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Training initialisation (Kaiming-normal convs, BN 1/0, near-zero output layer)."""
        kaiming_init([self])
        out = self.head[-1]
        nn.init.normal_(out.weight, 0.0, 0.01)
        nn.init.zeros_(out.bias)

    def set_bn_folding(self, enabled: bool) -> None:
        """Enable or disable on-the-fly BN folding in eval mode (enabled by default)."""
        for m in self.modules():
            if isinstance(m, ConvBNReLU | UpBlock):
                m.fold_bn = bool(enabled)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(y NHWC 2ch at H/2 x W/2, feature N x C x H/2 x W/2)``.

        Runs in the channels-last memory format internally (much faster on CPU at these sizes);
        ``feature`` is returned in that memory format, ``y`` is contiguous.
        """
        x = x.contiguous(memory_format=torch.channels_last)
        s2 = self.stage2(x)
        s4 = self.stage4(s2)
        s8 = self.stage8(s4)
        s16 = self.stage16(s8)
        s32 = self.stage32(s16)
        d = self.up16(s32, s16)
        d = self.up8(d, s8)
        d = self.up4(d, s4)
        feature = self.up2(d, s2)
        y = self.head(feature)
        return y.permute(0, 2, 3, 1), feature
