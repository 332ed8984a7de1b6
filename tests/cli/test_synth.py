"""Why this exists: the demo seeder, the conversion tests and the benchmarks all feed on synthetic
calls, and their results only mean something if that audio behaves like speech (two voices with
their own pitch, syllables and pauses, agent and customer on separate channels), is the same for
the same seed, and is written in every source format the platform accepts without ever holding a
long recording in memory.
"""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recordings.audio.convert import convert_to_opus, probe_source
from recordings_cli.synth import (
    FORMATS,
    PLATFORM_FORMATS,
    AudioFormat,
    conversation,
    speech_like,
    write_conversation,
)

LOSSY_FORMATS = {"ogg-vorbis", "mp3"}
MP3_FRAME = 1152


def window_rms(signal: np.ndarray, sample_rate: int, seconds: float = 0.1) -> np.ndarray:
    size = round(seconds * sample_rate)
    windows = signal[: len(signal) // size * size].astype(np.float64).reshape(-1, size)
    return np.sqrt((windows**2).mean(axis=1))


def median_pitch(signal: np.ndarray, sample_rate: int) -> float:
    """Median autocorrelation pitch of the loud 40 ms windows, searched between 70 and 400 Hz."""
    size = round(0.04 * sample_rate)
    shortest, longest = sample_rate // 400, sample_rate // 70
    pitches = []
    for start in range(0, len(signal) - size, size):
        window = signal[start : start + size].astype(np.float64)
        if np.sqrt(np.mean(window**2)) < 0.05:
            continue
        window -= window.mean()
        correlation = np.correlate(window, window, "full")[size - 1 :]
        lag = shortest + int(np.argmax(correlation[shortest:longest]))
        pitches.append(sample_rate / lag)
    return float(np.median(pitches))


def test_speech_like_is_deterministic_per_seed() -> None:
    first = speech_like(3.0, 16_000, seed=7, speaker=1)

    assert np.array_equal(first, speech_like(3.0, 16_000, seed=7, speaker=1))
    assert not np.array_equal(first, speech_like(3.0, 16_000, seed=8, speaker=1))
    assert not np.array_equal(first, speech_like(3.0, 16_000, seed=7, speaker=0))


def test_conversation_is_deterministic_per_seed() -> None:
    first = conversation(12.0, 8_000, 2, seed=3)

    assert np.array_equal(first, conversation(12.0, 8_000, 2, seed=3))
    assert not np.array_equal(first, conversation(12.0, 8_000, 2, seed=4))


@pytest.mark.parametrize(("duration", "sample_rate"), [(2.5, 8_000), (1.2345, 44_100), (0, 48_000)])
def test_shapes_and_dtypes(duration: float, sample_rate: int) -> None:
    frames = round(duration * sample_rate)

    speech = speech_like(duration, sample_rate, seed=1)
    stereo = conversation(duration, sample_rate, 2, seed=1)
    mono = conversation(duration, sample_rate, 1, seed=1)

    assert speech.shape == (frames,)
    assert stereo.shape == (frames, 2)
    assert mono.shape == (frames, 1)
    assert speech.dtype == stereo.dtype == mono.dtype == np.float32


@pytest.mark.parametrize("sample_rate", [8_000, 16_000, 48_000])
def test_audio_is_within_full_scale_and_clearly_audible(sample_rate: int) -> None:
    for signal in (
        speech_like(20.0, sample_rate, seed=2, speaker=0),
        speech_like(20.0, sample_rate, seed=2, speaker=1),
        conversation(30.0, sample_rate, 1, seed=2),
        conversation(30.0, sample_rate, 2, seed=2),
    ):
        assert np.all(np.abs(signal) <= 1.0)
        assert np.abs(signal).max() > 0.2
        assert np.sqrt(np.mean(signal.astype(np.float64) ** 2)) > 0.02


def test_speech_has_pauses_over_a_low_noise_floor() -> None:
    rms = window_rms(speech_like(30.0, 16_000, seed=5), 16_000)

    quiet = rms < 0.005
    assert 0.05 < quiet.mean() < 0.6  # phrases separated by pauses, but mostly talking
    assert rms[quiet].min() > 0  # pauses carry a noise floor, not digital silence
    assert (rms > 0.03).mean() > 0.3


@pytest.mark.parametrize("channels", [1, 2])
def test_conversation_alternates_with_pauses(channels: int) -> None:
    audio = conversation(60.0, 16_000, channels, seed=11)

    for channel in range(channels):
        rms = window_rms(audio[:, channel], 16_000)
        assert (rms < 0.005).mean() > 0.1, "no near-silent 100 ms windows"
        assert (rms > 0.03).mean() > 0.2, "hardly any speech"


def test_stereo_puts_the_agent_left_and_the_customer_right() -> None:
    audio = conversation(60.0, 16_000, 2, seed=21)
    left, right = audio[:, 0], audio[:, 1]

    assert abs(np.corrcoef(left, right)[0, 1]) < 0.1
    both_loud = (window_rms(left, 16_000) > 0.03) & (window_rms(right, 16_000) > 0.03)
    assert both_loud.mean() < 0.15  # taking turns, with only brief overlaps
    assert 90 < median_pitch(left, 16_000) < 150  # agent: 95-140 Hz
    assert 170 < median_pitch(right, 16_000) < 270  # customer: 180-260 Hz


def test_mono_mixes_both_voices() -> None:
    mono = conversation(60.0, 16_000, 1, seed=21)[:, 0]
    stereo = conversation(60.0, 16_000, 2, seed=21)

    speech = np.abs(stereo).max(axis=1) > 0.05
    assert np.corrcoef(mono[speech], stereo[speech].sum(axis=1))[0, 1] > 0.95


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_loudness_is_modulated_at_the_syllable_rate(seed: int) -> None:
    """Speech's envelope has its strongest modulation at 4-5 syllables per second."""
    envelope = window_rms(speech_like(60.0, 16_000, seed=seed, speaker=seed % 2), 16_000, 0.01)
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean())) ** 2
    frequencies = np.fft.rfftfreq(len(envelope), 0.01)
    band = (frequencies > 2.5) & (frequencies < 12)

    assert 3.0 < frequencies[band][np.argmax(spectrum[band])] < 6.0


def test_energy_sits_in_the_speech_band_with_some_fricative_hiss() -> None:
    signal = speech_like(30.0, 48_000, seed=4).astype(np.float64)
    power = np.abs(np.fft.rfft(signal)) ** 2
    frequencies = np.fft.rfftfreq(len(signal), 1 / 48_000)
    share = {
        band: power[(frequencies >= low) & (frequencies < high)].sum() / power.sum()
        for band, (low, high) in {
            "voice": (80, 3_000),
            "hiss": (3_000, 8_000),
            "ultrasonic": (12_000, 24_000),
        }.items()
    }

    assert share["voice"] > 0.7
    assert 0.01 < share["hiss"] < 0.3
    assert share["ultrasonic"] < 0.01


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize(("sample_rate", "channels"), [(8_000, 1), (44_100, 2)])
def test_every_format_writes_a_readable_file(
    tmp_path: Path, name: str, sample_rate: int, channels: int
) -> None:
    fmt = FORMATS[name]
    path = tmp_path / f"call{fmt.extension}"

    write_conversation(path, fmt, 12.5, sample_rate, channels, seed=6)

    info = sf.info(str(path))
    assert (info.format, info.subtype) == (fmt.format, fmt.subtype)
    assert info.samplerate == sample_rate
    assert info.channels == channels
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == sample_rate
    expected = round(12.5 * sample_rate)
    tolerance = 2 * MP3_FRAME if name in LOSSY_FORMATS else 0
    assert abs(len(audio) - expected) <= tolerance
    assert abs(info.frames - expected) <= tolerance
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 0.02


@pytest.mark.parametrize("name", sorted(PLATFORM_FORMATS))
@pytest.mark.parametrize(("sample_rate", "channels"), [(16_000, 1), (48_000, 2)])
def test_platform_formats_are_written_by_ffmpeg_s_encoders_and_read_back_by_it(
    tmp_path: Path, name: str, sample_rate: int, channels: int
) -> None:
    fmt = PLATFORM_FORMATS[name]
    path = tmp_path / f"call{fmt.extension}"

    write_conversation(path, fmt, 12.5, sample_rate, channels, seed=6)

    source = probe_source(path)
    assert source.decoder == "ffmpeg" and source.subtype == (fmt.subtype or "").lower()
    # Opus in WebM decodes at 48 kHz whatever rate it was coded at (RFC 7845's rule, Matroska's
    # too); AAC keeps its rate.
    decoded_rate = 48_000 if fmt.subtype == "OPUS" else sample_rate
    assert (source.sample_rate, source.channels) == (decoded_rate, channels)
    result = convert_to_opus(path, tmp_path / "call.opus")
    assert abs(result.encoded_seconds - 12.5) <= 0.02


def test_formats_table_is_consistent() -> None:
    assert set(FORMATS) == {"wav-pcm16", "wav-ulaw", "wav-alaw", "flac", "ogg-vorbis", "mp3"}
    for name, fmt in FORMATS.items():
        assert isinstance(fmt, AudioFormat)
        assert fmt.name == name
        assert fmt.extension.startswith(".")
        assert sf.check_format(fmt.format, fmt.subtype)


def test_block_wise_file_holds_the_same_samples_as_the_whole_conversation(tmp_path: Path) -> None:
    path = tmp_path / "call.flac"

    write_conversation(path, FORMATS["flac"], 25.0, 16_000, 2, seed=9)

    written, _ = sf.read(str(path), dtype="float32", always_2d=True)
    np.testing.assert_allclose(written, conversation(25.0, 16_000, 2, seed=9), atol=1 / 32_000)


def test_writing_a_long_file_does_not_hold_the_whole_signal(tmp_path: Path) -> None:
    whole_signal_bytes = 120 * 48_000 * 2 * 4  # 46 MB of float32 stereo
    tracemalloc.start()
    try:
        write_conversation(tmp_path / "long.wav", FORMATS["wav-pcm16"], 120.0, 48_000, 2, seed=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < whole_signal_bytes / 2
    assert sf.info(str(tmp_path / "long.wav")).frames == 120 * 48_000


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: conversation(1.0, 16_000, 3, seed=1), "channels"),
        (lambda: speech_like(1.0, 16_000, seed=1, speaker=2), "speaker"),
        (lambda: speech_like(-1.0, 16_000, seed=1), "duration"),
        (lambda: conversation(1.0, 4_000, 1, seed=1), "sample rate"),
    ],
)
def test_invalid_arguments_are_rejected(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
