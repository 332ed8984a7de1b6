"""Ogg Opus file encoder on the system's libopusenc, through pyogg's ctypes bindings.

Why libopusenc: it is Xiph's own Ogg Opus muxer (correct pre-skip, granule positions and end
trimming, so the decoded duration equals the source's), it accepts any input sample rate
(resampling internally to Opus' 48 kHz), and it exposes the libopus encoder ctls, so the bitrate
is exact for the whole stream. pyogg 0.6.14a1 only binds the C functions (no encoder classes);
that is all we use. The unreleased pyogg 0.7 ``OggOpusWriter`` writes invalid granule positions:
do not use it.

The ctypes calls go through ``ctypes.CDLL``, which releases the GIL for the duration of each C
call, so encoders running in several threads use several cores.

Importing pyogg appends ``;``-separated entries to ``os.environ["PATH"]`` (its Windows-minded
library loader). This module is the one place that imports it, with ``PATH`` saved and restored:
import pyogg's opus bindings from here (``recordings.audio.opus``), never directly.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from types import ModuleType, TracebackType
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt


def _import_pyogg_opus() -> ModuleType:
    """Import ``pyogg.opus`` without letting pyogg's library loader rewrite ``PATH``."""
    saved_path = os.environ.get("PATH")
    try:
        from pyogg import opus
    finally:
        if saved_path is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved_path
    return opus


_opus: Final[ModuleType] = _import_pyogg_opus()

# libopus ctl requests and values (opus_defines.h). The ctl is variadic: values go as c_int.
_OPUS_SET_APPLICATION_REQUEST: Final = 4000
_OPUS_SET_BITRATE_REQUEST: Final = 4002
_OPUS_SET_MAX_BANDWIDTH_REQUEST: Final = 4004
_OPUS_SET_LSB_DEPTH_REQUEST: Final = 4036
_OPUS_APPLICATION_VOIP: Final = 2048

# (highest source rate it covers, libopus constant, name), narrowest first.
_BANDWIDTHS: Final = (
    (8_000, 1101, "narrowband"),
    (12_000, 1102, "mediumband"),
    (16_000, 1103, "wideband"),
    (24_000, 1104, "superwideband"),
)
_FULLBAND: Final = (1105, "fullband")

# Input is 16-bit telephony or lossy audio: telling the encoder so stops it spending bits on
# the noise floor below 16 bits.
_LSB_DEPTH: Final = 16

# libopusenc's documented limits (opusenc.h): input rate and Opus' bitrate range per channel.
_MIN_RATE: Final = 100
_MAX_RATE: Final = 768_000
_MIN_BITRATE_PER_CHANNEL: Final = 500
_MAX_BITRATE_PER_CHANNEL: Final = 256_000

DEFAULT_BITRATE: Final = 24_000
"""Bits per second for the whole stream (mono or stereo), as the product specifies."""

ENCODER_TAG: Final = "daily-conversation-audio-recordings"


class OpusEncodeError(RuntimeError):
    """libopusenc refused a call or is not installed.

    ``code`` is libopusenc's (negative) error code, or ``None`` when the library is missing.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def libopusenc_available() -> bool:
    """Whether the system's libopusenc (Debian ``libopusenc0``) could be loaded."""
    return bool(getattr(_opus, "PYOGG_OPUS_ENC_AVAIL", False))


def libopusenc_version() -> str:
    """Version strings of libopusenc and the libopus it links, e.g. for archive metadata."""
    _require_libopusenc()
    enc = _opus.ope_get_version_string().decode()
    lib = _opus.opus_get_version_string().decode()
    return f"{enc}, {lib}"


def max_bandwidth_for_rate(sample_rate: int) -> tuple[int, str]:
    """The Opus bandwidth that just covers a source rate's Nyquist band.

    libopusenc resamples everything to 48 kHz, so without this cap an 8 kHz call would be coded
    as full band: bits wasted on an empty spectrum, and audible leakage between the channels of
    a stereo call.
    """
    for max_rate, constant, name in _BANDWIDTHS:
        if sample_rate <= max_rate:
            return constant, name
    return _FULLBAND


def _require_libopusenc() -> None:
    if not libopusenc_available():
        raise OpusEncodeError(
            "libopusenc is not available: install the system packages "
            "libopus0 libopusenc0 libogg0 (Debian) so pyogg can load them"
        )


def _check(code: int, operation: str) -> None:
    """Raise with libopusenc's own message when a call returned an error code."""
    if code != 0:
        message = _opus.ope_strerror(code)
        text = message.decode(errors="replace") if message else "unknown error"
        raise OpusEncodeError(f"libopusenc {operation} failed: {text} (code {code})", code)


class OpusFileEncoder:
    """Streams float PCM into an Ogg Opus file.

    Use as a context manager; ``write`` blocks of shape ``(frames, channels)``. On a clean exit
    the encoder is drained and the file is complete. If an exception leaves the ``with`` block
    (or ``write``/``close`` raises), the encoder is destroyed without draining and the file at
    ``path`` is incomplete (no end-of-stream page): the caller owns the path and must delete it.
    An instance is not thread-safe; use one per thread.
    """

    _enc: Any = None

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int,
        channels: int,
        bitrate: int = DEFAULT_BITRATE,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        _require_libopusenc()
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2 (mapping family 0), got {channels}")
        if not _MIN_RATE <= sample_rate <= _MAX_RATE:
            raise ValueError(f"sample_rate must be {_MIN_RATE}..{_MAX_RATE} Hz, got {sample_rate}")
        if not (
            _MIN_BITRATE_PER_CHANNEL * channels <= bitrate <= _MAX_BITRATE_PER_CHANNEL * channels
        ):
            raise ValueError(f"bitrate {bitrate} b/s is out of Opus' range for {channels} ch")
        self.path = os.fspath(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self.bitrate = bitrate
        self.bandwidth_name = max_bandwidth_for_rate(sample_rate)[1]
        self.frames_written = 0
        self._enc = self._create(tags or {})

    def _create(self, tags: Mapping[str, str]) -> Any:
        comments = _opus.ope_comments_create()
        if not comments:
            raise MemoryError("libopusenc could not allocate the comment header")
        try:
            for key, value in {"ENCODER": ENCODER_TAG, **tags}.items():
                _check(
                    _opus.ope_comments_add(comments, key.encode(), value.encode()),
                    f"adding comment {key}",
                )
            error = ctypes.c_int(0)
            # The comments are copied into the encoder; ours are destroyed below either way.
            enc = _opus.ope_encoder_create_file(
                os.fsencode(self.path), comments, self.sample_rate, self.channels, 0, error
            )
            if not enc:
                _check(error.value or -1, f"creating {self.path!r}")
        finally:
            _opus.ope_comments_destroy(comments)
        try:
            bandwidth, _ = max_bandwidth_for_rate(self.sample_rate)
            for request, value, name in (
                (_OPUS_SET_APPLICATION_REQUEST, _OPUS_APPLICATION_VOIP, "OPUS_SET_APPLICATION"),
                (_OPUS_SET_BITRATE_REQUEST, self.bitrate, "OPUS_SET_BITRATE"),
                (_OPUS_SET_MAX_BANDWIDTH_REQUEST, bandwidth, "OPUS_SET_MAX_BANDWIDTH"),
                (_OPUS_SET_LSB_DEPTH_REQUEST, _LSB_DEPTH, "OPUS_SET_LSB_DEPTH"),
            ):
                _check(_opus.ope_encoder_ctl(enc, request, ctypes.c_int(value)), name)
        except BaseException:
            _opus.ope_encoder_destroy(enc)
            raise
        return enc

    def write(self, block: npt.NDArray[np.float32]) -> None:
        """Encode one block of interleaved float samples, shape ``(frames, channels)``.

        A C-contiguous float32 block (what ``SoundFile.read(dtype="float32", always_2d=True)``
        returns) is passed to libopusenc without copying.
        """
        if self._enc is None:
            raise ValueError("write to a closed OpusFileEncoder")
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"block must have shape (frames, {self.channels}), got {block.shape}")
        frames = block.shape[0]
        if frames == 0:
            return
        pcm = np.ascontiguousarray(block, dtype=np.float32)
        pointer = pcm.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        try:
            _check(_opus.ope_encoder_write_float(self._enc, pointer, frames), "write")
        except OpusEncodeError:
            self.abort()
            raise
        self.frames_written += frames

    def close(self) -> None:
        """Drain the encoder (final packets, end-of-stream page) and close the file."""
        if self._enc is None:
            return
        enc, self._enc = self._enc, None
        try:
            _check(_opus.ope_encoder_drain(enc), "drain")
        finally:
            _opus.ope_encoder_destroy(enc)

    def abort(self) -> None:
        """Release the encoder without finishing the stream; the file is left incomplete."""
        if self._enc is None:
            return
        enc, self._enc = self._enc, None
        _opus.ope_encoder_destroy(enc)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        self.abort()
