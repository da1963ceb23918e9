"""Tiny models that reach every non-linear / attention construct linger quantizes, and the flow
that takes one through init -> QAT -> eval -> export -> executor (integer model inputs too)."""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from linger_flow import Result, assert_identical, train_steps  # noqa: F401 (re-exported)

import linger
import thinker
from thinker.runtime import DumpHook


class Activations(nn.Module):
    """sigmoid/tanh in every spelling, softmax/log_softmax over several dims, GLU, PReLU,
    LayerNorm (affine, plain, over two axes)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 16)
        self.sigmoid = nn.Sigmoid()
        self.tanh = nn.Tanh()
        self.softmax = nn.Softmax(dim=1)
        self.log_softmax = nn.LogSoftmax(dim=-1)
        self.glu = nn.GLU(dim=1)
        self.prelu = nn.PReLU()
        self.prelu_c = nn.PReLU(4)
        self.norm = nn.LayerNorm(16)
        self.norm_plain = nn.LayerNorm(16, elementwise_affine=False)
        self.norm_2d = nn.LayerNorm([4, 4])

    def forward(self, x):
        y = self.fc(x)                                   # [N, 16]
        grid = y.view(-1, 4, 4)                           # [N, 4, 4]
        parts = [
            torch.sigmoid(y), F.sigmoid(y), y.sigmoid(), self.sigmoid(y),
            torch.tanh(y), F.tanh(y), y.tanh(), self.tanh(y),
            F.softmax(y, dim=-1), grid.softmax(1), torch.softmax(grid, 2), self.softmax(grid),
            F.log_softmax(y, dim=1), grid.log_softmax(dim=1), self.log_softmax(grid),
            self.glu(grid), F.glu(y), F.glu(grid, 2),
            self.prelu(y), self.prelu_c(grid),
            self.norm(y), self.norm_plain(y), self.norm_2d(grid),
        ]
        return torch.cat([p.flatten(1) for p in parts], dim=1)


class Attention(nn.Module):
    """Token ids -> embedding -> self-attention -> LayerNorm -> dense, with products of
    activations in every spelling."""

    def __init__(self, batch_first: bool = True, vocab: int = 20, dim: int = 8, heads: int = 2):
        super().__init__()
        self.batch_first = batch_first
        self.embed = nn.Embedding(vocab, dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=batch_first)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)

    def forward(self, tokens):
        x = self.embed(tokens)                            # [N, L, E]
        if not self.batch_first:
            x = x.transpose(0, 1)
        attended, _ = self.attention(x, x, x)
        if not self.batch_first:
            attended = attended.transpose(0, 1)
        y = self.fc(self.norm(attended))                  # [N, L, E]
        gram = y @ y.transpose(1, 2)                      # [N, L, L]
        mixed = torch.bmm(gram.softmax(-1), y)            # [N, L, E]
        twice = torch.matmul(mixed, x.transpose(1, 2) if self.batch_first else
                             x.permute(1, 2, 0))          # [N, L, L]
        return torch.cat([mixed.flatten(1), twice.matmul(y).flatten(1)], dim=1)


class AllOps(nn.Module):
    """Every construct in one model (for the packed path): ids -> embedding -> attention ->
    layernorm -> bmm -> sigmoid, tanh, softmax, log_softmax, GLU, PReLU."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)
        self.glu = nn.GLU()
        self.prelu = nn.PReLU()

    def forward(self, tokens):
        x = self.embed(tokens)
        attended, _ = self.attention(x, x, x, need_weights=False)
        y = self.fc(self.norm(x + attended))
        gram = torch.bmm(y, y.transpose(1, 2))
        return torch.cat([torch.sigmoid(y), y.tanh(), gram.softmax(-1), gram.log_softmax(-1),
                          self.glu(y), self.prelu(y)], dim=-1)


def token_input(vocab: int, length: int = 6):
    def make(batch: int, seed: int) -> torch.Tensor:
        return torch.randint(0, vocab, (batch, length),
                             generator=torch.Generator().manual_seed(seed))

    return make


def float_input(*shape: int):
    def make(batch: int, seed: int) -> torch.Tensor:
        return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed))

    return make


def flow(model: nn.Module, make_input, config: dict, folder: str, n_inputs: int = 16,
         export_batch: int | None = 1) -> Result:
    """init -> 3 QAT steps -> eval -> export -> executor on ``n_inputs`` fresh inputs, every
    tensor of both sides kept. ``export_batch=None`` exports with all the comparison inputs
    (models whose batch does not stay on axis 0 inside)."""
    torch.manual_seed(0)
    quantized = linger.init(model, config)
    train_steps(quantized, make_input(16, 1), 3)
    quantized.eval()
    x = make_input(n_inputs, 7)
    path = os.path.join(folder, "model.onnx")
    linger.onnx.export(quantized, x if export_batch is None else x[:export_batch], path)
    values = linger.onnx.capture(quantized, x)
    with torch.no_grad():
        output = quantized(x).numpy()
    dump = DumpHook(keep=True)
    executed = thinker.load(path).run({"input": x.numpy()}, hooks=[dump])
    return Result(quantized, x.numpy(), values, output, dump.values, executed["output"])


