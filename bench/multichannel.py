"""How to archive a recording with more than two channels at 24 kb/s: the measurement behind the
decision (issue 13).

Why: a conference bridge records each participant on a channel of its own (4, 6 or more).
Two ways fit the product's 24 kb/s: keep every channel, one mono Opus stream per participant in
a multichannel Ogg Opus file (the budget shared evenly, or moved to whoever talks as the
two-party dual-mono layout does), or mix the participants down to one mono stream, as the bridge
itself mixes them for its listeners. This bench codes the same calls both ways and scores what
a listener hears.

Inputs: conferences of real speech (espeak-ng and flite voices, ``bench/speech.py``), one
participant per channel at 16 kHz, turns among random participants with pauses and a second of
double-talk every fourth turn, clean and with white line noise at -50 dBFS on every channel (a
microphone's floor, which decides whether a silent participant's channel looks silent).

Codings, all 24 kb/s for the whole recording, libopus 16 kHz wideband, VoIP, 60 ms frames:

- ``downmix``: the channels summed (clipped to full scale) into one mono stream; what
  ``convert_to_opus`` does.
- ``even``: one mono stream per channel, 24/N kb/s each.
- ``by activity, idle X``: one mono stream per channel; a channel is active above -55 dBFS
  (held 5 frames, raised a frame ahead, as ``recordings.audio.coders``); idle channels get X
  kb/s at complexity 0, the active ones share the rest; all active or none: even.

Scores: PESQ-WB (``pesq``), mean of 10 s segments, of the mix (the decoded channels summed
against the source channels summed, aligned first) for every coding, and per participant (each
decoded channel against its own source channel) for the per-channel codings. kb/s: Opus
packets with multistream framing (one self-delimiting length byte per stream but the last).

Run: ``PYTHONPATH=$PWD .venv/bin/python bench/multichannel.py [--seconds 120]
[--participants 4,6]`` (needs ``make bench-deps``; about 3 minutes at the defaults). Prints a
Markdown table and, last, one JSON line.
"""

import argparse
import ctypes
import json
import random
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import soundfile as sf
from encoder_speech import alignment_lag, segment_scores, shifted  # bench/encoder_speech.py
from speech import (  # bench/speech.py
    AGENT_LINES,
    AGENT_VOICES,
    CUSTOMER_LINES,
    CUSTOMER_VOICES,
    SpeechCache,
    missing_engines,
)

from recordings.audio import native
from recordings.audio.coders import ACTIVE_DBFS, HANGOVER_FRAMES
from recordings.audio.convert import convert_to_opus

RATE: Final = 16_000
FRAME: Final = RATE * 60 // 1000
BITRATE: Final = 24_000
WIDEBAND: Final = 1103
SIGNAL_VOICE: Final = 3001
IDLE_RATES: Final = (2_000, 3_000, 4_000)

Audio = npt.NDArray[np.float32]
Allocation = Callable[[Sequence[bool]], list[tuple[int, int]]]


def conference(
    cache: SpeechCache, participants: int, seconds: float, seed: int, noise_dbfs: float | None
) -> Audio:
    """(frames, participants): turns among random participants, each on their own channel."""
    rng = random.Random(seed)  # noqa: S311 - bench data
    voices = [*AGENT_VOICES, *CUSTOMER_VOICES]
    lines = [*AGENT_LINES, *CUSTOMER_LINES]
    total = int(seconds * RATE)
    tracks = np.zeros((participants, total), np.float32)
    position, turn, last = int(0.5 * RATE), 0, -1
    while position < total:
        speaker = rng.choice([p for p in range(participants) if p != last])
        last = speaker
        voice = voices[speaker % len(voices)]
        samples = cache.utterance(voice, lines[turn % len(lines)], RATE)
        if turn % 4 == 3 and position > RATE:  # a second of double-talk
            position -= RATE
        end = min(total, position + len(samples))
        tracks[speaker, position:end] += samples[: end - position]
        position = end + int(rng.uniform(0.3, 1.5) * RATE)
        turn += 1
    if noise_dbfs is not None:
        noise = np.random.default_rng(seed).normal(0.0, 10 ** (noise_dbfs / 20), tracks.shape)
        tracks += noise.astype(np.float32)
    return np.ascontiguousarray(np.clip(tracks.T, -1.0, 1.0))


def _libopus() -> ctypes.CDLL:
    lib = native.libopus()
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = (ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int))
    lib.opus_decode_float.restype = ctypes.c_int
    lib.opus_decode_float.argtypes = (
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    )
    lib.opus_decoder_destroy.argtypes = (ctypes.c_void_p,)
    return lib


def code_per_channel(audio: Audio, allocate: Allocation) -> tuple[Audio, float]:
    """Each channel through its own mono libopus encoder and decoder, bitrates per frame from
    ``allocate``; the decoded channels and the kb/s of the multistream packets."""
    lib = _libopus()
    channels = audio.shape[1]
    error = ctypes.c_int(0)
    encoders = [
        lib.opus_encoder_create(RATE, 1, native.OPUS_APPLICATION_VOIP, ctypes.byref(error))
        for _ in range(channels)
    ]
    decoders = [lib.opus_decoder_create(RATE, 1, ctypes.byref(error)) for _ in range(channels)]

    def ctl(encoder: int, request: int, value: int) -> None:
        if lib.opus_encoder_ctl(ctypes.c_void_p(encoder), request, ctypes.c_int(value)) != 0:
            raise RuntimeError(f"opus_encoder_ctl({request}) failed")

    for encoder in encoders:
        ctl(encoder, native.OPUS_SET_MAX_BANDWIDTH, WIDEBAND)
        ctl(encoder, native.OPUS_SET_SIGNAL, SIGNAL_VOICE)
        ctl(encoder, native.OPUS_SET_LSB_DEPTH, 16)
    frames = len(audio) // FRAME
    audio = audio[: frames * FRAME]
    power = (audio.reshape(frames, FRAME, channels).astype(np.float64) ** 2).mean(axis=1)
    loud = power > 10 ** (ACTIVE_DBFS / 10)
    since = np.full(channels, HANGOVER_FRAMES + 1)
    decoded = np.zeros_like(audio)
    packet = ctypes.create_string_buffer(4_000)
    pcm = np.zeros(FRAME, np.float32)
    current: list[tuple[int, int] | None] = [None] * channels
    total_bytes = 0
    try:
        for index in range(frames):
            active = []
            for channel in range(channels):
                since[channel] = 0 if loud[index, channel] else since[channel] + 1
                ahead = index + 1 < frames and bool(loud[index + 1, channel])
                active.append(ahead or since[channel] <= HANGOVER_FRAMES)
            for channel, wanted in enumerate(allocate(active)):
                encoder = encoders[channel]
                if current[channel] != wanted:
                    ctl(encoder, native.OPUS_SET_BITRATE, wanted[0])
                    ctl(encoder, native.OPUS_SET_COMPLEXITY, wanted[1])
                    current[channel] = wanted
                frame = np.ascontiguousarray(audio[index * FRAME : (index + 1) * FRAME, channel])
                size = lib.opus_encode_float(encoder, frame.ctypes.data, FRAME, packet, 4_000)
                if size < 0:
                    raise RuntimeError(f"opus_encode_float failed ({size})")
                total_bytes += size + (1 if channel < channels - 1 else 0)
                got = lib.opus_decode_float(
                    decoders[channel], packet.raw[:size], size, pcm.ctypes.data, FRAME, 0
                )
                decoded[index * FRAME : index * FRAME + got, channel] = pcm[:got]
    finally:
        for encoder in encoders:
            lib.opus_encoder_destroy(encoder)
        for decoder in decoders:
            lib.opus_decoder_destroy(decoder)
    return decoded, total_bytes * 8 / (len(audio) / RATE) / 1000


def even(channels: int) -> Allocation:
    return lambda active: [(BITRATE // channels, 10)] * channels


def by_activity(channels: int, idle: int) -> Allocation:
    def allocate(active: Sequence[bool]) -> list[tuple[int, int]]:
        talking = sum(active)
        if talking in (0, channels):
            return [(BITRATE // channels, 10)] * channels
        each = (BITRATE - idle * (channels - talking)) // talking
        return [(each, 10) if on else (idle, 0) for on in active]

    return allocate


def pesq_wb(reference: npt.NDArray[np.float64], decoded: npt.NDArray[np.float64]) -> float:
    lag = alignment_lag(reference, decoded, 400, min(len(reference), RATE * 30))
    aligned = shifted(decoded, lag, len(reference))
    scores = [s for s in segment_scores(reference, aligned, RATE, "wb") if s is not None]
    return statistics.fmean(scores) if scores else float("nan")


def mix(audio: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    return np.clip(audio.astype(np.float64).sum(axis=1), -1.0, 1.0)


@dataclass(frozen=True)
class Result:
    participants: int
    noise_dbfs: float | None
    coding: str
    kbps: float
    mixed: float
    per_participant: list[float]


def measure(
    cache: SpeechCache, participants: int, seconds: float, noise: float | None, folder: Path
) -> list[Result]:
    audio = conference(cache, participants, seconds, seed=participants, noise_dbfs=noise)
    reference = mix(audio)
    source = folder / "conference.wav"
    sf.write(source, audio, RATE, subtype="PCM_16")
    output = folder / "downmix.opus"
    convert_to_opus(source, output)
    downmixed, _ = sf.read(output, dtype="float64")
    results = [
        Result(
            participants,
            noise,
            "downmix (convert_to_opus)",
            output.stat().st_size * 8 / seconds / 1000,
            pesq_wb(reference, downmixed),
            [],
        )
    ]
    codings = [("even, 24/N each", even(participants))] + [
        (f"by activity, idle {idle // 1000} kb/s", by_activity(participants, idle))
        for idle in IDLE_RATES
    ]
    for name, allocate in codings:
        decoded, kbps = code_per_channel(audio, allocate)
        per = [
            pesq_wb(audio[:, c].astype(np.float64), decoded[:, c].astype(np.float64))
            for c in range(participants)
        ]
        results.append(
            Result(participants, noise, name, kbps, pesq_wb(reference, mix(decoded)), per)
        )
    return results


def report(results: Sequence[Result], seconds: float) -> str:
    lines = [
        f"{seconds:g} s conferences of real speech, one participant per channel, 16 kHz, "
        "24 kb/s for the whole recording. PESQ-WB: mixed = decoded channels summed against "
        "source channels summed; per participant: min-median-max over the channels.",
        "",
        "| participants | line noise | coding | kb/s | PESQ mixed | PESQ per participant |",
        "| ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        noise = "none" if r.noise_dbfs is None else f"{r.noise_dbfs:g} dBFS"
        per = (
            f"{min(r.per_participant):.2f} / {statistics.median(r.per_participant):.2f} / "
            f"{max(r.per_participant):.2f}"
            if r.per_participant
            else "(one mix)"
        )
        lines.append(
            f"| {r.participants} | {noise} | {r.coding} | {r.kbps:.1f} | {r.mixed:.2f} | {per} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--participants", default="4,6")
    args = parser.parse_args(argv)
    missing = missing_engines()
    if missing:
        raise SystemExit(f"missing {', '.join(missing)} (make bench-deps)")
    counts = [int(n) for n in args.participants.split(",")]
    if any(n < 3 for n in counts):
        parser.error("--participants: 3 or more (two parties are bench/encoder_speech.py's)")
    with tempfile.TemporaryDirectory(prefix="bench-multichannel-") as name:
        folder = Path(name)
        cache = SpeechCache(folder / "utterances")
        results = [
            result
            for n in counts
            for noise in (None, -50.0)
            for result in measure(cache, n, args.seconds, noise, folder)
        ]
    print(report(results, args.seconds))
    print()
    print(json.dumps({"bench": "multichannel", "seconds": args.seconds,
                      "results": [asdict(r) for r in results]}))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
