"""Small local data in the hub datasets' own layouts, for the example task files (peftbench/conf/task/gsm8k.yaml,
boolq, piqa, samsum, cifar10) to run offline on tiny models."""

import json
from pathlib import Path

import numpy as np

# Each run: a few steps of a 2-layer model, tiny batches, CPU.
QUICK = ["hardware=cpu", "train.max_steps=3", "train.log_every=1", "train.batch_size=4", "train.eval_batch_size=4",
         "train.save_trainable=false"]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def gsm8k(folder: Path, n: int = 12) -> Path:
    rows = [{"question": f"Tom has {i} apples and buys {i + 2} more. How many apples does he have?",
             "answer": f"He has {i} + {i + 2} = {2 * i + 2} apples.\n#### {2 * i + 2}"} for i in range(n)]
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "test.jsonl", rows[:6])
    return folder


def boolq(folder: Path, n: int = 12) -> Path:
    rows = [{"question": f"is {i} an even number", "passage": f"{i} is a whole number.", "answer": i % 2 == 0}
            for i in range(n)]
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "validation.jsonl", rows[:6])
    return folder


def piqa(folder: Path, n: int = 12) -> Path:
    rows = [{"goal": f"dry a wet cup number {i}", "sol1": "use a towel", "sol2": "put it in the sea for an hour",
             "label": i % 2} for i in range(n)]
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "validation.jsonl", rows[:6])
    return folder


def samsum(folder: Path, n: int = 12) -> Path:
    rows = [{"id": str(i), "dialogue": f"Anna: are we meeting at {i}?\nBen: yes, see you then",
             "summary": f"Anna and Ben meet at {i}."} for i in range(n)]
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "validation.jsonl", rows[:6])
    return folder


def cifar10(folder: Path, n: int = 20) -> Path:
    """Images as small PNG and .npy files (16x16, resized by the processor), labels as ids and names."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        name = f"img{i}.png" if i % 2 else f"img{i}.npy"
        Image.fromarray(pixels).save(folder / name) if i % 2 else np.save(folder / name, pixels)
        rows.append({"img": name, "label": i % 10 if i % 3 else "cat"})
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "test.jsonl", rows[:10])
    return folder


def write_wav(path: Path, waveform: np.ndarray, rate: int, channels: int = 1) -> None:
    """16-bit PCM through the standard library's wave module."""
    import wave

    pcm = (np.clip(waveform, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(np.repeat(pcm, channels).tobytes())


def esc50(folder: Path, n: int = 20, rate: int = 22050, seconds: float = 0.5) -> Path:
    """ESC-50's layout: audio/*.wav clips (a class-dependent tone plus noise, every other one stereo) and
    train.csv / test.csv with filename, target, category."""
    import csv

    (folder / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(rate * seconds)) / rate
    rows = []
    for i in range(n):
        target = i % 2
        name = f"audio/{i % 5 + 1}-{1000 + i}-A-{target}.wav"
        tone = 0.5 * np.sin(2 * np.pi * (300 if target == 0 else 2500) * t) + 0.05 * rng.standard_normal(len(t))
        write_wav(folder / name, tone, rate, channels=1 + i % 2)
        rows.append({"filename": name, "fold": i % 5 + 1, "target": target, "category": ["dog", "rooster"][target]})
    for split, part in (("train", rows), ("test", rows[: n // 2])):
        with open(folder / f"{split}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(part)
    return folder
