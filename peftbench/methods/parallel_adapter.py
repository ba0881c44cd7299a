"""The adapters of He et al. (2022), "Towards a Unified View of Parameter-Efficient Transfer Learning".

A parallel adapter reads the input x of a sub-layer (attention or feed-forward) and adds its output to
that sub-layer's output h: h <- h + s * up(f(down(x))), instead of Houlsby's sequential h <- h + up(f(down(h))).
`parallel_adapter` has s = 1; `scaled_parallel_adapter` s = 4 (the paper's LoRA-like scaling, its best
FFN variant); `mam_adapter` (mix-and-match) is prefix tuning on attention (`prefix.py`, l = 30) plus a
scaled parallel adapter on the feed-forward sub-layer (r = 512 for d = 1024: reduction_factor 2). The
up projection starts at zero, so an adapter starts as the identity (prefixes do not).
Each adapter has 2*r*d + r + d parameters. In the paper's setting (BART-large, prefixes in all 36 attention
modules, adapters on 24 FFNs) MAM tunes 6.7% of the model's parameters (tests/test_params.py derives it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from omegaconf import MISSING

from ..errors import UserError
from .adapter import AdapterConfig, Bottleneck, WithAdapter, insert
from .base import METHODS, Method, hidden_size
from .prefix import PrefixConfig, add_prefixes

# Where each parallel adapter reads x: sink (the sub-layer's last module, wrapped) -> source (its input).
SOURCES = {
    "bert": [(r"attention\.output\.dense$", "attention.self"), (r"output\.dense$", "intermediate")],
    "vit": [(r"attention\.o_proj$", "attention"), (r"mlp\.fc2$", "mlp")],
}
for _alias in ("roberta", "xlm-roberta", "electra", "deberta-v2"):
    SOURCES[_alias] = SOURCES["bert"]


@dataclass
class ParallelConfig(AdapterConfig):
    scale: float = MISSING  # s: the adapter's output is multiplied by s

    def problems(self) -> list[str]:
        return super().problems() + ([f"method.scale={self.scale}: must be > 0."] if self.scale <= 0 else [])


@dataclass
class MAMConfig(ParallelConfig, PrefixConfig):
    def problems(self) -> list[str]:
        return ParallelConfig.problems(self) + PrefixConfig.problems(self)


class ParallelBottleneck(Bottleneck):
    """Adds s * up(f(down(x))) to the sub-layer output h, x being the sub-layer input its source saw."""

    def __init__(self, d: int, m: int, activation: str, scale: float):
        super().__init__(d, m, activation)
        self.scale, self.source = scale, None

    def remember(self, module, args, kwargs):  # forward pre-hook on the source module
        self.source = args[0] if args else kwargs["hidden_states"]

    def forward(self, h):
        x, self.source = self.source, None
        return h + self.scale * self.up(self.act(self.down(x)))


def _source_name(family: str, sink: str) -> str:
    for pattern, source in SOURCES[family]:
        if re.search(pattern, sink):
            return re.sub(pattern, source, sink)
    raise UserError(f"no input module known for parallel adapter at {sink} (family {family}).")


def add_parallel_adapters(model, knobs: ParallelConfig, family: str):
    if family not in SOURCES:
        raise UserError(f"method '{knobs.name}' knows where sub-layer inputs are in model families "
                        f"{', '.join(sorted(SOURCES))}, not '{family}'.")
    d = hidden_size(model)
    m = max(1, int(d // knobs.reduction_factor))
    dtype = next(model.parameters()).dtype
    model = insert(model, family, knobs, lambda: ParallelBottleneck(d, m, knobs.non_linearity, knobs.scale).to(dtype))
    for name, module in list(model.named_modules()):
        if isinstance(module, WithAdapter) and isinstance(module.adapter, ParallelBottleneck):
            source = model.get_submodule(_source_name(family, name))
            source.register_forward_pre_hook(module.adapter.remember, with_kwargs=True)
    return model


def build_mam(model, knobs: MAMConfig, family: str):
    encoder = add_prefixes(model, family, knobs)
    model = add_parallel_adapters(model, knobs, family)
    encoder.requires_grad_(True)  # `insert` trained only the adapters, norms and head
    return model


METHODS.register("parallel_adapter", Method(build=add_parallel_adapters, knobs=ParallelConfig))
METHODS.register("scaled_parallel_adapter", Method(build=add_parallel_adapters, knobs=ParallelConfig))  # its YAML: scale 4
METHODS.register("mam_adapter", Method(build=build_mam, knobs=MAMConfig))
