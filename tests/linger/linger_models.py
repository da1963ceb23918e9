"""Small models that reach every op linger quantizes, beyond what the zoo uses."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)


class SignalNet(nn.Module):
    """1-D path: Conv1d + folded BatchNorm1d, dilation, groups, 1-D pooling, standalone
    BatchNorm1d, permute/transpose, Linear on a 3-D tensor, squeeze/unsqueeze, split/chunk,
    subtraction, multiplication, clamp."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=2, dilation=2)
        self.bn = nn.BatchNorm1d(8)
        self.grouped = nn.Conv1d(8, 8, 3, padding=1, groups=2, bias=False)
        self.norm = nn.BatchNorm1d(8)
        self.proj = nn.Linear(8, 6)

    def forward(self, x):                                     # [N, 4, 16]
        y = F.relu(self.bn(self.conv(x)))
        y = F.max_pool1d(y, 2)                                 # [N, 8, 8]
        y = self.norm(self.grouped(y))
        y = F.avg_pool1d(y, 3, stride=1, padding=1, count_include_pad=False)
        a, b = torch.split(y, [3, 5], dim=1)
        c, d = y.chunk(2, dim=2)                               # [N, 8, 4] each
        diff = torch.clamp(c - d, -1.0, 0.75)
        t = self.proj(y.transpose(1, 2))                       # [N, 8, 6]
        t = t.permute(0, 2, 1).unsqueeze(1)                    # [N, 1, 6, 8]
        g = t.squeeze(1)[:, 1:5, ::2]                          # [N, 4, 4]
        row = y[:, 2]                                          # [N, 8]
        prod = diff[:, 2:6] * g
        return torch.cat([prod.flatten(1), a.reshape(a.size(0), -1), b[..., :2].flatten(1),
                          row], dim=1)


class ImageNet(nn.Module):
    """2-D path: dilated and grouped convs, standalone BatchNorm2d after a residual add,
    hardtanh, ceil-mode and padded pooling, divisor_override, adaptive pooling to 2x2,
    zero padding, transposed conv with output_padding, view/flatten(2), a concatenation of
    tensors that share one exponent."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        self.grouped = nn.Conv2d(8, 8, 3, padding="same", groups=4)
        self.bn = nn.BatchNorm2d(8)
        self.pad = nn.ZeroPad2d((0, 1, 1, 0))
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.fc = nn.Linear(4 * 8 + 8 * 2, 5)

    def forward(self, x):                                      # [N, 3, 12, 12]
        y = F.hardtanh(self.stem(x), -2.0, 3.0)
        y = self.bn(self.grouped(y) + y)
        y = F.max_pool2d(self.pad(y), 3, stride=2, ceil_mode=True)     # [N, 8, 6, 6]
        p = F.avg_pool2d(y, 2, stride=2, padding=1, ceil_mode=True)    # [N, 8, 4, 4]
        q = F.avg_pool2d(y, 3, stride=1, divisor_override=8)           # [N, 8, 4, 4]
        u = F.relu(self.up(q))                                         # [N, 4, 8, 8]
        u = F.adaptive_avg_pool2d(u[:, :, 1:5, 1:5], 2)                # [N, 4, 2, 2]
        v = u.view(u.size(0), 4, -1).flatten(2)                        # [N, 4, 4]
        same = torch.cat([v, v], dim=2)                                # one exponent: Concat
        s = F.adaptive_avg_pool2d(p, 1).flatten(1)                     # [N, 8]
        return self.fc(torch.cat([same.flatten(1), s, s], dim=1))
