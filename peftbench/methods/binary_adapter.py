"""Binary adapters (Jie, Wang & Deng, ICCV 2023, "Revisiting the Parameter Efficiency of Adapters from
the Perspective of Precision Redundancy", arXiv:2307.16867): Bi-AdaptFormer, AdaptFormer's adapter
with its two projections quantised to `bits` bits (1 in the paper's headline results).

AdaptFormer puts a bottleneck adapter beside the feed-forward block: FFN(x) + s * up(relu(down(x))),
no biases, dropout 0.1 after the activation. Each projection W is quantised as the paper describes:
standardise (w - mean) / std, map each entry to the nearest of 2^bits levels that minimise the
quantisation error of a standard normal (Lloyd-Max; 1 bit: +-sqrt(2/pi)), scale back by std and mean.
Training keeps the full-precision W and passes gradients straight through the rounding (STE); what
a task stores is bits per entry plus the mean and std of each matrix in fp32 (`stored_bits`).

The up projection starts at N(0, 0.001) truncated to +-0.002, as the authors' code does (a zero
matrix has no std to standardise by), so the model starts near, not at, the base model.
Departures: the adapter reads the feed-forward block's input (on ViT the layer-normed stream; the
authors' timm code feeds the stream before the norm), which is the same place on post-norm BERT.
`bits: 32` turns quantisation off (full-precision AdaptFormer, up projection at zero).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import nn

from ..config import MethodConfig
from ..errors import UserError
from .base import METHODS, Method, block_outputs, head_names, hidden_size, replace_module, train_only

# The feed-forward block's first projection per family: its input is the block's input.
FFN_INPUTS = {"bert": r"intermediate\.dense$", "vit": r"mlp\.fc1$|intermediate\.dense$", "gpt2": r"mlp\.c_fc$",
              "llama": r"mlp\.up_proj$", "t5": r"DenseReluDense\.wi(_0)?$"}
for _alias, _of in {"roberta": "bert", "xlm-roberta": "bert", "electra": "bert", "deberta-v2": "bert",
                    "audio-spectrogram-transformer": "vit", "mistral": "llama", "qwen2": "llama",
                    "qwen3": "llama"}.items():
    FFN_INPUTS[_alias] = FFN_INPUTS[_of]
FULL_PRECISION = 32


@dataclass
class BinaryAdapterConfig(MethodConfig):
    dim: int = MISSING  # bottleneck width (the paper: 32, and 1 for the smallest size)
    bits: int = MISSING  # bits per adapter weight: 1, 2, 4, 8, or 32 (no quantisation)
    scale: float = MISSING  # AdaptFormer's s on the adapter branch (the paper tunes it per task)
    dropout: float = MISSING

    def problems(self) -> list[str]:
        out = []
        if self.dim < 1:
            out.append(f"method.dim={self.dim}: must be >= 1 (the bottleneck width).")
        if self.bits not in (1, 2, 4, 8, FULL_PRECISION):
            out.append(f"method.bits={self.bits}: choose 1, 2, 4, 8 or 32 (full precision).")
        if not 0 <= self.dropout < 1:
            out.append(f"method.dropout={self.dropout}: must be in [0, 1).")
        return out


@functools.lru_cache
def gaussian_levels(bits: int, iterations: int = 100) -> torch.Tensor:
    """The 2^bits levels minimising the expected squared error on N(0, 1) (Lloyd-Max), on the CPU."""
    cpu = {"dtype": torch.float64, "device": "cpu"}  # also while a model is built on the meta device
    normal = torch.distributions.Normal(torch.tensor(0.0, **cpu), torch.tensor(1.0, **cpu))
    n = 2 ** bits
    levels = normal.icdf((torch.arange(n, **cpu) + 0.5) / n)
    for _ in range(iterations):  # each level moves to the mean of N(0, 1) between its two thresholds
        edges = torch.cat([torch.tensor([-math.inf], **cpu), (levels[1:] + levels[:-1]) / 2,
                           torch.tensor([math.inf], **cpu)])
        pdf, cdf = normal.log_prob(edges).exp(), normal.cdf(edges)
        levels = (pdf[:-1] - pdf[1:]) / (cdf[1:] - cdf[:-1])
    return levels.float()


class QuantLinear(nn.Module):
    """A bias-free linear layer whose weight is quantised in the forward pass (STE backward)."""

    def __init__(self, d_in: int, d_out: int, bits: int):
        super().__init__()
        self.bits = bits
        self.weight = nn.Parameter(torch.empty(d_out, d_in))

    def quantized_weight(self) -> torch.Tensor:
        w = self.weight
        if self.bits == FULL_PRECISION:
            return w
        mean, std = w.mean(), w.std()
        z = (w - mean) / (std + 1e-5)
        levels = gaussian_levels(self.bits).to(z)
        q = levels[(z.detach().unsqueeze(-1) - levels).abs().argmin(-1)]
        return (z + (q - z).detach()) * std + mean  # value of q, gradient of z (straight through)

    def forward(self, x):
        return x @ self.quantized_weight().T

    def stored_bits(self) -> int:
        """What a task stores: `bits` per entry, plus the fp32 mean and std of the matrix."""
        return self.weight.numel() * self.bits + (0 if self.bits == FULL_PRECISION else 2 * 32)


class BinaryAdapter(nn.Module):
    def __init__(self, d: int, knobs: BinaryAdapterConfig):
        super().__init__()
        self.down = QuantLinear(d, knobs.dim, knobs.bits)
        self.up = QuantLinear(knobs.dim, d, knobs.bits)
        self.act, self.dropout, self.scale = nn.ReLU(), nn.Dropout(knobs.dropout), knobs.scale
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))  # nn.Linear's default
        if knobs.bits == FULL_PRECISION:
            nn.init.zeros_(self.up.weight)
        else:
            nn.init.trunc_normal_(self.up.weight, std=0.001, a=-0.002, b=0.002)
        self.input = None  # the feed-forward block's input, set by a hook on its first projection

    def forward(self, x):
        return self.scale * self.up(self.dropout(self.act(self.down(x))))


class BesideFFN(nn.Module):
    """The feed-forward block's output projection, plus the adapter's output on the block's input."""

    def __init__(self, inner: nn.Module, adapter: BinaryAdapter):
        super().__init__()
        self.inner, self.adapter = inner, adapter

    def forward(self, x, *args, **kwargs):
        return self.inner(x, *args, **kwargs) + self.adapter(self.adapter.input)

    @property
    def weight(self):
        return self.inner.weight


def _remember_input(adapter: BinaryAdapter):
    def hook(module, args):
        adapter.input = args[0]
    return hook


def build(model, knobs: BinaryAdapterConfig, family: str):
    if family not in FFN_INPUTS:
        raise UserError(f"method binary_adapter does not know the feed-forward input of model family '{family}'. "
                        f"Supported: {', '.join(sorted(FFN_INPUTS))}.")
    head = head_names(model)
    outputs = block_outputs(model, family, ["ffn"], knobs.name)
    pattern = re.compile(FFN_INPUTS[family])
    inputs = [n for n, _ in model.named_modules() if pattern.search(n)]
    if len(inputs) != len(outputs):
        raise UserError(f"method binary_adapter: model family '{family}' has {len(inputs)} feed-forward inputs "
                        f"but {len(outputs)} outputs; cannot pair them.")
    d, dtype = hidden_size(model), next(model.parameters()).dtype
    for source, target in zip(inputs, outputs):
        adapter = BinaryAdapter(d, knobs).to(dtype)
        model.get_submodule(source).register_forward_pre_hook(_remember_input(adapter))
        replace_module(model, target, BesideFFN(model.get_submodule(target), adapter))
    return train_only(model, lambda n: ".adapter." in n or n in head)


METHODS.register("binary_adapter", Method(build=build, knobs=BinaryAdapterConfig))
