"""Decode what libsndfile cannot read through FFmpeg's libraries, in process (PyAV).

Conversation platforms store more than libsndfile reads: AAC in MP4/M4A (mobile apps, meeting
exports), Opus or Vorbis in WebM/Matroska (every browser's ``MediaRecorder``), AMR in 3GP or raw
``.amr`` (mobile networks), WAV files with codecs libsndfile lacks (G.722, G.729). libsndfile
stays the first decoder (fast, streaming, exact lengths); this one takes the rest. PyAV's wheels
carry FFmpeg's libraries, so there is no ``ffmpeg`` binary and no subprocess; ``av`` is imported
on first use, so a process that only meets WAV never pays for it.

Blocks come out as float32 frames at the source's own rate and channel count (FFmpeg's
resampler only converts the sample format), so the encoder sees what libsndfile would have given
it. Where the container states how long the stream is (the MP4 family: the track's duration
after its edit list), the decoder's end padding past it is dropped: an AAC encoder pads its last
frame, and a decoder that keeps the padding makes a 3.3 s call last 3.32 s. Elsewhere FFmpeg
may only estimate the length (from the bitrate, for ADTS and AMR), so nothing is cut there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Generator

DECODER_NAME: Final = "ffmpeg"


class FFmpegDecodeError(Exception):
    """FFmpeg could not open or decode the file; the message says what it made of it."""

    def __init__(self, message: str, *, opened: bool = False):
        super().__init__(message)
        self.opened = opened
        """The container opened and had an audio stream: a failure after that is corruption,
        not an unknown format."""


@dataclass(frozen=True)
class FFmpegStreamInfo:
    container: str
    """FFmpeg's demuxer name, e.g. ``mov,mp4,m4a,3gp,3g2,mj2``, ``matroska,webm``, ``amr``."""
    codec: str
    """FFmpeg's decoder name, e.g. ``aac``, ``opus``, ``amrnb``, ``g722``."""
    sample_rate: int
    channels: int
    frames: int
    """Frames the container announces (its duration at the sample rate, perhaps estimated);
    0 when it does not say. The decoded count is authoritative."""
    frames_exact: bool
    """``frames`` is the stream's stated length (MP4 family), not an estimate."""


class FFmpegSource:
    """One audio stream of a file, decoded in blocks of float32 frames ``(frames, channels)``.

    Use as a context manager, or call ``close``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import av
        from av.error import FFmpegError

        self._ffmpeg_error = FFmpegError
        try:
            self._container: Any = av.open(os.fspath(path), mode="r")
        except (FFmpegError, UnicodeDecodeError, ValueError) as error:
            raise FFmpegDecodeError(f"FFmpeg cannot open it: {_message(error)}") from error
        try:
            container_name = self._container.format.name
            if not self._container.streams.audio:
                kinds = sorted({s.type for s in self._container.streams}) or ["no streams"]
                raise FFmpegDecodeError(
                    f"FFmpeg reads it as {container_name} with no audio stream ({', '.join(kinds)})"
                )
            self._stream: Any = self._container.streams.audio[0]
            context = self._stream.codec_context
            rate = int(self._stream.rate or context.sample_rate or 0)
            channels = len(self._stream.layout.channels) if self._stream.layout else 0
            recognised = f"{container_name} with {context.name} audio"
            if rate <= 0 or channels <= 0:
                raise FFmpegDecodeError(
                    f"FFmpeg reads it as {recognised} but finds no sample rate or channels"
                )
        except BaseException:
            self._container.close()
            raise
        # Only the MP4 family states a stream's length exactly (the track's duration, after
        # its edit list); elsewhere FFmpeg may estimate it from the bitrate (ADTS, AMR), and
        # an estimate must neither cut the audio nor call a whole file truncated.
        exact = "mov" in container_name.split(",")
        self._end = _stream_end(self._stream, rate) if exact else None
        self.info = FFmpegStreamInfo(
            container=container_name,
            codec=context.name,
            sample_rate=rate,
            channels=channels,
            frames=self._end or _announced_frames(self._container, rate),
            frames_exact=self._end is not None,
        )
        self._recognised = recognised
        self._resampler = av.AudioResampler(format="flt", layout=self._stream.layout, rate=rate)
        self._frames = self._decoded_blocks()
        self._pending = np.zeros((0, channels), dtype=np.float32)
        # Decode the first block now: a file whose header FFmpeg reads but whose audio it
        # cannot decode is refused when it is opened (probed), not found out later.
        try:
            first = next(self._frames, None)
        except BaseException:
            self.close()
            raise
        if first is not None:
            self._pending = first

    def _resampled(self) -> Generator[Any]:
        """Packed float32 frames: every decoded frame, then what the resampler holds back."""
        for frame in self._container.decode(self._stream):
            yield from self._resampler.resample(frame)
        yield from self._resampler.resample(None)

    def _decoded_blocks(self) -> Generator[npt.NDArray[np.float32]]:
        channels = self.info.channels
        emitted = 0
        try:
            for packed in self._resampled():
                block = _packed(packed, channels)
                if self._end is not None:  # the MP4 track's stated end: drop the padding
                    block = block[: max(0, self._end - emitted)]
                emitted += len(block)
                if len(block):
                    yield block
        except self._ffmpeg_error as error:
            seconds = emitted / self.info.sample_rate
            raise FFmpegDecodeError(
                f"FFmpeg failed decoding {self._recognised} after {seconds:.3f} s: "
                f"{_message(error)}",
                opened=True,
            ) from error

    def read(self, frames: int) -> npt.NDArray[np.float32]:
        """Up to ``frames`` frames; fewer only at the end, none after it."""
        parts, held = [self._pending], len(self._pending)
        while held < frames:
            block = next(self._frames, None)
            if block is None:
                break
            parts.append(block)
            held += len(block)
        pending = parts[0] if len(parts) == 1 else np.concatenate(parts)
        out, self._pending = pending[:frames], pending[frames:]
        return out

    def close(self) -> None:
        self._frames.close()
        self._container.close()

    def __enter__(self) -> FFmpegSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _packed(frame: Any, channels: int) -> npt.NDArray[np.float32]:
    """A packed float32 frame as ``(frames, channels)``."""
    return np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1, channels)


def _stream_end(stream: Any, rate: int) -> int | None:
    """Frames the stream lasts per its container, counted from its start, or None."""
    if stream.duration is None or stream.time_base is None:
        return None
    seconds = Fraction(stream.duration) * Fraction(stream.time_base)
    frames = round(seconds * rate)
    return frames if frames > 0 else None


def _announced_frames(container: Any, rate: int) -> int:
    if container.duration is None:
        return 0
    return max(0, round(container.duration * rate / 1_000_000))  # AV_TIME_BASE


def _message(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return str(text).strip() or type(error).__name__
