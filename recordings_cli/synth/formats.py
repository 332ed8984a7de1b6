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
