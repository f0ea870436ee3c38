"""Spoken digits synthesised offline by Debian's espeak-ng and flite, across accents, voices,
speeds and pitches, as log-mel spectrograms (computed with ``torch.stft``). The test split is
made of voices that training never hears."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

from ..errors import DataError
from .info import RawData
from .registry import register_dataset

RATE = 16_000
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ACCENTS = ["en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "Alex", "Andy", "Annie",
            "aunty", "david", "ed", "john", "linda", "max", "Michael", "paul", "steph"]
FLITE = ["kal", "kal16", "awb", "rms", "slt"]


def log_mel(wave_: np.ndarray, rate: int = RATE, n_mels: int = 40, frames: int = 101) -> np.ndarray:
    """(n_mels, frames) log-mel energies: 25 ms Hann windows every 10 ms, HTK mel filters up to
    rate/2, padded (with silence) or cut to ``frames``."""
    import torch

    n_fft, hop = int(0.025 * rate), int(0.010 * rate)
    x = torch.from_numpy(wave_.astype(np.float32))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs() ** 2  # (F, T)
    mel = mel_filters(n_fft // 2 + 1, n_mels, rate)
    out = torch.log(torch.from_numpy(mel) @ spec + 1e-6).numpy()
    floor = np.log(1e-6)
    out = out[:, :frames]
    return np.pad(out, ((0, 0), (0, frames - out.shape[1])), constant_values=floor).astype(np.float32)


def mel_filters(bins: int, n_mels: int, rate: int) -> np.ndarray:
    """(n_mels, bins) triangular filters evenly spaced on the HTK mel scale."""
    to_mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    to_hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = to_hz(np.linspace(0, to_mel(rate / 2), n_mels + 2))
    freqs = np.linspace(0, rate / 2, bins)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid))).astype(np.float32)


def read_wav(raw: bytes, to_rate: int = RATE) -> np.ndarray:
    """16-bit WAV bytes -> mono float waveform at ``to_rate`` (channels averaged, resampled if needed)."""
    from math import gcd

    from scipy.signal import resample_poly

    with wave.open(io.BytesIO(raw)) as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{8 * w.getsampwidth()}-bit samples; 16-bit PCM is read")
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    x = data.astype(np.float32).reshape(-1, channels).mean(1) / 32768.0
    if rate != to_rate:
        g = gcd(rate, to_rate)
        x = resample_poly(x, to_rate // g, rate // g).astype(np.float32)
    return x


def encode_wav(audio: dict, path) -> np.ndarray:
    """A WAV file -> the (1, 1, n_mels, frames) log-mel input of a model trained on sound."""
    try:
        x = read_wav(Path(path).read_bytes(), audio["rate"])
    except (wave.Error, EOFError, ValueError) as e:
        raise DataError(f"{path}: not a readable 16-bit PCM WAV file ({e or type(e).__name__})") from None
    return log_mel(x, audio["rate"], audio["n_mels"], audio["frames"])[None, None]


def synthesise(engine: str, voice: str, word: str, speed: float, pitch: float) -> np.ndarray:
    """One clip. ``speed``: 1.0 is the engine's normal rate; ``pitch``: 0..1 (low..high)."""
    if engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice, "-s", str(int(175 * speed)), "-p", str(int(100 * pitch)), "--stdout", word]
    else:
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={1 / speed:.3f}",
               "--setf", f"int_f0_target_mean={int(80 + 100 * pitch)}", "-t", word, "-o", "/dev/stdout"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return read_wav(out)


def speakers(accents: list[str], variants: list[str], flite: list[str]) -> list[tuple[str, str, str]]:
    """(engine, voice, the voice's timbre) per speaker; the timbre is what the split holds out."""
    return ([("espeak-ng", f"{a}+{v}", v) for a in accents for v in variants] +
            [("flite", f, f"flite-{f}") for f in flite])


@register_dataset("spoken_digits", modality="image", task="classification")
def spoken_digits(accents: list[str] = ACCENTS, variants: list[str] = VARIANTS, flite: list[str] = FLITE,
                  speeds: list[float] = [0.8, 1.25], pitches: list[float] = [0.35, 0.65],
                  test_voices: float = 0.25, voice_seed: int = 0) -> RawData:
    """Spoken digits 'zero'..'nine' synthesised by espeak-ng (English accents x voice variants)
    and flite (its voices), at several speeds and pitches: (1, 40, 101) log-mel spectrograms of
    1 s at 16 kHz. A fraction ``test_voices`` of the voices of each engine (espeak-ng variants, in
    every accent, and flite voices) is held out as the test split: unseen voices. Generated once,
    then cached.

    Args:
        accents: espeak-ng English voices (accents).
        variants: espeak-ng voice variants (timbres); each is one voice, heard in every accent.
        flite: flite voices.
        speeds: speaking rates relative to normal.
        pitches: pitch levels in 0..1.
        test_voices: fraction of voices held out for the test split.
        voice_seed: which voices are held out.
    """
    missing = [p for p in ("espeak-ng", "flite") if shutil.which(p) is None and (p == "espeak-ng" or flite)]
    if missing:
        raise DataError(f"spoken digits are synthesised by {' and '.join(missing)}: apt-get install "
                        f"{' '.join(missing)}")
    who = speakers(accents, variants, flite)
    if not 0 < test_voices < 1 or len(variants) < 2:
        raise DataError(f"data.test_voices: {test_voices} with {len(variants)} espeak-ng variants; give a fraction "
                        "between 0 and 1 and at least two variants, so that one is held out and one kept")
    rng = np.random.default_rng(voice_seed)
    held = set()
    for engine in ("espeak-ng", "flite"):  # each engine's voices held out apart, so both are in the test split
        timbres = sorted({t for e, _, t in who if e == engine})
        if len(timbres) >= 2:
            held |= set(rng.permutation(timbres)[: min(len(timbres) - 1, max(1, round(test_voices * len(timbres))))])
    arrays = _cached(who, speeds, pitches)
    x, y, speaker = arrays["x"].astype(np.float32), arrays["y"], arrays["speaker"]
    is_test = np.array([who[s][2] in held for s in speaker])
    groups = {"voice": np.array([who[s][1] for s in speaker])}
    take = lambda m: (x[m], y[m], {k: v[m] for k, v in groups.items()})  # noqa: E731
    xs, ys, gs = take(~is_test)
    return RawData(
        x=xs, y=ys, groups=gs, test=take(is_test), task="classification", modality="image",
        preprocess={"kind": "image", "shape": list(x.shape[1:]), "audio": {"rate": RATE, "n_mels": 40, "frames": 101}},
        class_names=list(DIGITS), target_name="digit",
        source=f"synthesised offline by espeak-ng ({len(accents)} accents x {len(variants)} variants) and flite "
               f"({len(flite)} voices) at speeds {speeds} and pitches {pitches}; unseen test voices: "
               f"{', '.join(sorted(held))}")


def _cached(who: list[tuple[str, str, str]], speeds: list[float], pitches: list[float]) -> dict[str, np.ndarray]:
    from .builtin import cached_arrays

    def make() -> dict[str, np.ndarray]:
        xs, ys, ss = [], [], []
        try:
            for s, (engine, voice, _) in enumerate(who):
                for d, word in enumerate(DIGITS):
                    for speed in speeds:
                        for pitch in pitches:
                            xs.append(log_mel(synthesise(engine, voice, word, speed, pitch))[None].astype(np.float16))
                            ys.append(d)
                            ss.append(s)
        except subprocess.CalledProcessError as e:
            raise DataError(f"{e.cmd[0]} failed for voice '{e.cmd[2]}': "
                            f"{e.stderr.decode(errors='replace').strip()[:200]}; "
                            "check the voice names (espeak-ng --voices=en, flite -lv)") from None
        return {"x": np.stack(xs), "y": np.array(ys, dtype=np.int64), "speaker": np.array(ss, dtype=np.int64)}

    return cached_arrays("spoken-digits", [who, speeds, pitches, RATE], make)
