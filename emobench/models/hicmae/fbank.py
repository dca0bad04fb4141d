"""HiCMAE's audio input: a Kaldi-compatible log-mel filterbank, as the authors compute it
with ``torchaudio.compliance.kaldi.fbank`` (their ``kinetics_av.py``, from AudioMAE),
written here in numpy (torchaudio is not a dependency: it pins its own torch).

:func:`kaldi_fbank` follows Kaldi's ``compute-fbank-feats`` with the authors' arguments
(``htk_compat=True, use_energy=False, window_type='hanning', num_mel_bins=128,
dither=0, frame_shift=10``) and Kaldi's defaults for the rest:

1. frames of 25 ms every 10 ms, only whole frames (``snip_edges``): ``1 + (N − 400) // 160``
   at 16 kHz, none when ``N < 400``;
2. per frame: subtract its mean (``remove_dc_offset``), pre-emphasis
   ``x[i] −= 0.97·x[i−1]`` (``x[−1] = x[0]``), the symmetric Hann window
   ``0.5 − 0.5 cos(2πn / 399)``, zero-padded to 512 (the next power of two);
3. power spectrum ``|rfft|²`` (257 bins);
4. 128 triangular filters equally spaced on the mel scale ``1127 ln(1 + f/700)`` between
   20 Hz and the Nyquist frequency (each triangle rises from its left to its centre
   and falls to its right mel edge, evaluated at the FFT bins' mels; the Nyquist bin gets
   no weight);
5. ``log(max(energy, float32 eps))``.

:func:`hicmae_input` is the rest of the authors' test-time path: the waveform's mean
removed, the filterbank cut or zero-padded to ``target_length`` frames (256 = 2.56 s),
then ``(fbank − (−4.2677393)) / (2 · 4.5689974)`` (AudioMAE's AudioSet statistics).
Training-time augmentations of theirs are not applied: ``roll_mag_aug`` (a random
circular shift and gain; their loader applies it at test time too, so their own test
logits are not deterministic) and SpecAugment masks (0 in their fine-tuning scripts).
"""

from __future__ import annotations

import numpy as np

#: AudioMAE's AudioSet log-mel mean and std, used by HiCMAE for every dataset
NORM_MEAN = -4.2677393
NORM_STD = 4.5689974
SAMPLE_RATE = 16000
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def mel(freq: np.ndarray | float) -> np.ndarray:
    """Kaldi's mel scale."""
    return 1127.0 * np.log(1.0 + np.asarray(freq, np.float64) / 700.0)


def mel_banks(num_bins: int, n_fft: int, sample_rate: float, low: float, high: float) -> np.ndarray:
    """Triangular filters ``(num_bins, n_fft // 2 + 1)`` (module docstring, step 4)."""
    high = high if high > 0 else high + sample_rate / 2
    lo, hi = mel(low), mel(high)
    delta = (hi - lo) / (num_bins + 1)
    b = np.arange(num_bins, dtype=np.float64)[:, None]
    left, centre, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
    m = mel(sample_rate / n_fft * np.arange(n_fft // 2, dtype=np.float64))[None, :]
    up = (m - left) / (centre - left)
    down = (right - m) / (right - centre)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1)))


def kaldi_fbank(
    wave: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> np.ndarray:
    """Log-mel filterbank ``(frames, num_mel_bins)`` float32 of a mono waveform (module
    docstring); an empty array of that width when the waveform is shorter than a frame."""
    x = np.asarray(wave, np.float64).reshape(-1)
    size = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    n_fft = 1 << (size - 1).bit_length()
    if len(x) < size:
        return np.zeros((0, num_mel_bins), np.float32)
    n = 1 + (len(x) - size) // shift
    frames = np.lib.stride_tricks.sliding_window_view(x, size)[::shift][:n].copy()
    frames -= frames.mean(axis=1, keepdims=True)
    prev = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = frames - preemphasis * prev
    frames *= np.hanning(size)[None, :]
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2
    energies = power @ mel_banks(num_mel_bins, n_fft, sample_rate, low_freq, high_freq).T
    return np.log(np.maximum(energies, FLOAT32_EPS)).astype(np.float32)


def hicmae_input(wave: np.ndarray, target_length: int = 256, num_mel_bins: int = 128) -> np.ndarray:
    """The model's audio input ``(1, target_length, num_mel_bins)`` float32 for a 16 kHz
    mono waveform (module docstring)."""
    x = np.asarray(wave, np.float64).reshape(-1)
    if len(x):
        x = x - x.mean()
    fb = kaldi_fbank(x, SAMPLE_RATE, num_mel_bins)
    out = np.zeros((target_length, num_mel_bins), np.float32)
    keep = min(target_length, len(fb))
    out[:keep] = fb[:keep]
    out = (out - NORM_MEAN) / (NORM_STD * 2)
    return out[None].astype(np.float32)


__all__ = ["NORM_MEAN", "NORM_STD", "SAMPLE_RATE", "hicmae_input", "kaldi_fbank", "mel_banks"]
