"""A two-party call: who speaks when, rendered block by block, and written to a file.

Determinism: the same arguments always give the same samples. A conversation is planned once
(turns: who speaks when, each with its own seed) and then rendered block by block, with the
background noise of each block seeded by (seed, block index). So :func:`write_conversation` only
ever holds a block and the turns overlapping it, and the file still holds exactly the samples
:func:`conversation` would return.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from recordings_cli.synth.formats import AudioFormat
from recordings_cli.synth.speech import (
    BACKGROUND_RMS,
    VOICES,
    frame_count,
    render_speech,
    stream_seed,
)

_TURN_SECONDS = (1.2, 7.0)
_OVERLAP_PROBABILITY = 0.25
_OVERLAP_SECONDS = (0.1, 0.6)
_GAP_SECONDS = (0.15, 1.2)
_SAME_SPEAKER_PROBABILITY = 0.12
_SAME_SPEAKER_PAUSE_SECONDS = (0.6, 1.5)

_BLOCK_SECONDS = 10.0

# Distinct streams so that, e.g., turn 3's seed never equals block 3's noise seed.
_TURN_PLAN_STREAM = 0x504C
_TURN_STREAM = 0x5455
_NOISE_STREAM = 0x4E4F


@dataclass(frozen=True)
class _Turn:
    speaker: int
    start: int
    frames: int
    seed: int

    @property
    def stop(self) -> int:
        return self.start + self.frames


def _plan_turns(total_frames: int, sample_rate: int, seed: int) -> list[_Turn]:
    """Who speaks when: the agent opens, speakers alternate with gaps or brief overlaps, and
    sometimes one speaker goes on after a pause. A speaker's own turns never overlap."""
    rng = np.random.default_rng([seed, _TURN_PLAN_STREAM])
    turns: list[_Turn] = []
    speaker = 0
    cursor = rng.uniform(0.2, 0.8)
    while (start := round(cursor * sample_rate)) < total_frames:
        length = rng.uniform(*_TURN_SECONDS)
        frames = min(round(length * sample_rate), total_frames - start)
        turns.append(_Turn(speaker, start, frames, stream_seed(seed, _TURN_STREAM, len(turns))))
        if rng.random() < _SAME_SPEAKER_PROBABILITY:
            gap = rng.uniform(*_SAME_SPEAKER_PAUSE_SECONDS)
        else:
            speaker = 1 - speaker
            if rng.random() < _OVERLAP_PROBABILITY:
                gap = -rng.uniform(*_OVERLAP_SECONDS)
            else:
                gap = rng.uniform(*_GAP_SECONDS)
        cursor += length + gap
    return turns


class _ConversationRenderer:
    """Renders a planned conversation block by block, keeping only turns that straddle blocks."""

    def __init__(self, total_frames: int, sample_rate: int, channels: int, seed: int) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 (mixed) or 2 (agent left), got {channels}")
        self.total_frames = total_frames
        self.block_frames = round(_BLOCK_SECONDS * sample_rate)
        self.block_count = -(-total_frames // self.block_frames)
        self._sample_rate = sample_rate
        self._channels = channels
        self._seed = seed
        self._turns = _plan_turns(total_frames, sample_rate, seed)
        self._turn_starts = np.array([turn.start for turn in self._turns], dtype=np.int64)
        self._longest_turn = max((turn.frames for turn in self._turns), default=0)
        self._pending: dict[int, np.ndarray] = {}

    def render_block(self, block: int) -> np.ndarray:
        first = block * self.block_frames
        stop = min(first + self.block_frames, self.total_frames)
        noise_rng = np.random.default_rng([self._seed, _NOISE_STREAM, block])
        output = noise_rng.standard_normal((stop - first, self._channels), dtype=np.float32)
        output *= np.float32(BACKGROUND_RMS)

        begin = int(np.searchsorted(self._turn_starts, first - self._longest_turn, side="left"))
        end = int(np.searchsorted(self._turn_starts, stop, side="left"))
        still_pending: dict[int, np.ndarray] = {}
        for index in range(begin, end):
            turn = self._turns[index]
            if turn.stop <= first:
                continue
            audio = self._pending.get(index)
            if audio is None:
                rng = np.random.default_rng(turn.seed)
                audio = render_speech(turn.frames, self._sample_rate, rng, VOICES[turn.speaker])
            low, high = max(first, turn.start), min(stop, turn.stop)
            channel = turn.speaker if self._channels == 2 else 0
            output[low - first : high - first, channel] += audio[
                low - turn.start : high - turn.start
            ]
            if turn.stop > stop:
                still_pending[index] = audio
        self._pending = still_pending
        return np.clip(output, -1.0, 1.0, out=output)


def conversation(
    duration_seconds: float, sample_rate: int, channels: int, *, seed: int
) -> np.ndarray:
    """A two-party call as float32 samples of shape (frames, channels) in [-1, 1].

    Stereo puts the agent (low voice) on the left and the customer (high voice) on the right, as
    call recorders do; mono mixes both. Turns alternate with pauses and occasional overlaps.
    """
    renderer = _ConversationRenderer(
        frame_count(duration_seconds, sample_rate), sample_rate, channels, seed
    )
    output = np.empty((renderer.total_frames, channels), dtype=np.float32)
    for block in range(renderer.block_count):
        first = block * renderer.block_frames
        audio = renderer.render_block(block)
        output[first : first + len(audio)] = audio
    return output


def write_conversation(
    path: Path,
    fmt: AudioFormat,
    duration_seconds: float,
    sample_rate: int,
    channels: int,
    *,
    seed: int,
) -> None:
    """Write :func:`conversation`'s samples to ``path`` in ``fmt``, one 10-second block at a time,
    so an hour-long file needs no more memory than a few seconds of audio."""
    renderer = _ConversationRenderer(
        frame_count(duration_seconds, sample_rate), sample_rate, channels, seed
    )
    if fmt.ffmpeg is not None:
        blocks = (renderer.render_block(block) for block in range(renderer.block_count))
        encode_with_ffmpeg(path, fmt.ffmpeg, sample_rate, channels, blocks)
        return
    with sf.SoundFile(
        path,
        "w",
        samplerate=sample_rate,
        channels=channels,
        format=fmt.format,
        subtype=fmt.subtype,
    ) as out:
        for block in range(renderer.block_count):
            out.write(renderer.render_block(block))


def encode_with_ffmpeg(
    path: Path,
    codec: tuple[str, str, int],
    sample_rate: int,
    channels: int,
    blocks: Iterable[np.ndarray],
) -> None:
    """Encode float blocks ``(frames, channels)`` with one of FFmpeg's encoders (PyAV) into
    ``codec`` = (container, encoder, bit rate); PyAV converts to the encoder's sample format
    and frame size."""
    import av

    container, encoder, bit_rate = codec
    if encoder == "libopus" and sample_rate not in (8_000, 12_000, 16_000, 24_000, 48_000):
        raise ValueError(f"Opus codes 8, 12, 16, 24 or 48 kHz, not {sample_rate} Hz")
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), mode="w", format=container) as output:
        stream: Any = output.add_stream(encoder, rate=sample_rate, layout=layout)
        stream.bit_rate = bit_rate
        written = 0
        for block in blocks:
            audio = np.ascontiguousarray(block, dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = written
            written += len(audio)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
