"""The source-recording formats the platform stores, as soundfile spells them: the demo and the
tests write synthetic calls in each."""

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioFormat:
    """A source-recording format the platform may store, as soundfile spells it."""

    name: str
    extension: str  # with the leading dot, ready for Path.with_suffix
    format: str
    subtype: str | None
    ffmpeg: tuple[str, str, int] | None = None
    """(container, encoder, bit rate) for a format libsndfile cannot write: written through
    FFmpeg's libraries (PyAV) with the encoder platforms use, and read back through them."""


FORMATS: dict[str, AudioFormat] = {
    fmt.name: fmt
    for fmt in (
        AudioFormat("wav-pcm16", ".wav", "WAV", "PCM_16"),
        AudioFormat("wav-ulaw", ".wav", "WAV", "ULAW"),
        AudioFormat("wav-alaw", ".wav", "WAV", "ALAW"),
        AudioFormat("flac", ".flac", "FLAC", "PCM_16"),
        AudioFormat("ogg-vorbis", ".ogg", "OGG", "VORBIS"),
        AudioFormat("mp3", ".mp3", "MP3", "MPEG_LAYER_III"),
    )
}

PLATFORM_FORMATS: dict[str, AudioFormat] = {
    fmt.name: fmt
    for fmt in (
        # What a browser's MediaRecorder writes (Opus: 8, 12, 16, 24 or 48 kHz only), and what
        # phone apps and meeting exports write. libsndfile reads neither; FFmpeg does.
        AudioFormat("webm-opus", ".webm", "WEBM", "OPUS", ffmpeg=("webm", "libopus", 32_000)),
        AudioFormat("m4a-aac", ".m4a", "M4A", "AAC", ffmpeg=("ipod", "aac", 64_000)),
    )
}
"""Formats written through FFmpeg's encoders (PyAV), not libsndfile: kept apart from
``FORMATS``, which every libsndfile-based writer and test iterates."""
