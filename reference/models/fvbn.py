"""Fully visible belief networks: autoregressive models of binary vectors x in {0, 1}^D.

Every model here shares one interface (``AutoregressiveModel``), in the natural order x_1..x_D:

* ``forward(x)``: x ``[B, D]`` -> conditional logits ``[B, D]``; column i is the logit of
  p(x_i = 1 | x_<i) and depends on x_1..x_(i-1) only, *whatever the parameter values*: the
  structure (masks, shifts, causal padding) lives in buffers and code, never in an nn.Parameter.
* ``log_prob(x)``: ``[B]``, log p(x) by the chain rule (``formulas.chain_rule_log_likelihood``).
* ``sample(n, generator=None)``: ``[n, D]`` float32 in {0, 1}, ancestral: coordinate i is drawn
  from p(x_i | x_<i) after x_<i, by comparing one uniform draw per entry (all made up front with
  ``generator``, on the generator's device) with the conditional probability.

Models: ``LogisticFVBN`` (Frey 1998), ``NADE`` (Larochelle & Murray 2011), ``MADE`` (Germain et al.
2015) and ``CausalConvNet`` (a small WaveNet, van den Oord et al. 2016).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reference import formulas


class AutoregressiveModel(nn.Module):
    """The shared ``log_prob`` and ``sample``; subclasses set ``self.dim`` and define ``forward``."""

    dim: int

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) per example: x ``[B, D]`` -> ``[B]``."""
        return formulas.chain_rule_log_likelihood(x, self(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` ancestral samples, float32 ``[n, D]`` in {0, 1}."""
        ref = next(self.parameters())
        u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64,
                       device=generator.device if generator is not None else ref.device).to(ref.device)
        x = torch.zeros(n, self.dim, dtype=ref.dtype, device=ref.device)
        for i in range(self.dim):  # D forward passes; column i only needs the columns < i already set
            p = torch.sigmoid(self(x)[:, i].double())
            x[:, i] = (u[:, i] < p).to(x.dtype)
        return x.float()


class LogisticFVBN(AutoregressiveModel):
    """logit_i = b_i + sum_{j<i} W_ij x_j: a linear layer with a strictly lower-triangular mask."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.zeros(dim, dim))  # [D, D]; only the part below the diagonal is used
        self.bias = nn.Parameter(torch.zeros(dim))  # [D]
        self.register_buffer("mask", torch.tril(torch.ones(dim, dim), diagonal=-1))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class NADE(AutoregressiveModel):
    """h_i = sigmoid(c + W[:, <i] x_<i) ``[H]``; logit_i = b_i + V_i . h_i. Weights shared across i."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.dim = dim
        self.W = nn.Parameter(torch.randn(hidden, dim) / dim ** 0.5)  # [H, D] input -> hidden
        self.c = nn.Parameter(torch.zeros(hidden))  # [H]
        self.V = nn.Parameter(torch.randn(dim, hidden) / hidden ** 0.5)  # [D, H] hidden_i -> logit_i
        self.b = nn.Parameter(torch.zeros(dim))  # [D]

    def forward(self, x: Tensor) -> Tensor:
        contrib = x.unsqueeze(1) * self.W  # [B, H, D]: column j is W[:, j] x_j
        # Exclusive cumulative sum: column i is sum_{j<i}. Shift (rather than subtract column i)
        # so that x_i does not enter column i even through rounding.
        a = self.c[:, None] + F.pad(torch.cumsum(contrib, dim=2)[:, :, :-1], (1, 0))  # [B, H, D]
        return self.b + torch.einsum("bhd,dh->bd", torch.sigmoid(a), self.V)


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask ``[out, in]`` (a buffer)."""

    def __init__(self, mask: Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(AutoregressiveModel):
    """A masked MLP (``num_layers`` ReLU hidden layers of width ``hidden``) in the natural order.

    Input i has degree i (1..D). Hidden unit k of every layer has degree ``k mod (D - 1) + 1``
    (a fixed cyclic assignment, so no seed is involved); a unit may see units of degree <= its
    own, and output i sees hidden degrees < i. Plus direct input -> output connections with a
    strictly lower-triangular mask, as in Germain et al.
    """

    def __init__(self, dim: int, hidden: int, num_layers: int = 2):
        super().__init__()
        self.dim = dim
        degrees = [torch.arange(1, dim + 1)]  # input degrees 1..D
        degrees += [torch.arange(hidden) % max(dim - 1, 1) + 1 for _ in range(num_layers)]
        layers: list[nn.Module] = []
        for d_in, d_out in zip(degrees[:-1], degrees[1:]):
            layers += [MaskedLinear(d_out[:, None] >= d_in[None, :]), nn.ReLU()]
        layers.append(MaskedLinear(torch.arange(1, dim + 1)[:, None] > degrees[-1][None, :]))
        self.net = nn.Sequential(*layers)
        self.direct = MaskedLinear(torch.tril(torch.ones(dim, dim), diagonal=-1))
        nn.init.zeros_(self.direct.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x) + self.direct(x)


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only, so output position t sees input positions <= t."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_pad = dilation * (kernel_size - 1)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0)))


class CausalConvNet(AutoregressiveModel):
    """A small WaveNet over the D positions: dilated causal convolutions with gated residual blocks.

    The input is shifted right by one (position i holds x_(i-1), position 0 holds 0) and every
    convolution is causal, so output i sees x_<i only. Block l has dilation ``2 ** l`` and kernel
    size 2, so ``layers`` blocks see the ``2 ** layers`` previous positions. Convolutions are
    translation invariant, hence a learned per-position output bias ``[D]``.
    """

    def __init__(self, dim: int, channels: int, layers: int, kernel_size: int = 2):
        super().__init__()
        self.dim = dim
        self.inp = CausalConv1d(1, channels, kernel_size)
        self.dilated = nn.ModuleList(
            CausalConv1d(channels, 2 * channels, kernel_size, dilation=2 ** l) for l in range(layers))
        self.res_skip = nn.ModuleList(nn.Conv1d(channels, 2 * channels, 1) for _ in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(channels, channels, 1), nn.ReLU(), nn.Conv1d(channels, 1, 1))
        self.position_bias = nn.Parameter(torch.zeros(dim))  # [D]

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(F.pad(x, (1, -1)).unsqueeze(1))  # [B, C, D] from the shifted input [B, 1, D]
        skip = torch.zeros_like(h)
        for dilated, res_skip in zip(self.dilated, self.res_skip):
            a, b = dilated(h).chunk(2, dim=1)
            res, s = res_skip(torch.tanh(a) * torch.sigmoid(b)).chunk(2, dim=1)  # gated unit -> [B, C, D] each
            h, skip = h + res, skip + s
        return self.head(skip)[:, 0] + self.position_bias  # [B, D]
