"""Building blocks of the four-stage deep-text-recognition-benchmark recognizer.

Attribute names follow the official checkpoints' state_dict keys exactly (see
``docs`` / the DTRB manifests), so an official file loads with ``strict=True`` once its
``module.`` prefix is stripped. Shapes in comments are for the official 1 x 32 x 100 input and
``output_channel=512``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LocalizationNetwork",
    "GridGenerator",
    "TPS_SpatialTransformerNetwork",
    "VGG_FeatureExtractor",
    "GRCL",
    "GRCL_unit",
    "RCNN_FeatureExtractor",
    "BasicBlock",
    "ResNet",
    "ResNet_FeatureExtractor",
    "BidirectionalLSTM",
    "AttentionCell",
    "Attention",
    "channel_plan",
]


def channel_plan(output_channel: int) -> list[int]:
    """The VGG/RCNN channel plan ``[out/8, out/4, out/2, out]`` of the official code.

    Args:
        output_channel: Channels of the last feature map.

    Returns:
        The four stage widths.
    """
    return [output_channel // 8, output_channel // 4, output_channel // 2, output_channel]


# ------------------------------------------------------------------------------------------------
# Transformation: TPS spatial transformer (RARE)
# ------------------------------------------------------------------------------------------------


def _conv_bn_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(True)]


class LocalizationNetwork(nn.Module):
    """Predicts the ``num_fiducial`` fiducial points C' (normalised x, y) of the input image.

    Points 0..F/2-1 run along the top edge left to right, the rest along the bottom edge.
    The output is unbounded (no tanh), as upstream.
    """

    def __init__(self, num_fiducial: int, input_channel: int) -> None:
        """Create the network.

        Args:
            num_fiducial: Number of fiducial points F (even).
            input_channel: Channels of the input image.
        """
        super().__init__()
        self.num_fiducial = num_fiducial
        self.conv = nn.Sequential(
            *_conv_bn_relu(input_channel, 64),  # 0,1,2
            nn.MaxPool2d(2, 2),  # 3 -> 64 x 16 x 50
            *_conv_bn_relu(64, 128),  # 4,5,6
            nn.MaxPool2d(2, 2),  # 7 -> 128 x 8 x 25
            *_conv_bn_relu(128, 256),  # 8,9,10
            nn.MaxPool2d(2, 2),  # 11 -> 256 x 4 x 12
            *_conv_bn_relu(256, 512),  # 12,13,14
            nn.AdaptiveAvgPool2d(1),  # 15 -> 512 x 1 x 1
        )
        self.localization_fc1 = nn.Sequential(nn.Linear(512, 256), nn.ReLU(True))
        self.localization_fc2 = nn.Linear(256, num_fiducial * 2)
        # Training initialisation (RARE Fig. 6a): zero weights, bias = an identity-like layout.
        half = num_fiducial // 2
        ctrl_x = np.linspace(-1.0, 1.0, half)
        top = np.stack([ctrl_x, np.linspace(0.0, -1.0, half)], axis=1)
        bottom = np.stack([ctrl_x, np.linspace(1.0, 0.0, half)], axis=1)
        initial_bias = np.concatenate([top, bottom], axis=0).reshape(-1)
        with torch.no_grad():
            self.localization_fc2.weight.zero_()
            self.localization_fc2.bias.copy_(torch.from_numpy(initial_bias).float())

    def forward(self, batch_i: torch.Tensor) -> torch.Tensor:
        """Return C' of shape B x F x 2."""
        batch_size = batch_i.size(0)
        features = self.conv(batch_i).view(batch_size, -1)
        out = self.localization_fc2(self.localization_fc1(features))
        return out.view(batch_size, self.num_fiducial, 2)


class GridGenerator(nn.Module):
    """Thin-plate-spline grid generator with the persistent buffers ``inv_delta_C`` and ``P_hat``.

    Both buffers are computed in float64 and stored as float32, exactly as in the official
    checkpoints (which carry them: loading overwrites them with identical values).
    """

    def __init__(self, num_fiducial: int, output_size: tuple[int, int]) -> None:
        """Create the generator.

        Args:
            num_fiducial: Number of fiducial points F (even).
            output_size: (height, width) of the rectified image.
        """
        super().__init__()
        self.eps = 1e-6
        self.num_fiducial = num_fiducial
        self.output_height, self.output_width = output_size
        ctrl = self._build_c(num_fiducial)
        grid = self._build_p(self.output_width, self.output_height)
        self.register_buffer("inv_delta_C", torch.tensor(self._build_inv_delta_c(num_fiducial, ctrl)).float())
        self.register_buffer("P_hat", torch.tensor(self._build_p_hat(num_fiducial, ctrl, grid)).float())

    @staticmethod
    def _build_c(num_fiducial: int) -> np.ndarray:
        half = num_fiducial // 2
        ctrl_x = np.linspace(-1.0, 1.0, half)
        top = np.stack([ctrl_x, -np.ones(half)], axis=1)
        bottom = np.stack([ctrl_x, np.ones(half)], axis=1)
        return np.concatenate([top, bottom], axis=0)  # F x 2

    @staticmethod
    def _build_inv_delta_c(num_fiducial: int, ctrl: np.ndarray) -> np.ndarray:
        dist = np.linalg.norm(ctrl[:, None, :] - ctrl[None, :, :], axis=2)
        np.fill_diagonal(dist, 1.0)
        hat_c = dist**2 * np.log(dist)  # diagonal: 1 * ln 1 = 0
        delta_c = np.zeros((num_fiducial + 3, num_fiducial + 3), dtype=np.float64)
        delta_c[:num_fiducial, 0] = 1.0
        delta_c[:num_fiducial, 1:3] = ctrl
        delta_c[:num_fiducial, 3:] = hat_c
        delta_c[num_fiducial, 3:] = ctrl[:, 0]
        delta_c[num_fiducial + 1, 3:] = ctrl[:, 1]
        delta_c[num_fiducial + 2, 3:] = 1.0
        return np.linalg.inv(delta_c)

    @staticmethod
    def _build_p(width: int, height: int) -> np.ndarray:
        grid_x = (np.arange(-width, width, 2) + 1.0) / width  # (2k+1)/W - 1
        grid_y = (np.arange(-height, height, 2) + 1.0) / height
        xs, ys = np.meshgrid(grid_x, grid_y)  # H x W, y outer, x inner
        return np.stack([xs, ys], axis=2).reshape(-1, 2)  # n x 2 as (x, y)

    def _build_p_hat(self, num_fiducial: int, ctrl: np.ndarray, grid: np.ndarray) -> np.ndarray:
        dist = np.linalg.norm(grid[:, None, :] - ctrl[None, :, :], axis=2)  # n x F
        rbf = dist**2 * np.log(dist + self.eps)
        return np.concatenate([np.ones((grid.shape[0], 1)), grid, rbf], axis=1)  # n x (F+3)

    def build_P_prime(self, batch_c_prime: torch.Tensor) -> torch.Tensor:
        """Map predicted fiducials C' (B x F x 2) to the sampling grid P' (B x n x 2)."""
        batch_size = batch_c_prime.size(0)
        zeros = batch_c_prime.new_zeros(batch_size, 3, 2)
        c_prime_with_zeros = torch.cat([batch_c_prime, zeros], dim=1)  # B x (F+3) x 2
        transform = torch.bmm(self.inv_delta_C.expand(batch_size, -1, -1), c_prime_with_zeros)
        return torch.bmm(self.P_hat.expand(batch_size, -1, -1), transform)


class TPS_SpatialTransformerNetwork(nn.Module):
    """Rectifies the input with a thin-plate spline predicted from the image itself."""

    def __init__(
        self,
        num_fiducial: int,
        input_size: tuple[int, int],
        output_size: tuple[int, int],
        input_channel: int = 1,
    ) -> None:
        """Create the STN.

        Args:
            num_fiducial: Number of fiducial points F.
            input_size: (height, width) of the input image.
            output_size: (height, width) of the rectified image.
            input_channel: Channels of the input image.
        """
        super().__init__()
        self.input_size = tuple(input_size)
        self.output_size = tuple(output_size)
        self.LocalizationNetwork = LocalizationNetwork(num_fiducial, input_channel)
        self.GridGenerator = GridGenerator(num_fiducial, self.output_size)

    def forward(self, batch_i: torch.Tensor) -> torch.Tensor:
        """Return the rectified batch, B x C x output_height x output_width."""
        if tuple(batch_i.shape[-2:]) != self.input_size:
            raise ValueError(
                f"TPS transformation needs inputs of exactly {self.input_size[0]}x{self.input_size[1]} "
                f"(HxW), got {batch_i.shape[-2]}x{batch_i.shape[-1]}"
            )
        c_prime = self.LocalizationNetwork(batch_i)
        p_prime = self.GridGenerator.build_P_prime(c_prime)
        grid = p_prime.reshape(p_prime.size(0), self.output_size[0], self.output_size[1], 2)
        return F.grid_sample(batch_i, grid, mode="bilinear", padding_mode="border", align_corners=True)


# ------------------------------------------------------------------------------------------------
# Feature extraction
# ------------------------------------------------------------------------------------------------


class VGG_FeatureExtractor(nn.Module):
    """CRNN's VGG-style extractor: 1 x 32 x W -> output_channel x 1 x (W//4 - 1)."""

    def __init__(self, input_channel: int, output_channel: int = 512) -> None:
        """Create the extractor.

        Args:
            input_channel: Channels of the input image.
            output_channel: Channels of the output feature map.
        """
        super().__init__()
        c = channel_plan(output_channel)
        self.output_channel = output_channel
        self.ConvNet = nn.Sequential(
            nn.Conv2d(input_channel, c[0], 3, 1, 1),  # 0
            nn.ReLU(True),
            nn.MaxPool2d(2, 2),  # 2 -> 16 x 50
            nn.Conv2d(c[0], c[1], 3, 1, 1),  # 3
            nn.ReLU(True),
            nn.MaxPool2d(2, 2),  # 5 -> 8 x 25
            nn.Conv2d(c[1], c[2], 3, 1, 1),  # 6
            nn.ReLU(True),
            nn.Conv2d(c[2], c[2], 3, 1, 1),  # 8
            nn.ReLU(True),
            nn.MaxPool2d((2, 1), (2, 1)),  # 10 -> 4 x 25
            nn.Conv2d(c[2], c[3], 3, 1, 1, bias=False),  # 11
            nn.BatchNorm2d(c[3]),  # 12
            nn.ReLU(True),
            nn.Conv2d(c[3], c[3], 3, 1, 1, bias=False),  # 14
            nn.BatchNorm2d(c[3]),  # 15
            nn.ReLU(True),
            nn.MaxPool2d((2, 1), (2, 1)),  # 17 -> 2 x 25
            nn.Conv2d(c[3], c[3], 2, 1, 0),  # 18 -> 1 x 24
            nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return B x output_channel x H' x W'."""
        return self.ConvNet(x)


class GRCL_unit(nn.Module):
    """One recurrent iteration of a gated recurrent convolution layer (five BNs)."""

    def __init__(self, output_channel: int) -> None:
        """Create the unit.

        Args:
            output_channel: Channels of the GRCL state.
        """
        super().__init__()
        self.BN_gfu = nn.BatchNorm2d(output_channel)
        self.BN_grx = nn.BatchNorm2d(output_channel)
        self.BN_fu = nn.BatchNorm2d(output_channel)
        self.BN_rx = nn.BatchNorm2d(output_channel)
        self.BN_Gx = nn.BatchNorm2d(output_channel)

    def forward(
        self, wgf_u: torch.Tensor, wgr_x: torch.Tensor, wf_u: torch.Tensor, wr_x: torch.Tensor
    ) -> torch.Tensor:
        """Return the next state from the feed-forward and recurrent convolution outputs."""
        gate = torch.sigmoid(self.BN_gfu(wgf_u) + self.BN_grx(wgr_x))
        return F.relu(self.BN_fu(wf_u) + self.BN_Gx(self.BN_rx(wr_x) * gate))


class GRCL(nn.Module):
    """Gated recurrent convolution layer; the four convolutions are shared by all iterations."""

    def __init__(
        self,
        input_channel: int,
        output_channel: int,
        num_iteration: int = 5,
        kernel_size: int = 3,
        pad: int = 1,
    ) -> None:
        """Create the layer.

        Args:
            input_channel: Input channels.
            output_channel: Output channels.
            num_iteration: Recurrent iterations.
            kernel_size: Kernel of the two spatial convolutions.
            pad: Their padding.
        """
        super().__init__()
        self.wgf_u = nn.Conv2d(input_channel, output_channel, 1, 1, 0, bias=False)
        self.wgr_x = nn.Conv2d(output_channel, output_channel, 1, 1, 0, bias=False)
        self.wf_u = nn.Conv2d(input_channel, output_channel, kernel_size, 1, pad, bias=False)
        self.wr_x = nn.Conv2d(output_channel, output_channel, kernel_size, 1, pad, bias=False)
        self.BN_x_init = nn.BatchNorm2d(output_channel)
        self.num_iteration = num_iteration
        self.GRCL = nn.Sequential(*[GRCL_unit(output_channel) for _ in range(num_iteration)])

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Return the state after ``num_iteration`` iterations."""
        wgf_u = self.wgf_u(u)
        wf_u = self.wf_u(u)
        x = F.relu(self.BN_x_init(wf_u))
        for unit in self.GRCL:
            x = unit(wgf_u, self.wgr_x(x), wf_u, self.wr_x(x))
        return x


class RCNN_FeatureExtractor(nn.Module):
    """GRCNN extractor: 1 x 32 x W -> output_channel x 1 x (W//4 + 1)."""

    def __init__(self, input_channel: int, output_channel: int = 512) -> None:
        """Create the extractor.

        Args:
            input_channel: Channels of the input image.
            output_channel: Channels of the output feature map.
        """
        super().__init__()
        c = channel_plan(output_channel)
        self.output_channel = output_channel
        self.ConvNet = nn.Sequential(
            nn.Conv2d(input_channel, c[0], 3, 1, 1),  # 0
            nn.ReLU(True),
            nn.MaxPool2d(2, 2),  # 2 -> 16 x 50
            GRCL(c[0], c[0], num_iteration=5, kernel_size=3, pad=1),  # 3
            nn.MaxPool2d(2, 2),  # 4 -> 8 x 25
            GRCL(c[0], c[1], num_iteration=5, kernel_size=3, pad=1),  # 5
            nn.MaxPool2d(2, (2, 1), (0, 1)),  # 6 -> 4 x 26
            GRCL(c[1], c[2], num_iteration=5, kernel_size=3, pad=1),  # 7
            nn.MaxPool2d(2, (2, 1), (0, 1)),  # 8 -> 2 x 27
            nn.Conv2d(c[2], c[3], 2, 1, 0, bias=False),  # 9 -> 1 x 26
            nn.BatchNorm2d(c[3]),  # 10
            nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return B x output_channel x H' x W'."""
        return self.ConvNet(x)


class BasicBlock(nn.Module):
    """ResNet basic block (stride 1), optional 1x1 projection ``downsample``."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, downsample: nn.Module | None = None) -> None:
        """Create the block.

        Args:
            inplanes: Input channels.
            planes: Output channels.
            downsample: Projection of the identity when the channel count changes.
        """
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return relu(bn2(conv2(relu(bn1(conv1(x))))) + identity)."""
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class ResNet(nn.Module):
    """FAN-style ResNet used by DTRB (``FeatureExtraction.ConvNet``)."""

    def __init__(self, input_channel: int, output_channel: int, layers: list[int]) -> None:
        """Create the network.

        Args:
            input_channel: Channels of the input image.
            output_channel: Channels of the output feature map.
            layers: Number of basic blocks in each of the four stages.
        """
        super().__init__()
        blocks = [output_channel // 4, output_channel // 2, output_channel, output_channel]
        self.inplanes = output_channel // 8
        self.conv0_1 = nn.Conv2d(input_channel, output_channel // 16, 3, 1, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(output_channel // 16)
        self.conv0_2 = nn.Conv2d(output_channel // 16, self.inplanes, 3, 1, 1, bias=False)
        self.bn0_2 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)

        self.maxpool1 = nn.MaxPool2d(2, 2, 0)
        self.layer1 = self._make_layer(blocks[0], layers[0])
        self.conv1 = nn.Conv2d(blocks[0], blocks[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(blocks[0])

        self.maxpool2 = nn.MaxPool2d(2, 2, 0)
        self.layer2 = self._make_layer(blocks[1], layers[1])
        self.conv2 = nn.Conv2d(blocks[1], blocks[1], 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(blocks[1])

        self.maxpool3 = nn.MaxPool2d(2, (2, 1), (0, 1))
        self.layer3 = self._make_layer(blocks[2], layers[2])
        self.conv3 = nn.Conv2d(blocks[2], blocks[2], 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(blocks[2])

        self.layer4 = self._make_layer(blocks[3], layers[3])
        self.conv4_1 = nn.Conv2d(blocks[3], blocks[3], 2, (2, 1), (0, 1), bias=False)
        self.bn4_1 = nn.BatchNorm2d(blocks[3])
        self.conv4_2 = nn.Conv2d(blocks[3], blocks[3], 2, 1, 0, bias=False)
        self.bn4_2 = nn.BatchNorm2d(blocks[3])

    def _make_layer(self, planes: int, num_blocks: int) -> nn.Sequential:
        downsample = None
        if self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * BasicBlock.expansion, 1, 1, bias=False),
                nn.BatchNorm2d(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers.extend(BasicBlock(self.inplanes, planes) for _ in range(1, num_blocks))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return B x output_channel x H' x W'."""
        x = self.relu(self.bn0_1(self.conv0_1(x)))
        x = self.relu(self.bn0_2(self.conv0_2(x)))
        x = self.maxpool1(x)
        x = self.layer1(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool2(x)
        x = self.layer2(x)
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.maxpool3(x)
        x = self.layer3(x)
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.layer4(x)
        x = self.relu(self.bn4_1(self.conv4_1(x)))
        return self.relu(self.bn4_2(self.conv4_2(x)))


class ResNet_FeatureExtractor(nn.Module):
    """ResNet extractor (blocks [1, 2, 5, 3]): 1 x 32 x W -> output_channel x 1 x (W//4 + 1)."""

    def __init__(self, input_channel: int, output_channel: int = 512) -> None:
        """Create the extractor.

        Args:
            input_channel: Channels of the input image.
            output_channel: Channels of the output feature map.
        """
        super().__init__()
        self.output_channel = output_channel
        self.ConvNet = ResNet(input_channel, output_channel, [1, 2, 5, 3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return B x output_channel x H' x W'."""
        return self.ConvNet(x)


# ------------------------------------------------------------------------------------------------
# Sequence modelling and attention prediction
# ------------------------------------------------------------------------------------------------


class BidirectionalLSTM(nn.Module):
    """One bidirectional LSTM layer followed by a linear projection."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        """Create the layer.

        Args:
            input_size: Features per time step in.
            hidden_size: LSTM hidden size per direction.
            output_size: Features per time step out.
        """
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(hidden_size * 2, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map B x T x input_size to B x T x output_size."""
        if x.is_cuda:
            self.rnn.flatten_parameters()
        recurrent, _ = self.rnn(x)
        return self.linear(recurrent)


class AttentionCell(nn.Module):
    """Bahdanau-style attention step feeding an LSTMCell (context first, then the one-hot)."""

    def __init__(self, input_size: int, hidden_size: int, num_embeddings: int) -> None:
        """Create the cell.

        Args:
            input_size: Features per encoder step.
            hidden_size: Hidden size of the decoder LSTMCell.
            num_embeddings: One-hot width (num_class, including [GO] and [s]).
        """
        super().__init__()
        self.i2h = nn.Linear(input_size, hidden_size, bias=False)
        self.h2h = nn.Linear(hidden_size, hidden_size)
        self.score = nn.Linear(hidden_size, 1, bias=False)
        self.rnn = nn.LSTMCell(input_size + num_embeddings, hidden_size)
        self.hidden_size = hidden_size

    def forward(
        self,
        prev_hidden: tuple[torch.Tensor, torch.Tensor],
        batch_H: torch.Tensor,
        char_onehots: torch.Tensor,
        batch_H_proj: torch.Tensor | None = None,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Run one decoding step.

        Args:
            prev_hidden: (h, c) of the previous step, each B x hidden_size.
            batch_H: Encoder states, B x T x input_size.
            char_onehots: One-hot of the previous token, B x num_embeddings.
            batch_H_proj: ``i2h(batch_H)`` if already computed (it does not change between steps).

        Returns:
            The new (h, c) and the attention weights (B x T x 1).
        """
        if batch_H_proj is None:
            batch_H_proj = self.i2h(batch_H)
        prev_hidden_proj = self.h2h(prev_hidden[0]).unsqueeze(1)
        e = self.score(torch.tanh(batch_H_proj + prev_hidden_proj))  # B x T x 1
        alpha = F.softmax(e, dim=1)
        context = torch.bmm(alpha.permute(0, 2, 1), batch_H).squeeze(1)  # B x input_size
        concat_context = torch.cat([context, char_onehots], 1)
        cur_hidden = self.rnn(concat_context, prev_hidden)
        return cur_hidden, alpha


class Attention(nn.Module):
    """Attention decoder: ``attention_cell`` + ``generator``, batch_max_length + 1 steps."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int) -> None:
        """Create the decoder.

        Args:
            input_size: Features per encoder step.
            hidden_size: Decoder hidden size.
            num_classes: Number of classes including [GO] (0) and [s] (1).
        """
        super().__init__()
        self.attention_cell = AttentionCell(input_size, hidden_size, num_classes)
        self.hidden_size = hidden_size
        self.num_classes = num_classes
        self.generator = nn.Linear(hidden_size, num_classes)

    def _onehot(self, tokens: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return F.one_hot(tokens, self.num_classes).to(dtype)

    def forward(
        self,
        batch_H: torch.Tensor,
        text: torch.Tensor | None = None,
        is_train: bool = False,
        batch_max_length: int = 25,
    ) -> torch.Tensor:
        """Decode ``batch_max_length + 1`` steps.

        Args:
            batch_H: Encoder states, B x T x input_size.
            text: Teacher-forcing input tokens, B x >= steps ([GO] first); only used when
                ``is_train``; columns beyond ``batch_max_length + 1`` are ignored.
            is_train: Teacher forcing with ``text`` instead of greedy feedback.
            batch_max_length: Maximum label length; steps = batch_max_length + 1.

        Returns:
            Logits, B x steps x num_classes.
        """
        batch_size = batch_H.size(0)
        num_steps = batch_max_length + 1
        dtype = batch_H.dtype
        h = batch_H.new_zeros(batch_size, self.hidden_size)
        hidden = (h, h.clone())
        batch_H_proj = self.attention_cell.i2h(batch_H)  # cached: identical at every step

        if is_train:
            if text is None:
                raise ValueError("Attention decoding with is_train=True needs the teacher-forcing `text`")
            if text.dim() != 2 or text.size(0) != batch_size or text.size(1) < num_steps:
                raise ValueError(
                    f"teacher-forcing text must be B x >= {num_steps} token ids ([GO] first), "
                    f"got shape {tuple(text.shape)}"
                )
            text = text.to(batch_H.device).long()
            hiddens = []
            for i in range(num_steps):
                onehot = self._onehot(text[:, i], dtype)
                hidden, _ = self.attention_cell(hidden, batch_H, onehot, batch_H_proj)
                hiddens.append(hidden[0])
            return self.generator(torch.stack(hiddens, dim=1))

        targets = torch.zeros(batch_size, dtype=torch.long, device=batch_H.device)  # [GO]
        steps = []
        for _ in range(num_steps):
            onehot = self._onehot(targets, dtype)
            hidden, _ = self.attention_cell(hidden, batch_H, onehot, batch_H_proj)
            logits = self.generator(hidden[0])
            steps.append(logits)
            targets = logits.argmax(dim=1)
        return torch.stack(steps, dim=1)
