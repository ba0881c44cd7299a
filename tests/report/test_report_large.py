"""`peftbench report --table cost` with the large-model figures: inference latency (unmerged and merged),
adapter size, forgetting, and a note on the precision the figures were measured in."""

import json
from pathlib import Path

from test_report import fake_run, report


def _add(path: Path, **fields) -> None:
    record = json.loads(path.read_text())
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(record.get(key), dict):
            record[key].update(value)
        else:
            record[key] = value
    path.write_text(json.dumps(record))


def test_cost_table_shows_latency_merged_and_adapter_size(tmp_path, capsys):
    for method in ("lora", "adapter_houlsby", "full"):
        fake_run(tmp_path, method, "glue/rte", 1, {"accuracy": 0.6})
    runs = {p.parent.name.split("_")[1]: p for p in tmp_path.rglob("run.json")}
    _add(runs["lora"], inference={"unmerged_ms_per_example": {"batch_1": 4.0, "eval_batch": 1.5},
                                  "merged_ms_per_example": {"batch_1": 3.0, "eval_batch": 1.25}},
         artifacts={"trainable_weights_bytes": 3 * 2 ** 20}, memory={"dtype": "float32", "mixed_precision": "bf16"})
    _add(runs["full"], forgetting={"forgetting": 0.25})
    _add(runs["adapter"], inference={"unmerged_ms_per_example": {"batch_1": 5.0, "eval_batch": 2.0},
                                     "merged_ms_per_example": None},
         artifacts={"trainable_weights_bytes": 2 ** 20})
    out = report(capsys, str(tmp_path), "--table", "cost")
    header = next(line for line in out.splitlines() if line.startswith("| method"))
    assert header.endswith("| ms/ex b=1 | merged b=1 | ms/ex eval batch | merged eval batch | adapter MB | forgetting |")
    plain = out.replace("**", "").replace("<u>", "").replace("</u>", "")  # highlighting aside
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[-7:-1]]
            for line in plain.splitlines() if line.startswith("| ") and not line.startswith("| method")}
    assert rows["lora"] == ["4.00", "3.00", "1.50", "1.25", "3.00", "–"]
    assert rows["adapter_houlsby"] == ["5.00", "–", "2.00", "–", "1.00", "–"]
    assert rows["full"] == ["–"] * 5 + ["0.250"]
    assert "forgetting: mean per-token cross-entropy" in out
    assert "Precision of the figures (weights, mixed precision): float32, bf16; float32, no." in out
    assert "ms/ex: inference latency per example" in out


def test_cost_table_without_the_figures_is_unchanged(tmp_path, capsys):
    fake_run(tmp_path, "lora", "glue/rte", 1, {"accuracy": 0.6})
    out = report(capsys, str(tmp_path), "--table", "cost")
    assert "ms/ex" not in out and "adapter MB" not in out and "Precision" not in out and "forgetting" not in out
