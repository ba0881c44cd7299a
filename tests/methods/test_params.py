"""`peftbench params`: counts of base-size models built from their config (meta device, no download),
checked against published figures and counts derived by hand from the architecture.

roberta-base / bert-base: 12 layers, d=768, feed-forward 3072. roberta-large: 24 layers, d=1024, 4096.
"""

import json

import pytest

from conftest import make_cfg
from peftbench.cli import main
from peftbench.methods.counting import build_offline


def counts(model, method, *knobs, labels=2):
    return build_offline(make_cfg(f"model={model}", f"method={method}", *knobs), labels)[2]


def test_lora_r8_query_value_roberta_base_is_the_papers_0_3m():
    # 12 layers x 2 matrices (W_q, W_v) x (A: 8x768 + B: 768x8)
    p = counts("roberta-base", "lora", "method.r=8")
    assert p["method"] == 12 * 2 * 2 * 8 * 768 == 294_912
    # RoBERTa's head: dense 768x768 + out_proj 768x2, with biases; trained, reported apart.
    assert p["head"] == 768 * 768 + 768 + 768 * 2 + 2 == 592_130
    assert p["base_total"] == 124_647_170  # RobertaForSequenceClassification, 2 labels


def test_lora_r8_roberta_large_is_the_papers_0_8m():
    assert counts("roberta-large", "lora", "method.r=8")["method"] == 24 * 2 * 2 * 8 * 1024 == 786_432


def test_bitfit_bert_base_is_about_0_1m_and_0_09_percent():
    # per layer: q, k, v, attention-out, intermediate (3072), output, two LayerNorms;
    # plus the embedding LayerNorm and the pooler: biases only.
    per_layer = 4 * 768 + 3072 + 768 + 2 * 768
    p = counts("bert-base-uncased", "bitfit")
    assert p["method"] == 12 * per_layer + 768 + 768 == 102_912
    assert round(p["method_pct"], 2) == 0.09
    assert p["head"] == 768 * 2 + 2


def test_ia3_roberta_base_peft_default_and_the_paper_placement():
    # peft's default targets key, value and every `output.dense` (the attention output too), scaling
    # the feed-forward output's input (3072); the (IA)^3 paper scales k, v and the feed-forward only.
    assert counts("roberta-base", "ia3")["method"] == 12 * (768 + 768 + 768 + 3072) == 64_512
    paper = counts("roberta-base", "ia3", r"method.target_modules='.*(key|value|layer\.\d+\.output\.dense)$'",
                   r"method.feedforward_modules='.*layer\.\d+\.output\.dense$'")
    assert paper["method"] == 12 * (768 + 768 + 3072) == 55_296


def test_vera_r1024_roberta_base_is_the_papers_0_043m():
    # per adapted matrix: lambda_d (r) + lambda_b (768); the random projections are frozen buffers.
    assert counts("roberta-base", "vera", "method.r=1024")["method"] == 12 * 2 * (1024 + 768) == 43_008


def test_prompt_and_prefix_tuning_sizes():
    assert counts("roberta-base", "prompt_tuning", "method.num_virtual_tokens=20")["method"] == 20 * 768
    # peft's: a key and a value prefix per layer, no reparametrisation MLP
    assert counts("roberta-base", "prefix_tuning_peft", "method.num_virtual_tokens=10")["method"] == 12 * 2 * 10 * 768


def test_prefix_tuning_written_here_stores_l_2_n_d():
    """Li & Liang: P = MLP(P') while training (P' n x d, MLP d -> 512 -> L*2*d), only P (L x 2 x n x d) stored."""
    p = counts("roberta-base", "prefix_tuning", "method.num_virtual_tokens=10")
    assert p["method_stored"] == 12 * 2 * 10 * 768 == 184_320
    assert p["method"] == 10 * 768 + (768 * 512 + 512) + (512 * 12 * 2 * 768 + 12 * 2 * 768)
    plain = counts("roberta-base", "prefix_tuning", "method.num_virtual_tokens=10", "method.reparameterize=false")
    assert plain["method"] == plain["method_stored"] == 184_320


def _bart_large_total() -> int:
    import torch
    import transformers

    with torch.device("meta"):  # BartConfig's defaults are bart-large's: d=1024, 12 + 12 layers, FFN 4096
        model = transformers.BartForConditionalGeneration(transformers.BartConfig())
    return sum(p.numel() for p in model.parameters())


def test_he_et_al_formulas_give_the_papers_printed_shares_on_bart_large():
    """He et al. (2022) count on BART-large (406.3M): prefixes in all 36 attention modules (12 encoder
    self, 12 decoder self, 12 cross), 2*l*d each; a parallel adapter 2*r*d + r + d per FFN (24).
    The paper prints prefix tuning l=200: 3.6%, MAM (l=30 + scaled PA r=512 on FFN): 6.7%."""
    total = _bart_large_total()
    prefix = lambda l: 36 * 2 * l * 1024  # noqa: E731
    adapter = 24 * (2 * 512 * 1024 + 512 + 1024)
    assert round(100 * prefix(200) / total, 1) == 3.6
    assert round(100 * (prefix(30) + adapter) / total, 1) == 6.7


def test_parallel_and_mam_adapters_roberta_base_match_the_formula():
    # parallel adapter on the 12 FFNs, r = 768 / 16 = 48: 2*r*d + r + d each (s does not add parameters)
    for name in ("parallel_adapter", "scaled_parallel_adapter"):
        assert counts("roberta-base", name)["method"] == 12 * (2 * 48 * 768 + 48 + 768) == 894_528
    # MAM as the paper sets it (l = 30, r = d / 2): stored prefixes 12*2*30*768 + FFN adapters r = 384
    p = counts("roberta-base", "mam_adapter")
    assert p["method_stored"] == 12 * 2 * 30 * 768 + 12 * (2 * 384 * 768 + 384 + 768) == 7_644_672
    assert p["method"] - p["method_stored"] == (30 * 768 + 768 * 512 + 512 + 512 * 12 * 2 * 768 + 12 * 2 * 768
                                                - 12 * 2 * 30 * 768)  # P' and the MLP, trained then folded


def test_hydra_roberta_base_counts_both_branches():
    # per output projection (d_in -> d_out): parallel r(d_in + d_out) + r + d_out, sequential 2 r d_out + r + d_out
    def layer(d_in, d_out, r=8):
        return (r * (d_in + d_out) + r + d_out) + (2 * r * d_out + r + d_out)

    assert counts("roberta-base", "hydra")["method"] == 12 * (layer(768, 768) + layer(3072, 768)) == 848_256


def test_svfit_counts_r_per_matrix():
    assert counts("roberta-base", "svfit")["method"] == 12 * 2 * 16  # query and value, top 16 singular values
    assert counts("roberta-base", "svfit", "method.r=4", "method.target_modules=[query,key,value]")["method"] == 144


@pytest.mark.parametrize("method,factor,expected,paper", [
    # per adapter 2*m*d + m + d; Houlsby: two per layer, Pfeiffer: one. `paper`: the LoRA paper's
    # Table 2 (RoBERTa-large), which rounds: our exact counts are within 6% of its 6.0M and 3.0M.
    ("adapter_houlsby", 128, 2 * 24 * (2 * 8 * 1024 + 8 + 1024), 0.8e6),  # m=8: 835,968
    ("adapter_houlsby", 16, 2 * 24 * (2 * 64 * 1024 + 64 + 1024), 6.0e6),  # m=64: 6,343,680
    ("adapter_pfeiffer", 64, 24 * (2 * 16 * 1024 + 16 + 1024), 0.8e6),  # m=16: 811,392
    ("adapter_pfeiffer", 16, 24 * (2 * 64 * 1024 + 64 + 1024), 3.0e6),  # m=64: 3,171,840
])
def test_bottleneck_adapters_roberta_large(method, factor, expected, paper):
    p = counts("roberta-large", method, f"method.reduction_factor={factor}", "method.train_layer_norm=false")
    assert p["method"] == expected
    assert abs(p["method"] - paper) / paper < 0.06


def test_houlsby_trains_layer_norms_when_asked():
    with_norms = counts("roberta-base", "adapter_houlsby")["method"]
    without = counts("roberta-base", "adapter_houlsby", "method.train_layer_norm=false")["method"]
    assert with_norms - without == (2 * 12 + 1) * 2 * 768  # two LayerNorms per layer + the embeddings'


def test_compacterpp_roberta_base():
    # per adapter: down and up PHM layers, B_i = s t^T of rank 1: 2*(d + m) + biases (m + d);
    # plus the two shared rule tensors of n^3 each. m = 768 / 32 = 24, n = 4.
    p = counts("roberta-base", "compacterpp", "method.train_layer_norm=false")
    assert p["method"] == 12 * (2 * (768 + 24) + 24 + 768) + 2 * 4 ** 3 == 28_640


def test_ssf_roberta_base():
    # a scale and a shift per output feature of every linear layer and LayerNorm in the backbone
    per_layer = 2 * (4 * 768 + 3072 + 768) + 2 * 2 * 768
    assert counts("roberta-base", "ssf")["method"] == 12 * per_layer + 2 * 768 == 204_288


def test_sparse_ft_density_is_per_matrix():
    p = counts("roberta-base", "sparse_ft", "method.density=0.01")
    per_layer = 4 * round(0.01 * 768 * 768) + 2 * round(0.01 * 768 * 3072)
    assert p["method"] == 12 * per_layer


def test_params_command_prints_method_and_head_apart(capsys):
    assert main(["params", "model=roberta-base", "method=lora"]) == 0
    out = capsys.readouterr().out
    assert "method, trainable         294,912  0.2366% of base" in out
    assert "head, trainable           592,130" in out
    assert main(["params", "model=roberta-base", "method=lora", "--json", "--labels", "3"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert (p["method"], p["head"], p["num_labels"]) == (294_912, 768 * 768 + 768 + 768 * 3 + 3, 3)


def test_params_command_notes_what_cannot_train(capsys):
    assert main(["params", "model=tiny", "method=prefix_tuning_peft"]) == 0
    assert "cannot train: prefix tuning feeds the prefix as past_key_values" in capsys.readouterr().out


def test_params_command_bad_input(capsys):
    assert main(["params", "method=lora", "method.r=0"]) == 2
    assert "method.r=0: must be >= 1" in capsys.readouterr().err
    assert main(["params", "--labels", "two"]) == 2
    assert "--labels 'two'" in capsys.readouterr().err
    assert main(["params", "model=tiny", "method=loraa"]) == 2
    assert "Did you mean 'lora'?" in capsys.readouterr().err


def test_methods_whose_set_up_reads_weight_values_fall_back_to_a_cpu_build():
    # SHiRA picks its sparse entries from the weights (torch.nonzero has no meta kernel): built on the
    # CPU instead. Its default r=32 keeps r*(m+n) entries of each 768x768 query/value matrix.
    assert counts("roberta-base", "shira")["method"] == 12 * 2 * 32 * (768 + 768) == 1_179_648


def test_fourierft_roberta_base_is_the_papers_0_024m():
    # n = 1000 learnable spectral coefficients per adapted matrix (W_q, W_v): FourierFT paper, 0.024M
    assert counts("roberta-base", "fourierft", "method.n_frequency=1000")["method"] == 12 * 2 * 1000 == 24_000
