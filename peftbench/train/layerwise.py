"""IST-style layer-wise importance (Yao et al. 2024, "Layer-wise Importance Matters", Importance-aware
Sparse Tuning): each optimizer step updates only `train.ist.layers` of the method's layers, sampled by
importance; a training knob for any method whose trained tensors live in the transformer's layers (LoRA,
adapters, IA3, ...).

Layers are found by name (`...layer.3.`, `...layers.3.`, `...h.3.`, `...block.3.`): the method's trainable
tensors are grouped by the block they sit in; tensors outside every block (the task head, shared pools)
train every step. Before each step's forward pass the layers not sampled stop requiring gradients, so
backward skips their tensors and AdamW leaves them (and their moments) alone; after the step every tensor
requires gradients again (checkpoints and the saved tensors see the whole method).

Importance, as IST estimates it, by response suppression: every `every` steps, on the step's batch,
`trials` random subsets of `layers` layers have their adaptation suppressed (their tensors set back to
their values at the start, which is the identity for LoRA's B = 0 and adapters' zero up-projection) and
the loss increase over the unsuppressed loss is credited to each suppressed layer, as an exponential moving
average (`decay`). Layers are then drawn without replacement with probabilities softmax of the
standardised scores. Departures: the paper's exact score update and sampling temperature are not
reproduced; the probes run in eval mode (no dropout) on the training batch. One process only.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict

import torch

from ..errors import UserError

log = logging.getLogger("peftbench")

LAYER = re.compile(r"\.(layer|layers|h|block)\.(\d+)\.")


def layer_groups(model) -> dict[str, list]:
    """{block prefix: [trainable tensors in it]}, e.g. 'bert.encoder.layer.3.' -> its LoRA A and B (a task
    head has no layer index in its names, peft's copy of it neither)."""
    groups = defaultdict(list)
    for name, param in model.named_parameters():
        match = LAYER.search(name)
        if param.requires_grad and match:
            groups[name[:match.end()]].append(param)
    return dict(groups)


class LayerSampler:
    def __init__(self, groups: dict[str, list], knobs):
        self.names, self.groups, self.knobs = list(groups), list(groups.values()), knobs
        self.initial = [[p.detach().clone() for p in group] for group in self.groups]
        self.scores = torch.zeros(len(self.groups))
        self.generator = torch.Generator().manual_seed(knobs.seed)
        self.step, self.selected = None, list(range(len(self.groups)))
        self.counts = torch.zeros(len(self.groups), dtype=torch.long)  # how often each layer was updated

    def before_forward(self, model, batch: dict, step: int) -> None:
        if step != self.step:  # a new optimizer step (not the next micro-batch of the same one)
            self.step = step
            if step % self.knobs.every == 0:
                self.update_importance(model, batch)
            self.selected = self.sample()
            self.counts[self.selected] += 1
        chosen = set(self.selected)
        for i, group in enumerate(self.groups):
            for param in group:
                param.requires_grad_(i in chosen)

    def after_step(self) -> None:
        for group in self.groups:
            for param in group:
                param.requires_grad_(True)

    def sample(self) -> list[int]:
        z = (self.scores - self.scores.mean()) / (self.scores.std() + 1e-8) if len(self.scores) > 1 else self.scores
        return torch.multinomial(torch.softmax(z, 0), self.knobs.layers, generator=self.generator).tolist()

    @torch.no_grad()
    def update_importance(self, model, batch: dict) -> None:
        was_training = model.training
        model.eval()
        base = float(model(**batch).loss)
        for _ in range(self.knobs.trials):
            subset = torch.randperm(len(self.groups), generator=self.generator)[:self.knobs.layers].tolist()
            saved = [[p.detach().clone() for p in self.groups[i]] for i in subset]
            for i in subset:
                for param, start in zip(self.groups[i], self.initial[i]):
                    param.copy_(start)
            rise = float(model(**batch).loss) - base
            for i, values in zip(subset, saved):
                for param, value in zip(self.groups[i], values):
                    param.copy_(value)
                self.scores[i] = self.knobs.decay * self.scores[i] + (1 - self.knobs.decay) * rise
        model.train(was_training)
        log.info("ist: importance %s; updates per layer so far %s", [round(float(x), 5) for x in self.scores],
                 self.counts.tolist())


def attach(model, knobs, method: str, processes: int = 1) -> LayerSampler | None:
    """The sampler for `train.ist` (None when train.ist.layers is 0); refuses what it cannot sample."""
    if knobs is None or not knobs.layers:
        return None
    groups = layer_groups(model)
    if len(groups) < 2:
        raise UserError(f"train.ist.layers={knobs.layers}: method '{method}' has {len(groups)} layer(s) of "
                        "trainable tensors in this model; IST samples among a method's per-layer modules (LoRA, "
                        "adapters, ...). Use train.ist.layers=0.")
    if knobs.layers >= len(groups):
        raise UserError(f"train.ist.layers={knobs.layers}: method '{method}' trains {len(groups)} layers here; "
                        f"choose fewer (1 to {len(groups) - 1}), or 0 to train them all every step.")
    if processes > 1:
        raise UserError(f"train.ist.layers={knobs.layers}: IST runs in one process (it changes which tensors "
                        "need gradients between steps, which DDP does not allow); use hardware.num_processes=1.")
    return LayerSampler(groups, knobs)
