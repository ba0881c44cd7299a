"""Mixed precision on CPU: bf16 autocast through accelerate (the linear layers compute in bf16), losses
stay finite, the run file says which precision its cost figures were measured in; fp16, which accelerate
would silently run in fp32 on a CPU, is refused."""

import math

import pytest
import torch
from accelerate import Accelerator

from conftest import TINY, TINY_MODEL, make_cfg
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted
from peftbench.run.runner import run


def test_bf16_autocast_on_cpu_computes_linear_layers_in_bf16():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # accelerate keeps one precision per process; earlier tests set theirs
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    model, _, _ = build_counted(make_cfg("model=tiny", "method=lora"), 2)
    model = accelerator.prepare(model)
    seen = []
    query = dict(model.named_modules())["base_model.model.bert.encoder.layer.0.attention.self.query.base_layer"]
    query.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    ids = torch.randint(1000, 5000, (2, 8))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1]))
    assert seen == [torch.bfloat16] and out.loss.dtype == torch.float32 and torch.isfinite(out.loss)


@pytest.mark.parametrize("extra", [[], ["model=tiny-llama", "task=gsm8k"]], ids=["bert-classification", "llama-lm"])
def test_bf16_run_on_cpu_has_finite_losses_and_says_so(tmp_path, extra):
    base = TINY
    if extra:
        from taskdata import gsm8k
        base = [*TINY_MODEL, *extra, f"task.data_dir={gsm8k(tmp_path / 'data')}", "task.max_new_tokens=4"]
    record = run(make_cfg(*base, "hardware.mixed_precision=bf16", "train.max_steps=4"), tmp_path / "run")
    assert record["status"] == "ok"
    assert all(math.isfinite(loss) for _, loss in record["loss_history"])
    for block in ("memory", "throughput"):
        assert record[block]["mixed_precision"] == "bf16" and record[block]["dtype"] == "float32"


def test_fp16_on_cpu_is_refused(tmp_path):
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
        run(make_cfg(*TINY, "hardware.mixed_precision=fp16"), tmp_path)


def test_auto_picks_bf16_only_where_the_cpu_has_it(tmp_path):
    from peftbench.train.precision import cpu_flags, resolve

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_flags(info) == {"fpu", "sse2", "avx512f", "avx512_bf16", "avx512_vnni"}
    assert resolve("auto", on_cpu=True, flags={"avx512f", "amx_bf16"}) == ("bf16", "auto: CPU flags amx_bf16")
    chosen, why = resolve("auto", on_cpu=True, flags={"avx512f", "avx2"})
    assert chosen == "no" and "none of avx512_bf16, amx_bf16" in why
    # a precision that is stated is kept, whatever the hardware
    assert resolve("no", on_cpu=True, flags={"avx512_bf16"})[0] == "no"
    assert resolve("bf16", on_cpu=True, flags=set())[0] == "bf16"
    assert cpu_flags(tmp_path / "missing") == set()


def test_auto_run_records_setting_choice_and_why(tmp_path):
    from peftbench.train.precision import resolve

    expected, why = resolve("auto", on_cpu=True)
    record = run(make_cfg(*TINY, "hardware.mixed_precision=auto", "train.max_steps=2"), tmp_path / "run")
    for block in ("memory", "throughput"):
        assert record[block]["mixed_precision"] == expected and record[block]["mixed_precision_setting"] == "auto"
        assert record[block]["mixed_precision_why"] == why
    assert record["config"]["hardware"]["mixed_precision"] == "auto"


def test_unknown_precision_lists_auto(tmp_path):
    with pytest.raises(UserError, match="must be one of no, fp16, bf16, auto"):
        run(make_cfg(*TINY, "hardware.mixed_precision=fp8"), tmp_path)
