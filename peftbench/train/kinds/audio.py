"""Audio classification data: waveforms read when their batch is made (a .wav file through the standard
library's `wave` module, a .npy array, the hub's {'array', 'sampling_rate'} record, or an array),
mixed down to mono, resampled to the feature extractor's rate, and turned into the model's input
features (AST: normalised log-mel filterbank frames, padded or cut to `max_length` frames).

Resampling is linear interpolation (numpy), enough for a benchmark's input pipeline but not a
band-limited resampler: ESC-50's 44.1 kHz clips go to AST's 16 kHz this way.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import torch

from ...errors import UserError

SAMPLE_TYPES = {1: np.uint8, 2: np.int16, 4: np.int32}  # bytes per sample -> PCM type in a .wav file


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(mono float32 waveform in [-1, 1], sampling rate) of a PCM .wav file."""
    try:
        with wave.open(str(path), "rb") as f:
            width, channels, rate = f.getsampwidth(), f.getnchannels(), f.getframerate()
            raw = f.readframes(f.getnframes())
    except (wave.Error, EOFError) as exc:
        raise UserError(f"audio file {path}: not a PCM .wav file the wave module reads ({exc}). Convert it to "
                        "16-bit PCM .wav, or give a .npy array.") from exc
    if width not in SAMPLE_TYPES:
        raise UserError(f"audio file {path}: {8 * width}-bit samples; use 8, 16 or 32-bit PCM.")
    samples = np.frombuffer(raw, dtype=SAMPLE_TYPES[width]).astype(np.float32)
    if width == 1:  # 8-bit PCM is unsigned
        samples -= 128
    samples /= float(2 ** (8 * width - 1))
    return samples.reshape(-1, channels).mean(axis=1), rate


def read_audio(ref, rate: int) -> np.ndarray:
    """A mono float32 waveform at `rate` Hz; arrays without a rate of their own are taken as at `rate`."""
    source_rate = rate
    if isinstance(ref, dict):
        source_rate = int(ref.get("sampling_rate") or rate)
        ref = ref["array"] if ref.get("array") is not None else ref.get("path")
    if isinstance(ref, str):
        path = Path(ref)
        if not path.is_file():
            raise UserError(f"audio file {ref}: not found (audio paths are relative to task.data_dir).")
        if path.suffix == ".npy":
            ref = np.load(path)
        else:
            ref, source_rate = read_wav(path)
    waveform = np.asarray(ref, dtype=np.float32)
    if waveform.ndim == 2:  # (samples, channels) or (channels, samples): mix down
        waveform = waveform.mean(axis=int(waveform.shape[0] < waveform.shape[1]))
    if source_rate != rate:
        n = max(1, round(len(waveform) * rate / source_rate))
        waveform = np.interp(np.arange(n) * source_rate / rate, np.arange(len(waveform)), waveform).astype(np.float32)
    return waveform


def features(df) -> list[dict]:
    return [{"audio": audio, "labels": int(label)} for audio, label in zip(df["audio"], df["label"])]


def collate(batch: list[dict], processor) -> dict:
    rate = processor.sampling_rate
    values = processor([read_audio(f["audio"], rate) for f in batch], sampling_rate=rate,
                       return_tensors="pt")["input_values"]
    return {"input_values": values, "labels": torch.tensor([f["labels"] for f in batch])}
