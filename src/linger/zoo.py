"""A model zoo in plain torch.nn, shared by linger's tests, benchmarks and packer tests.

The MLPerf Tiny models follow the reference networks layer for layer (their int8 TFLite files
are in ``shared/data/mlperf-tiny``; the tests compare every conv and dense shape with them).
BatchNorm layers are kept as in the Keras originals (TFLite folds them into the convs; linger
folds them at init). Where TFLite pads 'same' with stride 2, PyTorch's symmetric padding gives
the same output size; the KWS stem pads asymmetrically exactly as TFLite does.

    model = zoo.build("resnet8")
    shape = zoo.input_shape("resnet8")          # (3, 32, 32), without the batch
    zoo.NAMES                                    # every model name
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)


def conv_bn(cin: int, cout: int, kernel, stride=1, padding=0, groups: int = 1,
            bias: bool = True) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=bias),
            nn.BatchNorm2d(cout)]


class LeNet5(nn.Module):
    """LeNet-5 for 1x28x28 digits: two 5x5 convs with max pooling, three dense layers."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class ResidualStack(nn.Module):
    """One stack of MLPerf Tiny's ResNet-8: conv-BN-ReLU, conv-BN, + shortcut, ReLU. The
    shortcut is a strided 1x1 conv (no BN) when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, cout, 3, stride, 1)
        self.conv2, self.bn2 = conv_bn(cout, cout, 3, 1, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + skip)


class ResNet8(nn.Module):
    """MLPerf Tiny image classification (CIFAR-10, 3x32x32): stacks of 16, 32, 64 channels."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv, self.bn = conv_bn(3, 16, 3, 1, 1)
        self.stack1 = ResidualStack(16, 16, 1)
        self.stack2 = ResidualStack(16, 32, 2)
        self.stack3 = ResidualStack(32, 64, 2)
        self.pool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.stack3(self.stack2(self.stack1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class DSCNN(nn.Module):
    """MLPerf Tiny keyword spotting DS-CNN (1x49x10 MFCC, 12 classes): conv 10x4 stride 2,
    four depthwise-separable blocks of 64 channels, average pool, dense."""

    def __init__(self, num_classes: int = 12, channels: int = 64):
        super().__init__()
        layers: list[nn.Module] = [nn.ZeroPad2d((1, 1, 4, 5)),  # TFLite 'same' for 10x4 / 2
                                   *conv_bn(1, channels, (10, 4), 2), nn.ReLU(),
                                   nn.Dropout(0.2)]
        for _ in range(4):
            layers += [*conv_bn(channels, channels, 3, 1, 1, groups=channels), nn.ReLU(),
                       *conv_bn(channels, channels, 1), nn.ReLU()]
        layers += [nn.Dropout(0.4), nn.AvgPool2d((25, 5))]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class MobileNetV1(nn.Module):
    """MobileNetV1 (depthwise + pointwise blocks) as in MLPerf Tiny visual wake words
    (width 0.25, 3x96x96, 2 classes); any input size (global average pool)."""

    # (output channels at width 1.0, stride) of the 13 depthwise-separable blocks
    BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
              (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

    def __init__(self, num_classes: int = 2, width: float = 0.25):
        super().__init__()
        cin = int(32 * width)
        layers: list[nn.Module] = [*conv_bn(3, cin, 3, 2, 1), nn.ReLU()]
        for channels, stride in self.BLOCKS:
            cout = int(channels * width)
            layers += [*conv_bn(cin, cin, 3, stride, 1, groups=cin), nn.ReLU(),
                       *conv_bn(cin, cout, 1), nn.ReLU()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class FCAutoencoder(nn.Module):
    """MLPerf Tiny anomaly detection (ToyCar, 640 inputs): dense 640-128-128-128-128-8-128-
    128-128-128-640, BatchNorm + ReLU after every hidden layer."""

    def __init__(self, inputs: int = 640, hidden: int = 128, bottleneck: int = 8):
        super().__init__()
        sizes = [inputs, hidden, hidden, hidden, hidden, bottleneck,
                 hidden, hidden, hidden, hidden]
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(sizes):
            layers += [nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.ReLU()]
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(hidden, inputs)

    def forward(self, x):
        return self.out(self.hidden(x))


class TinyUNet(nn.Module):
    """A small encoder-decoder with a residual add, a transposed conv, a skip concatenation
    and ReLU6; dense 4-channel output at the input resolution (3x16x16 by default)."""

    def __init__(self, channels: int = 8, outputs: int = 4):
        super().__init__()
        c = channels
        self.stem = nn.Sequential(*conv_bn(3, c, 3, 1, 1), nn.ReLU6())
        self.down = nn.Sequential(*conv_bn(c, 2 * c, 3, 2, 1), nn.ReLU())
        self.res_conv, self.res_bn = conv_bn(2 * c, 2 * c, 3, 1, 1)
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.up_bn = nn.BatchNorm2d(c)
        self.head = nn.Conv2d(2 * c, outputs, 1)

    def forward(self, x):
        skip = self.stem(x)
        y = self.down(skip)
        y = F.relu(self.res_bn(self.res_conv(y)) + y)
        y = F.relu(self.up_bn(self.up(y)))
        return self.head(torch.cat([y, skip], dim=1))


# ---------------------------------------------------------------------------------------------
# models with non-linear ops (sigmoid/tanh, softmax, layernorm, attention, GLU, ...)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global average, 1x1 reduce, ReLU, 1x1 expand, sigmoid gate."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(F.relu(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: 1x1 expand, depthwise 3x3, squeeze-excite, 1x1 project (+ skip)."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int):
        super().__init__()
        hidden = cin * expand
        self.expand = nn.Sequential(*conv_bn(cin, hidden, 1), nn.Hardswish())
        self.depthwise = nn.Sequential(*conv_bn(hidden, hidden, 3, stride, 1, groups=hidden),
                                       nn.Hardswish())
        self.se = SqueezeExcite(hidden, max(hidden // 4, 4))
        self.project = nn.Sequential(*conv_bn(hidden, cout, 1))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class MobileNetV2SE(nn.Module):
    """A small MobileNetV2-style classifier with squeeze-excite gates and hard-swish
    (3x32x32): stem conv, four inverted residual blocks, 1x1 head, global pool, dense."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 8, 3, 2, 1), nn.Hardswish())
        self.blocks = nn.Sequential(InvertedResidual(8, 8, 2, 1), InvertedResidual(8, 16, 3, 2),
                                    InvertedResidual(16, 16, 3, 1),
                                    InvertedResidual(16, 24, 3, 2))
        self.head = nn.Sequential(*conv_bn(24, 48, 1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(48, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.head(self.blocks(self.stem(x))), 1))


class ConvDenoiser(nn.Module):
    """A speech-enhancement style mask estimator on a 1 x 32 x 32 (frequency x time) spectrogram:
    two strided conv stages down, nearest Upsample + conv stages up with a skip connection, and a
    sigmoid mask at the input resolution."""

    def __init__(self, channels: int = 8):
        super().__init__()
        c = channels
        self.down1 = nn.Sequential(*conv_bn(1, c, 3, 2, 1), nn.ReLU())
        self.down2 = nn.Sequential(*conv_bn(c, 2 * c, 3, 2, 1), nn.ReLU())
        self.up1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                 *conv_bn(2 * c, c, 3, 1, 1), nn.ReLU())
        self.up2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                 *conv_bn(c, c, 3, 1, 1), nn.ReLU())
        self.mask = nn.Conv2d(c, 1, 3, 1, 1)

    def forward(self, x):
        skip = self.down1(x)
        y = self.up1(self.down2(skip)) + skip
        return torch.sigmoid(self.mask(self.up2(y)))


class TransformerEncoder(nn.Module):
    """A one-layer transformer text/keyword classifier on 16 token ids (vocabulary 32): embedding,
    multi-head self-attention, LayerNorm, GELU feed-forward, LayerNorm, mean over time, dense."""

    def __init__(self, vocab: int = 32, dim: int = 32, heads: int = 2, num_classes: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, tokens):
        x = self.embed(tokens)
        attended, _ = self.attention(x, x, x, need_weights=False)
        x = self.norm1(x + attended)
        x = self.norm2(x + self.ffn(x))
        return self.fc(x.mean(1))


class ConformerBlock(nn.Module):
    """A small conformer-style block on 32 frames of 16 features ([T, C], batch first): half-step
    feed-forward (LayerNorm, Linear, SiLU, Linear, x0.5), convolution module (LayerNorm,
    pointwise conv, GLU, depthwise Conv1d, BatchNorm, SiLU, pointwise conv), LayerNorm, mean
    over time, dense."""

    def __init__(self, dim: int = 16, kernel: int = 5, num_classes: int = 6):
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.SiLU(),
                                 nn.Linear(4 * dim, dim))
        self.conv_norm = nn.LayerNorm(dim)
        self.pointwise1 = nn.Conv1d(dim, 2 * dim, 1)
        self.glu = nn.GLU(dim=1)
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.bn = nn.BatchNorm1d(dim)
        self.act = nn.SiLU()
        self.pointwise2 = nn.Conv1d(dim, dim, 1)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = x + 0.5 * self.ffn(x)
        y = self.conv_norm(x).transpose(1, 2)
        y = self.act(self.bn(self.depthwise(self.glu(self.pointwise1(y)))))
        x = x + self.pointwise2(y).transpose(1, 2)
        return self.fc(self.norm(x).mean(1))


# ---------------------------------------------------------------------------------------------
# recurrent models (GRU / LSTM)


class CRNNKeywordSpotter(nn.Module):
    """A streaming CRNN keyword spotter on 1 x 49 x 10 MFCC frames (time x coefficients, 12
    classes): two causal 3x3 convs (padded on past frames only; the first strided 2 in
    frequency), the channels and coefficients of each frame flattened into a 49-step
    sequence, a GRU, and per-frame class scores [N, 49, 12] (the decision is the last frame's,
    or a running maximum). Every op treats time causally, so it packs with
    ``tpacker --isstream split_h`` and runs frame by frame."""

    def __init__(self, num_classes: int = 12, channels: int = 8, hidden: int = 32):
        super().__init__()
        self.front = nn.Sequential(nn.ZeroPad2d((1, 1, 2, 0)), *conv_bn(1, channels, 3, (1, 2)),
                                   nn.ReLU(),
                                   nn.ZeroPad2d((1, 1, 2, 0)), *conv_bn(channels, channels, 3),
                                   nn.ReLU())
        self.gru = nn.GRU(channels * 5, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        y = self.front(x)                                  # [N, C, 49, 5]
        y = y.permute(0, 2, 1, 3).flatten(2)               # [N, 49, C * 5]
        y, _ = self.gru(y)
        return self.fc(y)                                  # [N, 49, 12]


class LSTMVoiceActivity(nn.Module):
    """A voice-activity detector on 32 frames of 40 log-mel features (batch first): a 2-layer
    LSTM and a per-frame speech probability (dense + sigmoid), [N, 32]."""

    def __init__(self, features: int = 40, hidden: int = 24):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=2, batch_first=True)
        self.fc = nn.Linear(hidden, 1)

    def forward(self, x):
        y, _ = self.lstm(x)
        return torch.sigmoid(self.fc(y)).flatten(1)


class GRUDenoiser(nn.Module):
    """An RNNoise-style noise suppressor on 32 frames of 64 spectral bins (batch first): dense
    feature compression with ReLU, a GRU, a dense layer back to 64 bins, a sigmoid gain per bin,
    and the input multiplied by that mask."""

    def __init__(self, bins: int = 64, hidden: int = 32):
        super().__init__()
        self.compress = nn.Linear(bins, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.expand = nn.Linear(hidden, bins)

    def forward(self, x):
        y, _ = self.gru(F.relu(self.compress(x)))
        return x * torch.sigmoid(self.expand(y))


@dataclass(frozen=True)
class ZooEntry:
    builder: Callable[..., nn.Module]
    input_shape: Callable[..., tuple[int, ...]]
    reference: str | None = None  # MLPerf Tiny TFLite file it mirrors
    input_dtype: torch.dtype = torch.float32  # token ids: torch.long
    input_range: int = 0  # token ids: the vocabulary size


def _fixed(*shape: int):
    return lambda **kw: shape


ZOO: dict[str, ZooEntry] = {
    "lenet5": ZooEntry(LeNet5, _fixed(1, 28, 28)),
    "resnet8": ZooEntry(ResNet8, _fixed(3, 32, 32), "pretrainedResnet_quant.tflite"),
    "ds_cnn": ZooEntry(DSCNN, _fixed(1, 49, 10), "kws_ref_model.tflite"),
    "mobilenet_v1_025": ZooEntry(
        lambda num_classes=2, input_size=96: MobileNetV1(num_classes),
        lambda input_size=96, **kw: (3, input_size, input_size), "vww_96_int8.tflite"),
    "fc_autoencoder": ZooEntry(FCAutoencoder, _fixed(640), "ad01_int8.tflite"),
    "tiny_unet": ZooEntry(TinyUNet, _fixed(3, 16, 16)),
    "mobilenet_v2_se": ZooEntry(MobileNetV2SE, _fixed(3, 32, 32)),
    "conv_denoiser": ZooEntry(ConvDenoiser, _fixed(1, 32, 32)),
    "transformer_encoder": ZooEntry(TransformerEncoder, _fixed(16), input_dtype=torch.long,
                                    input_range=32),
    "conformer_block": ZooEntry(ConformerBlock, _fixed(32, 16)),
    "crnn_kws": ZooEntry(CRNNKeywordSpotter, _fixed(1, 49, 10)),
    "lstm_vad": ZooEntry(LSTMVoiceActivity, _fixed(32, 40)),
    "gru_denoiser": ZooEntry(GRUDenoiser, _fixed(32, 64)),
}
NAMES: tuple[str, ...] = tuple(ZOO)


def _entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise KeyError(f"no zoo model '{name}'; choose one of {', '.join(NAMES)}")
    return ZOO[name]


def build(name: str, **kw) -> nn.Module:
    """A freshly initialised model (``mobilenet_v1_025`` takes ``input_size``, several take
    ``num_classes``)."""
    return _entry(name).builder(**kw)


def input_shape(name: str, **kw) -> tuple[int, ...]:
    """The input shape without the batch axis (``mobilenet_v1_025`` takes ``input_size``)."""
    return tuple(_entry(name).input_shape(**kw))


def example_input(name: str, batch: int, seed: int = 0, **kw) -> torch.Tensor:
    """A random input batch for a zoo model: normal floats, or token ids in the vocabulary."""
    entry, generator = _entry(name), torch.Generator().manual_seed(seed)
    shape = (batch, *input_shape(name, **kw))
    if entry.input_dtype == torch.long:
        return torch.randint(0, entry.input_range, shape, generator=generator)
    return torch.randn(shape, generator=generator)
