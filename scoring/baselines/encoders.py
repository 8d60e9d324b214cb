"""The two unimodal encoders every baseline is built from.

- :class:`EHREncoder`: two stacked LSTMs over the 76 discretized features (MedFuse's EHR
  model: hidden 256, dropout 0.3 on the read-out state, xavier-initialised input weights
  and orthogonal recurrent weights). The LSTMs are causal, so the state after row ``k`` of a
  stay depends on rows ``0 .. k`` only: one pass over a stay gives the representation of
  every prediction time at once.
- :class:`ResNet`: a residual CNN over one-channel chest X-rays. ``resnet34`` is the
  ResNet-34 layout (3, 4, 6, 3 basic blocks of 64 .. 512 channels) used on real data;
  ``small`` keeps its shape (a stem that divides the resolution by 4, then four stages,
  each but the first halving it) with one block per stage and 16 .. 128 channels, so it
  trains on a CPU in minutes, for the synthetic benchmark. Both return the last feature maps, so
  fusion models can modulate them before pooling.

>>> import torch
>>> enc = EHREncoder(hidden=8)
>>> enc(torch.zeros(2, 5, 76)).shape
torch.Size([2, 5, 8])
>>> cnn = build_cxr_encoder("small")
>>> cnn(torch.zeros(2, 1, 64, 64)).shape
torch.Size([2, 128, 2, 2])
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark_data.variables import N_FEATURES

CXR_ENCODERS: tuple[str, ...] = ("small", "resnet34")


def _init_lstm(lstm: nn.LSTM) -> None:
    """Xavier for input-to-hidden weights, orthogonal for hidden-to-hidden, zero biases."""
    for name, param in lstm.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(param)
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(param)
        elif name.startswith("bias"):
            nn.init.zeros_(param)


class EHREncoder(nn.Module):
    """Two stacked LSTMs; ``forward`` returns the top layer's state at every row.

    The layers are separate modules so that a fusion model (MMTM) can act between them:
    ``layer1`` maps ``(B, T, 76)`` to ``(B, T, hidden)``, ``layer2`` maps that to the top
    states. Dropout is applied by the models to the state they read out (as MedFuse).
    """

    def __init__(self, *, n_features: int = N_FEATURES, hidden: int = 256) -> None:
        super().__init__()
        self.hidden = hidden
        self.lstm1 = nn.LSTM(n_features, hidden, batch_first=True)
        self.lstm2 = nn.LSTM(hidden, hidden, batch_first=True)
        _init_lstm(self.lstm1)
        _init_lstm(self.lstm2)

    def layer1(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm1(x)[0]

    def layer2(self, h: torch.Tensor) -> torch.Tensor:
        return self.lstm2(h)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A residual CNN over one-channel images; ``forward`` returns the last feature maps.

    Parameters
    ----------
    blocks
        Number of basic blocks per stage.
    widths
        Channels per stage; every stage after the first halves the resolution.
    stem
        ``"imagenet"``: 7x7 stride-2 convolution and 3x3 max pooling (ResNet-34);
        ``"light"``: 3x3 stride-2 convolution and 3x3 max pooling (the small network).
    """

    def __init__(
        self,
        *,
        blocks: tuple[int, ...],
        widths: tuple[int, ...],
        stem: str = "imagenet",
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        w0 = widths[0]
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, w0, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(w0),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        elif stem == "light":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, w0, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(w0),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        else:
            raise ValueError(f"unknown stem {stem!r}")
        stages = []
        c_in = w0
        for i, (n, width) in enumerate(zip(blocks, widths, strict=True)):
            layers = [BasicBlock(c_in, width, stride=1 if i == 0 else 2)]
            layers += [BasicBlock(width, width) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.out_channels = c_in
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Start each residual branch near zero so a deep stack begins close to identity.
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


def build_cxr_encoder(kind: str) -> ResNet:
    """``"resnet34"`` (real data) or ``"small"`` (synthetic benchmark, CPU training)."""
    if kind == "resnet34":
        return ResNet(blocks=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem="imagenet")
    if kind == "small":
        return ResNet(blocks=(1, 1, 1, 1), widths=(16, 32, 64, 128), stem="light")
    raise ValueError(f"unknown CXR encoder {kind!r}; choose one of {', '.join(CXR_ENCODERS)}")


def pool(maps: torch.Tensor) -> torch.Tensor:
    """Global average pooling of ``(N, C, h, w)`` feature maps to ``(N, C)``."""
    return maps.mean(dim=(2, 3))
