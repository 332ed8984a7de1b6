"""Ogg Opus file encoder on the system's libopusenc, through pyogg's ctypes bindings.

Why libopusenc: it is Xiph's own Ogg Opus muxer (correct pre-skip, granule positions and end
trimming, so the decoded duration equals the source's), it accepts any input sample rate
(resampling internally to Opus' 48 kHz), and it exposes the libopus encoder ctls, so the bitrate
is set for the whole stream. pyogg 0.6.14a1 only binds the C functions (no encoder classes);
that is all we use. The unreleased pyogg 0.7 ``OggOpusWriter`` writes invalid granule positions:
do not use it.

Settings (each explained where it is defined): VoIP application; the bitrate for the whole
stream, VBR except for narrowband stereo (CBR); a bandwidth cap from the source rate and channel
count; 16-bit LSB depth; 60 ms packets for mono, 20 for stereo; the voice signal hint for sources
of 12 kHz and below.

Cost: libopusenc always runs libopus at 48 kHz, through its multistream API. For 8 and 16 kHz
sources that is 10-20 % more CPU than ffmpeg, which runs libopus at the source rate (profiled:
88 % of our time is inside libopus; decoding, hashing and Python are a few percent).

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
_OPE_SET_SERIALNO_REQUEST: Final = 14006
_OPUS_SET_VBR_REQUEST: Final = 4006
_OPUS_SET_SIGNAL_REQUEST: Final = 4024
_OPUS_SET_LSB_DEPTH_REQUEST: Final = 4036
_OPUS_SET_EXPERT_FRAME_DURATION_REQUEST: Final = 4040
_OPUS_APPLICATION_VOIP: Final = 2048
_OPUS_SIGNAL_VOICE: Final = 3001
_OPUS_FRAMESIZE_20_MS: Final = 5004
_OPUS_FRAMESIZE_60_MS: Final = 5006

# libopus runs its speech/music analysis only at 16 kHz and above; below, it assumes speech in
# the VoIP application. libopusenc feeds it 48 kHz whatever the source, so on 8 and 12 kHz calls
# the analysis ran anyway and took synthetic narrowband speech for music (26-72 % of packets
# coded CELT), and CELT at 24 kb/s stereo let one speaker into the other's channel at -26 dB
# instead of -41 dB. For those sources we say it is speech, as libopus itself would assume.
_ASSUME_VOICE_MAX_RATE: Final = 12_000

# VBR, libopus' default and ffmpeg's, except for narrow- and mediumband stereo. There each
# channel is near silence while the other party talks, SILK's VBR spends little on it, and the
# stream misses the bitrate: 21.2-21.4 kb/s for 24 requested on A-law stereo calls at 8 and
# 12 kHz, and the same from ffmpeg. CBR holds 24.9 kb/s (Ogg framing included) there, at
# about 1.8x the CPU of VBR, which 8 kHz can afford. Elsewhere CBR would cost 2-3x the CPU
# (SILK iterates to hit each frame's size) and VBR stayed within 10 % of the target.
_CBR_STEREO_MAX_RATE: Final = 12_000

# (highest source rate it covers, libopus constant, name), narrowest first.
_BANDWIDTHS: Final = (
    (8_000, 1101, "narrowband"),
    (12_000, 1102, "mediumband"),
    (16_000, 1103, "wideband"),
    (24_000, 1104, "superwideband"),
)
_WIDEBAND: Final = (1103, "wideband")
_FULLBAND: Final = (1105, "fullband")
# Below this stream bitrate, stereo wider than wideband bleeds one channel into the other.
_STEREO_WIDE_MIN_BITRATE: Final = 32_000

# 60 ms packets for mono instead of libopusenc's 20: an archive has no latency to protect, and
# three SILK frames per packet save libopus and libopusenc per-packet work. In bench/encoder.py
# that took mono from 0.77-0.83x ffmpeg's throughput (which uses 20 ms) to 0.83-1.05x, for 2-7 %
# less bitrate (speech still 22.4-23.5 kb/s). Stereo keeps 20 ms: its VBR bitrate already runs
# 5-6 % under the target (each channel is quiet while the other party talks), and 40 ms took a
# 22.05 kHz call to -10 %.
_MONO_FRAME_DURATION: Final = _OPUS_FRAMESIZE_60_MS
_STEREO_FRAME_DURATION: Final = _OPUS_FRAMESIZE_20_MS

# Input is 16-bit telephony or lossy audio: telling the encoder so stops it spending bits on
# the noise floor below 16 bits.
_LSB_DEPTH: Final = 16

# libopus clamps the bitrate into this range (per channel) without an error: refuse instead.
_MIN_BITRATE: Final = 500
_MAX_BITRATE_PER_CHANNEL: Final = 300_000
_OPE_INTERNAL_ERROR: Final = -13

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


def max_bandwidth(sample_rate: int, channels: int, bitrate: int) -> tuple[int, str]:
    """The widest Opus bandwidth worth coding: ``(libopus constant, name)``.

    First, the band that just covers the source's Nyquist frequency: libopusenc resamples
    everything to 48 kHz, so without this cap an 8 kHz call would be coded as full band, with
    bits spent on an empty spectrum.

    Second, stereo below ``_STEREO_WIDE_MIN_BITRATE`` is capped at wideband: 24 kb/s cannot
    pay for two channels of hybrid super-wideband or full band, and Opus then lets one speaker
    into the other's channel. Two synthetic two-speaker calls at 48 kHz, 24 kb/s, the silent
    side's level relative to the talker's: wideband (SILK) -48 and -31 dB, super-wideband -21
    and -11 dB, full band -15 and -2 dB. At 32 kb/s every band kept -28 dB or better.
    """
    constant, name = _FULLBAND
    for max_rate, band_constant, band_name in _BANDWIDTHS:
        if sample_rate <= max_rate:
            constant, name = band_constant, band_name
            break
    if channels == 2 and bitrate < _STEREO_WIDE_MIN_BITRATE and constant > _WIDEBAND[0]:
        return _WIDEBAND
    return constant, name


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
        serial: int | None = None,
    ) -> None:
        _require_libopusenc()
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2 (mapping family 0), got {channels}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if not _MIN_BITRATE <= bitrate <= _MAX_BITRATE_PER_CHANNEL * channels:
            raise ValueError(f"bitrate {bitrate} b/s is out of Opus' range for {channels} ch")
        self.path = os.fspath(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self.bitrate = bitrate
        self.bandwidth, self.bandwidth_name = max_bandwidth(sample_rate, channels, bitrate)
        self.constant_bitrate = channels == 2 and sample_rate <= _CBR_STEREO_MAX_RATE
        self.frames_written = 0
        self.serial = serial
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
                _check(error.value or _OPE_INTERNAL_ERROR, f"creating {self.path!r}")
        finally:
            _opus.ope_comments_destroy(comments)
        try:
            ctls = [
                (_OPUS_SET_APPLICATION_REQUEST, _OPUS_APPLICATION_VOIP, "OPUS_SET_APPLICATION"),
                (_OPUS_SET_BITRATE_REQUEST, self.bitrate, "OPUS_SET_BITRATE"),
                (_OPUS_SET_MAX_BANDWIDTH_REQUEST, self.bandwidth, "OPUS_SET_MAX_BANDWIDTH"),
                (_OPUS_SET_LSB_DEPTH_REQUEST, _LSB_DEPTH, "OPUS_SET_LSB_DEPTH"),
                (
                    _OPUS_SET_EXPERT_FRAME_DURATION_REQUEST,
                    _MONO_FRAME_DURATION if self.channels == 1 else _STEREO_FRAME_DURATION,
                    "OPUS_SET_EXPERT_FRAME_DURATION",
                ),
            ]
            if self.sample_rate <= _ASSUME_VOICE_MAX_RATE:
                ctls.append((_OPUS_SET_SIGNAL_REQUEST, _OPUS_SIGNAL_VOICE, "OPUS_SET_SIGNAL"))
            if self.constant_bitrate:
                ctls.append((_OPUS_SET_VBR_REQUEST, 0, "OPUS_SET_VBR"))
            if self.serial is not None:
                # libopusenc picks a random Ogg serial number; a fixed one makes re-encoding the
                # same source byte-identical, so a re-run hour converges to the same entries.
                ctls.append((_OPE_SET_SERIALNO_REQUEST, self.serial, "OPE_SET_SERIALNO"))
            for request, value, name in ctls:
                _check(_opus.ope_encoder_ctl(enc, request, ctypes.c_int(value)), name)
        except BaseException:
            _opus.ope_encoder_destroy(enc)
            raise
        return enc

    def write(self, block: npt.NDArray[Any]) -> None:
        """Encode one block of samples in [-1, 1], shape ``(frames, channels)``.

        A C-contiguous float32 block (what ``SoundFile.read(dtype="float32", always_2d=True)``
        returns) is passed to libopusenc without copying; anything else is converted first.
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
