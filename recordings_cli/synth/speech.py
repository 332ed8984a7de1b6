"""One speaker talking in phrases: syllables planned per phrase, voiced and fricative sources,
and source-filter synthesis through a short-time Fourier transform.

The same arguments always give the same samples.
"""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Voice:
    """A speaker's pitch range, vocal-tract size and loudness."""

    f0_low: float
    f0_high: float
    formant_scale: float  # shorter vocal tracts have higher formants
    active_rms: float  # level while speaking; customers on a phone line are a bit quieter


VOICES = (
    Voice(f0_low=95.0, f0_high=140.0, formant_scale=1.0, active_rms=0.1),
    Voice(f0_low=180.0, f0_high=260.0, formant_scale=1.17, active_rms=0.08),
)

# Vowel targets (F1, F2, F3 in Hz) after Peterson & Barney's adult-male averages.
_VOWEL_FORMANTS = np.array(
    [
        [730.0, 1090.0, 2440.0],  # a
        [270.0, 2290.0, 3010.0],  # i
        [530.0, 1840.0, 2480.0],  # e
        [570.0, 840.0, 2410.0],  # o
        [300.0, 870.0, 2240.0],  # u
        [660.0, 1720.0, 2410.0],  # ae
        [490.0, 1350.0, 1690.0],  # er
        [520.0, 1190.0, 2390.0],  # schwa
    ]
)
_FORMANT_GAINS = np.array([1.0, 0.8, 0.5])
_FORMANT_HALF_BANDWIDTHS = np.array([45.0, 55.0, 85.0])
_FORMANT_FLOOR = 0.01  # the glottal source is never perfectly filtered away between formants
_FORMANT_CEILING_HZ = 6000.0
_FRICATIVE_HALF_BANDWIDTH = 1300.0
_HIGH_PASS_HZ = 80.0

_SYLLABLE_SECONDS = (0.16, 0.28)  # about 4.5 syllables a second
_PHRASE_SYLLABLES = (3, 12)
_PHRASE_PAUSE_SECONDS = (0.25, 0.9)
_FRICATIVE_PROBABILITY = 0.35
_FRICATIVE_SECONDS = (0.04, 0.1)
_FRICATIVE_GAIN = 0.35
_EDGE_FADE_SECONDS = 0.005

BACKGROUND_RMS = 0.001  # -60 dBFS: present, like a real line, but clearly below speech

_BATCH_FRAMES = 48  # STFT frames per batch: keeps temporaries in cache
_CHUNK_SAMPLES = 1 << 15  # samples per pass of whole-signal post-processing

# The stream tag of speech_like's random numbers; conversation.py's streams have tags of their
# own, so no two streams ever share a seed.
_SPEECH_STREAM = 0x5350


def stream_seed(*parts: int) -> int:
    """One seed derived from several (a seed, a stream tag, an index), so streams never meet."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def frame_count(duration_seconds: float, sample_rate: int) -> int:
    """The number of samples of `duration_seconds` at `sample_rate`; refuses what cannot be."""
    if duration_seconds < 0 or not math.isfinite(duration_seconds):
        raise ValueError(f"duration must be a finite number >= 0, got {duration_seconds}")
    if sample_rate < 8000:
        raise ValueError(f"sample rate must be at least 8000 Hz, got {sample_rate}")
    return round(duration_seconds * sample_rate)


def speech_like(
    duration_seconds: float, sample_rate: int, *, seed: int, speaker: int = 0
) -> np.ndarray:
    """One speaker talking in phrases, as float32 mono samples in [-1, 1].

    ``speaker`` 0 has a low voice (f0 95-140 Hz), 1 a high one (180-260 Hz, higher formants).
    Includes a low background-noise floor, so pauses are near-silent rather than digital zero.
    """
    if speaker not in range(len(VOICES)):
        raise ValueError(f"speaker must be 0 or 1, got {speaker}")
    frames = frame_count(duration_seconds, sample_rate)
    rng = np.random.default_rng([seed, speaker, _SPEECH_STREAM])
    audio = render_speech(frames, sample_rate, rng, VOICES[speaker])
    for first in range(0, frames, _CHUNK_SAMPLES):
        chunk = audio[first : first + _CHUNK_SAMPLES]
        noise = rng.standard_normal(len(chunk), dtype=np.float32)
        noise *= np.float32(BACKGROUND_RMS)
        chunk += noise
        np.clip(chunk, -1.0, 1.0, out=chunk)
    return audio


@dataclass(frozen=True)
class _Syllables:
    """Per-syllable parameters, with positions in samples.

    Each envelope is the parabola amplitude * 4x(1-x) of the progress x through its segment, an
    affine function of the sample number (x = sample * scale + offset), so rendering gathers only
    a few coefficients per sample. The parabola is negative outside 0 <= x <= 1, so clamping it at
    zero also silences the pauses; its dip between syllables gives the 4-5 Hz loudness modulation
    of real speech.
    """

    first_sample: np.ndarray
    centre_sample: np.ndarray
    f0: np.ndarray
    amplitude: np.ndarray
    voiced_scale: np.ndarray
    voiced_offset: np.ndarray
    fricative_amplitude: np.ndarray
    fricative_scale: np.ndarray
    fricative_offset: np.ndarray
    formants: np.ndarray  # (syllables, 3) resonance centres in Hz
    fricative_centre: np.ndarray  # Hz


def _plan_syllables(
    frames: int, sample_rate: int, rng: np.random.Generator, voice: Voice
) -> _Syllables:
    """Phrases of syllables separated by pauses; one loop iteration per phrase."""
    duration = frames / sample_rate
    starts_parts: list[np.ndarray] = []
    ends_parts: list[np.ndarray] = []
    position_parts: list[np.ndarray] = []
    cursor = rng.uniform(0.0, 0.15)
    while cursor < duration or not starts_parts:  # a turn shorter than the lead-in still speaks
        count = int(rng.integers(_PHRASE_SYLLABLES[0], _PHRASE_SYLLABLES[1] + 1))
        edges = cursor + np.concatenate(([0.0], np.cumsum(rng.uniform(*_SYLLABLE_SECONDS, count))))
        starts_parts.append(edges[:-1])
        ends_parts.append(edges[1:])
        position_parts.append(np.linspace(0.0, 1.0, count))
        cursor = edges[-1] + rng.uniform(*_PHRASE_PAUSE_SECONDS)
    rate = float(sample_rate)
    starts = np.concatenate(starts_parts) * rate
    ends = np.concatenate(ends_parts) * rate
    phrase_position = np.concatenate(position_parts)
    syllables = len(starts)

    amplitude = rng.uniform(0.55, 1.0, syllables)
    has_fricative = rng.random(syllables) < _FRICATIVE_PROBABILITY
    fricative_length = rng.uniform(*_FRICATIVE_SECONDS, syllables) * rate
    voiced_start = np.where(has_fricative, starts + fricative_length, starts)
    formants = _VOWEL_FORMANTS[rng.integers(0, len(_VOWEL_FORMANTS), syllables)]
    formants = formants * voice.formant_scale * rng.uniform(0.92, 1.08, (syllables, 3))
    fricative_centre = np.minimum(rng.uniform(3000.0, 6500.0, syllables), 0.4 * rate)
    # Intonation: each phrase starts high and declines, with a random accent per syllable.
    pitch = np.clip(0.8 - 0.55 * phrase_position + rng.uniform(-0.15, 0.15, syllables), 0, 1)
    # White noise of a fixed spectral density, so fricatives are as loud at 8 kHz as at 48 kHz.
    noise_level = _FRICATIVE_GAIN * math.sqrt(rate / 48000)
    voiced_scale = 1.0 / (ends - voiced_start)
    fricative_scale = 1.0 / fricative_length
    return _Syllables(
        first_sample=np.round(starts),
        centre_sample=(voiced_start + ends) / 2,
        f0=voice.f0_low + (voice.f0_high - voice.f0_low) * pitch,
        amplitude=amplitude,
        voiced_scale=voiced_scale,
        voiced_offset=-voiced_start * voiced_scale,
        fricative_amplitude=np.where(has_fricative, amplitude * noise_level, 0.0),
        fricative_scale=fricative_scale,
        fricative_offset=-starts * fricative_scale,
        formants=formants,
        fricative_centre=fricative_centre,
    )


def _segment_envelope(
    sample: np.ndarray,
    index: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    amplitude: np.ndarray,
) -> np.ndarray:
    """amplitude * max(0, 4x(1-x)) with x = sample * scale + offset, per segment ``index``."""
    progress = sample * scale[index]
    progress += offset[index]
    shape = 1.0 - progress
    shape *= progress
    shape *= 4.0
    np.maximum(shape, 0.0, out=shape)
    shape *= amplitude[index]
    return shape


def _sawtooth(f0: np.ndarray, sample_rate: int, phase: float) -> tuple[np.ndarray, float]:
    """A rising sawtooth (all harmonics of f0, falling 6 dB per octave) with PolyBLEP
    anti-aliasing, so high voices do not fold harmonics back into the speech band at 8 kHz.

    Starts at ``phase`` (in cycles) and returns the phase to continue from in the next chunk.
    """
    step = f0 / sample_rate
    cycles = np.cumsum(step)
    cycles += phase
    next_phase = float(cycles[-1] % 1.0)
    cycles -= np.floor(cycles)
    saw = 2.0 * cycles - 1.0
    after = cycles < step
    x = cycles[after] / step[after]
    saw[after] -= 2 * x - x * x - 1
    before = cycles > 1.0 - step
    x = (cycles[before] - 1.0) / step[before]
    saw[before] -= x * x + 2 * x + 1
    return saw, next_phase


class _Sources:
    """Renders the voiced (sawtooth) and fricative (noise) sources in consecutive pieces."""

    def __init__(
        self, syllables: _Syllables, frames: int, sample_rate: int, rng: np.random.Generator
    ) -> None:
        self._syllables = syllables
        self._frames = frames
        self._sample_rate = sample_rate
        self._rng = rng
        self._phase = 0.0
        self._speaking_threshold = 0.05 * float(syllables.amplitude.max())
        self.speaking = np.zeros(frames, dtype=bool)

    def render(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Sources for samples [first, stop); zero outside [0, frames), which is STFT padding."""
        voiced = np.zeros(stop - first)
        fricative = np.zeros(stop - first)
        low, high = max(first, 0), min(stop, self._frames)
        if low >= high:
            return voiced, fricative
        plan = self._syllables
        sample = np.arange(low, high, dtype=np.float64)
        index = np.maximum(np.searchsorted(plan.first_sample, sample, side="right") - 1, 0)
        envelope = _segment_envelope(
            sample, index, plan.voiced_scale, plan.voiced_offset, plan.amplitude
        )
        np.greater(envelope, self._speaking_threshold, out=self.speaking[low:high])
        f0 = np.interp(sample, plan.centre_sample, plan.f0)
        saw, self._phase = _sawtooth(f0, self._sample_rate, self._phase)
        np.multiply(saw, envelope, out=voiced[low - first : high - first])
        envelope = _segment_envelope(
            sample, index, plan.fricative_scale, plan.fricative_offset, plan.fricative_amplitude
        )
        envelope *= self._rng.standard_normal(high - low)
        fricative[low - first : high - first] = envelope
        return voiced, fricative


def render_speech(
    frames: int, sample_rate: int, rng: np.random.Generator, voice: Voice
) -> np.ndarray:
    """Noise-free speech of exactly ``frames`` samples (float32), faded in and out at the edges.

    Source-filter synthesis streamed through a short-time Fourier transform: frames of about
    25 ms, periodic Hann window, half-frame hop (the shifted windows sum to exactly one, so
    overlap-adding the filtered frames needs no synthesis window). Each frame's voiced spectrum
    is multiplied by three formant resonances and its noise spectrum by a broad fricative band;
    the resonances glide linearly between syllable centres. Sources are rendered batch by batch
    right before they are filtered, so temporaries stay cache-sized however long the speech is.
    """
    if frames == 0:
        return np.zeros(0, dtype=np.float32)
    plan = _plan_syllables(frames, sample_rate, rng, voice)
    sources = _Sources(plan, frames, sample_rate, rng)

    size = 2 ** round(math.log2(0.025 * sample_rate))
    hop = size // 2
    count = -(-(frames + hop) // hop)  # frame m is centred on sample m * hop, covers +-hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)
    frequencies = np.fft.rfftfreq(size, 1 / sample_rate)
    high_pass = frequencies**2 / (frequencies**2 + _HIGH_PASS_HZ**2)

    # output[p] is sample p - hop; the extra hop at each end only collects window tails.
    output = np.zeros((count + 1) * hop, dtype=np.float32)
    voiced_tail, fricative_tail = sources.render(-hop, 0)
    for first in range(0, count, _BATCH_FRAMES):
        last = min(first + _BATCH_FRAMES, count)
        voiced_new, fricative_new = sources.render(first * hop, last * hop)
        voiced = np.concatenate((voiced_tail, voiced_new))
        fricative = np.concatenate((fricative_tail, fricative_new))
        voiced_tail, fricative_tail = voiced[-hop:], fricative[-hop:]

        centres = np.arange(first, last) * float(hop)
        voiced_gain, fricative_gain = _frame_filters(plan, centres, frequencies, high_pass)
        view = np.lib.stride_tricks.sliding_window_view
        spectrum = np.fft.rfft(view(voiced, size)[::hop] * window, axis=1)
        spectrum *= voiced_gain
        noise_spectrum = np.fft.rfft(view(fricative, size)[::hop] * window, axis=1)
        noise_spectrum *= fricative_gain
        spectrum += noise_spectrum
        filtered = np.fft.irfft(spectrum, n=size, axis=1)
        halves = output[first * hop : (last + 1) * hop].reshape(-1, hop)
        halves[:-1] += filtered[:, :hop]
        halves[1:] += filtered[:, hop:]

    speech = output[hop : hop + frames]
    rms = _masked_rms(speech, sources.speaking)
    if rms > 0:
        speech *= np.float32(voice.active_rms / rms)
    fade = min(frames // 2, max(1, round(_EDGE_FADE_SECONDS * sample_rate)))
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    speech[:fade] *= ramp
    speech[frames - fade :] *= ramp[::-1]
    return speech


def _frame_filters(
    plan: _Syllables, centres: np.ndarray, frequencies: np.ndarray, high_pass: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The gains, per frame centred on ``centres`` and per frequency bin, of the voiced source
    (three formant resonances over a floor) and of the fricative noise (one broad band), both
    high-passed; the resonance centres glide linearly between syllable centres."""
    # Far above F3 every resonance has decayed below the floor: compute them only up to there.
    formant_bins = int(np.searchsorted(frequencies, _FORMANT_CEILING_HZ))
    formant_frequencies = frequencies[:formant_bins]
    voiced_gain = np.full((len(centres), len(frequencies)), _FORMANT_FLOOR)
    for formant in range(3):
        track = np.interp(centres, plan.centre_sample, plan.formants[:, formant])
        resonance = formant_frequencies - track[:, None]
        resonance *= 1.0 / _FORMANT_HALF_BANDWIDTHS[formant]
        resonance *= resonance
        resonance += 1.0
        np.divide(_FORMANT_GAINS[formant], resonance, out=resonance)
        voiced_gain[:, :formant_bins] += resonance
    voiced_gain *= high_pass
    fricative_gain = (
        frequencies - np.interp(centres, plan.centre_sample, plan.fricative_centre)[:, None]
    )
    fricative_gain *= 1.0 / _FRICATIVE_HALF_BANDWIDTH
    fricative_gain *= fricative_gain
    fricative_gain += 1.0
    np.divide(high_pass, fricative_gain, out=fricative_gain)
    return voiced_gain, fricative_gain


def _masked_rms(signal: np.ndarray, mask: np.ndarray) -> float:
    """RMS of ``signal`` where ``mask`` holds, in chunks (a whole-signal gather is slow)."""
    total = 0.0
    count = 0
    for first in range(0, len(signal), _CHUNK_SAMPLES):
        selected = signal[first : first + _CHUNK_SAMPLES][mask[first : first + _CHUNK_SAMPLES]]
        total += float(np.dot(selected, selected))
        count += len(selected)
    return math.sqrt(total / count) if count else 0.0
