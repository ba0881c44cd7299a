import subprocess
import sys

from peftbench.cli import main
from peftbench.runfile import write_atomic


def fake_run(root, name, method, task, seed, score, trainable, status="ok", model="minilm", metric="accuracy"):
    record = {"status": status, "model": model, "method": method, "task": task, "seed": seed,
              "main_metric": metric, "main_score": score, "metrics": {metric: score},
              "params": {"trainable": trainable, "total": 22_713_986, "trainable_pct": 100 * trainable / 22_713_986},
              "error": None if status == "ok" else {"type": "NonFiniteLoss", "message": "loss is nan at step 3"}}
    write_atomic(root / name / "run.json", record)


def fixture_runs(root):
    fake_run(root, "r1", "lora", "glue/rte", 1, 0.70, 74_498)
    fake_run(root, "r2", "lora", "glue/rte", 2, 0.72, 74_498)
    fake_run(root, "r3", "lora", "glue/cola", 1, 0.50, 74_498, metric="matthews_correlation")
    fake_run(root, "r4", "bitfit", "glue/rte", 1, 0.65, 102_914)
    fake_run(root, "r5", "bitfit", "glue/cola", 1, 0.0, 0, status="failed")


EXPECTED = """\
| method | glue/cola (matthews_correlation) | glue/rte (accuracy) | avg | trainable params |
|---|---:|---:|---:|---:|
| bitfit | – | 65.0 | – | 102.9K (0.45%) |
| lora | 50.0 | 71.0 ± 1.4 (n=2) | 60.5 | 74.5K (0.33%) |

Failed runs (1), not in the table:
- minilm / bitfit / glue/cola seed 1: NonFiniteLoss: loss is nan at step 3 ({root}/r5/run.json)
"""


def test_report_table_seeds_average_and_failed_runs(tmp_path, capsys):
    fixture_runs(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().out == EXPECTED.format(root=tmp_path)


def test_rows_split_by_model_when_several(tmp_path, capsys):
    fake_run(tmp_path, "a", "lora", "demo", 1, 0.9, 74_498)
    fake_run(tmp_path, "b", "lora", "demo", 1, 0.6, 2_114, model="tiny")
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| minilm / lora | 90.0 | 90.0 |" in out and "| tiny / lora | 60.0 | 60.0 | 2.1K (0.01%) |" in out


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no run files (run.json)" in capsys.readouterr().err


def test_report_does_not_import_torch(tmp_path):
    fixture_runs(tmp_path)
    code = ("import sys; from peftbench.cli import main; main(['report', sys.argv[1]]); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr
