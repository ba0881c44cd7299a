"""The audio_classification kind: the tiny Audio Spectrogram Transformer (peftbench/conf/model/tiny-ast.yaml) on
synthetic clips in ESC-50's layout (peftbench/conf/task/esc50.yaml), waveforms read with the standard library,
features from an AST feature extractor built locally, and PEFT methods on AST."""

import json

import numpy as np
import pytest
import torch

import taskdata
from conftest import make_cfg
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted
from peftbench.models import load_feature_extractor
from peftbench.run.runner import run
from peftbench.train.kinds import audio
from test_method_invariants import train_steps


def test_reads_wav_mono_stereo_and_resamples(tmp_path):
    t = np.arange(8000) / 8000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    taskdata.write_wav(tmp_path / "mono.wav", tone, 8000)
    taskdata.write_wav(tmp_path / "stereo.wav", tone, 8000, channels=2)
    mono = audio.read_audio(str(tmp_path / "mono.wav"), 8000)
    np.testing.assert_allclose(mono, tone, atol=1e-4)  # 16-bit PCM round trip
    np.testing.assert_allclose(audio.read_audio(str(tmp_path / "stereo.wav"), 8000), mono, atol=1e-6)
    up = audio.read_audio(str(tmp_path / "mono.wav"), 16000)
    assert len(up) == 16000
    np.testing.assert_allclose(up[1::2], np.interp(np.arange(8000) + 0.5, np.arange(8000), mono), atol=1e-6)
    assert len(audio.read_audio({"array": tone, "sampling_rate": 8000}, 16000)) == 16000  # the hub's record
    np.save(tmp_path / "clip.npy", tone.astype(np.float32))
    np.testing.assert_allclose(audio.read_audio(str(tmp_path / "clip.npy"), 8000), tone, atol=1e-6)
    with pytest.raises(UserError, match="not found"):
        audio.read_audio(str(tmp_path / "missing.wav"), 16000)
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    with pytest.raises(UserError, match="not a PCM .wav"):
        audio.read_audio(str(tmp_path / "bad.wav"), 16000)


def test_feature_extractor_gives_the_frames_the_tiny_ast_expects():
    extractor = load_feature_extractor(make_cfg("model=tiny-ast").model)
    batch = audio.collate([{"audio": np.zeros(4000, np.float32), "labels": 1},
                           {"audio": np.ones(40000, np.float32) * 0.1, "labels": 0}], extractor)
    assert batch["input_values"].shape == (2, 64, 16)  # padded or cut to max_length frames x mel bins
    assert batch["labels"].tolist() == [1, 0]


@pytest.mark.parametrize("method", ["lora", "adapter_houlsby", "binary_adapter", "vpt", "vqt"])
def test_methods_train_on_ast(method):
    torch.manual_seed(0)
    cfg = make_cfg("model=tiny-ast", "task=esc50", f"method={method}")
    model, _, counts = build_counted(cfg, 2)
    g = torch.Generator().manual_seed(1)
    inputs = {"input_values": torch.randn(8, 64, 16, generator=g), "labels": torch.randint(0, 2, (8,), generator=g)}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    losses = train_steps(model, inputs, steps=30, lr=cfg.method.default_lr)  # 1e-2 throws the adapters off here
    assert min(losses[-5:]) < 0.9 * losses[0], f"{method}: {losses[0]:.4f} -> {losses[-5:]}"
    after = dict(model.named_parameters())
    assert [n for n, before in frozen.items() if not torch.equal(after[n], before)] == []
    assert counts["method"] > 0


def test_esc50_layout_end_to_end(tmp_path):
    data = taskdata.esc50(tmp_path / "esc50")
    record = run(make_cfg(*taskdata.QUICK, "model=tiny-ast", "task=esc50", f"task.data_dir={data}",
                          "method=adapter_houlsby"), tmp_path / "run")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "ok"
    assert record["main_metric"] == "accuracy" and record["metrics"]["accuracy"] in {i / 10 for i in range(11)}
    assert record["data"]["eval_examples"] == {"test": 10}
    assert record["params"]["family"] == "audio-spectrogram-transformer"
    assert record["throughput"]["train_tokens_per_s"] is None  # audio has no tokens


def test_audio_task_mistakes_are_named(tmp_path):
    data = taskdata.esc50(tmp_path / "esc50", n=4)
    with pytest.raises(UserError, match="missing column"):
        run(make_cfg(*taskdata.QUICK, "model=tiny-ast", "task=esc50", f"task.data_dir={data}",
                     "task.audio_field=path"), tmp_path / "run")
    with pytest.raises(UserError, match="cannot be built as AutoModelForAudioClassification.*model=tiny-ast"):
        build_counted(make_cfg("model=tiny-vit", "task=esc50", "method=lora"), 2)
