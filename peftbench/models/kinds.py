"""Models, tokenizers, image processors and audio feature extractors for the task kinds beyond
classification: causal LMs (generation, multiple choice), seq2seq LMs, image and audio classifiers,
through the transformers Auto class each kind names (`config/kinds.py: KINDS`)."""

from __future__ import annotations

from ..errors import UserError
from ..config import KINDS
from .loading import from_pretrained, model_config, resolve_path


def load_kind_model(model_cfg, num_labels: int, weights: bool, kind: str, load_kwargs: dict | None = None):
    """The model for `kind`: random init from `model.arch` (or `weights=False`), else the checkpoint."""
    import transformers

    auto_name = KINDS[kind].auto_class
    auto = getattr(transformers, auto_name)
    new_head = KINDS[kind].new_head
    extra = {"num_labels": num_labels} if new_head else {}
    try:
        if not weights or not model_cfg.name_or_path:
            return auto.from_config(model_config(model_cfg, **extra))
        if new_head:  # an ImageNet (AudioSet, CoNLL) head of 1000 (527, 9) classes is replaced by the task's
            extra["ignore_mismatched_sizes"] = True
        return from_pretrained(auto, resolve_path(model_cfg.name_or_path), model_cfg.name, **extra,
                               **(load_kwargs or {}))
    except ValueError as exc:  # "Unrecognized configuration class ... for this kind of AutoModel"
        if "Unrecognized configuration class" not in str(exc):
            raise
        fits = {"AutoModelForCausalLM": "a decoder-only model (model=tiny-gpt2, tiny-llama, or a GPT-2/Llama/"
                                        "Qwen checkpoint)",
                "AutoModelForSeq2SeqLM": "an encoder-decoder model (model=tiny-t5, or a T5/BART checkpoint)",
                "AutoModelForImageClassification": "an image model (model=tiny-vit, or a ViT checkpoint)",
                "AutoModelForAudioClassification": "an audio model (model=tiny-ast, or an Audio Spectrogram "
                                                   "Transformer checkpoint)"}
        fits["AutoModelForTokenClassification"] = "an encoder (model=tiny, minilm, or a BERT/RoBERTa checkpoint)"
        raise UserError(f"model '{model_cfg.name}' cannot be built as {auto_name}, which task kind '{kind}' "
                        f"needs. Use {fits[auto_name]}.") from exc


def special_ids(tokenizer) -> dict:
    """eos (ends every answer; a BERT-style tokenizer's [SEP]), pad (eos if the tokenizer has none)
    and bos (prepended to prompts when the tokenizer adds one itself, as Llama's does)."""
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if eos is None:
        raise UserError(f"tokenizer {type(tokenizer).__name__} has neither an eos nor a sep token to end answers.")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    bos = tokenizer.bos_token_id if getattr(tokenizer, "add_bos_token", False) else None
    return {"eos": eos, "pad": pad, "bos": bos}


def load_image_processor(model_cfg):
    """The checkpoint's image processor (resize, rescale, normalise), or for a random-init model a
    ViT processor at the config's image size (mean and std 0.5, as ViT's)."""
    source = model_cfg.tokenizer or model_cfg.name_or_path
    if source:
        from transformers import AutoImageProcessor

        return from_pretrained(AutoImageProcessor, resolve_path(source), model_cfg.name)
    import transformers

    size = int((model_cfg.arch or {}).get("image_size", 224))
    processor = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
    return processor(size={"height": size, "width": size})


def load_feature_extractor(model_cfg):
    """The checkpoint's audio feature extractor (waveform -> normalised log-mel filterbank frames), or for
    a random-init model an AST feature extractor at the config's mel bins and frame count (16 kHz)."""
    source = model_cfg.tokenizer or model_cfg.name_or_path
    if source:
        from transformers import AutoFeatureExtractor

        return from_pretrained(AutoFeatureExtractor, resolve_path(source), model_cfg.name)
    from transformers import ASTFeatureExtractor

    arch = model_cfg.arch or {}
    return ASTFeatureExtractor(num_mel_bins=int(arch.get("num_mel_bins", 128)),
                               max_length=int(arch.get("max_length", 1024)))
