"""Synthetic, speech-like conversation audio for the demo seeder, tests and benchmarks.

Why not sine tones or white noise: the Opus encoder, voice-activity heuristics and file sizes all
behave differently on speech. A crude source-filter model gets close enough at almost no cost:
a band-limited sawtooth on a gliding fundamental (the voiced source, i.e. harmonics of f0) and
white noise (fricatives), shaped per short-time frame by formant-like resonances that move from
syllable to syllable, under syllable envelopes, with pauses between phrases and turns, over a low
noise floor. Everything is vectorised numpy; Python loops run only per phrase, turn, block or
cache-sized batch of samples.

`speech.py` renders one speaker, `conversation.py` plans who speaks when and renders and writes
a two-party call, `formats.py` names the source formats the platform stores.
"""

from recordings_cli.synth.conversation import conversation, encode_with_ffmpeg, write_conversation
from recordings_cli.synth.formats import FORMATS, PLATFORM_FORMATS, AudioFormat
from recordings_cli.synth.speech import speech_like

__all__ = [
    "FORMATS",
    "PLATFORM_FORMATS",
    "AudioFormat",
    "conversation",
    "encode_with_ffmpeg",
    "speech_like",
    "write_conversation",
]
