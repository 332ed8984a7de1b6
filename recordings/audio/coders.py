"""The libopus encoders behind an Ogg Opus file: one frame of PCM in, one Opus packet out.

Two kinds, chosen by the channel layout (recordings.audio.opus.StereoLayout):

- ``MultistreamCoder``: one libopus multistream encoder with one stream, mono or coupled
  stereo; its packets are plain Opus packets (channel mapping family 0).
- ``SplitCoder``: two mono libopus encoders, one per party, whose packets are joined into one
  multistream packet (channel mapping family 1, two streams, none coupled). Each party's channel
  is coded on its own, so one party's voice never leaks into the other's channel and
  double-talk costs neither party its intelligibility. The bitrate is shared by activity,
  frame by frame: while one party talks and the other is silent, the talker's encoder gets
  ``talker_bitrate`` and the silent one ``listener_bitrate`` at complexity 0 (its VBR spends
  little on silence, and complexity buys nothing there); while both talk, or neither, each gets
  ``even_bitrate`` at the stream's complexity. The shares and why are in
  recordings.audio.opus.split_shares.

A frame counts as active when its RMS is above ``ACTIVE_DBFS``, held for ``HANGOVER_FRAMES``
after the last active frame and raised one frame before an onset (``SplitCoder`` therefore sees
one frame ahead: the caller keeps the last whole frame back until the next block, or the end).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from recordings.audio import native
from recordings.audio.packets import self_delimited

# The largest Opus packet is 1275 bytes per 20 ms frame of a stream, up to 3 frames in a 60 ms
# packet, plus framing.
MAX_PACKET_BYTES_PER_STREAM: Final = 3 * 1275 + 7

ACTIVE_DBFS: Final = -55.0
HANGOVER_FRAMES: Final = 5
_IDLE_COMPLEXITY: Final = 0


class CoderError(RuntimeError):
    """libopus refused a call; ``code`` is its (negative) error code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _check(code: int, operation: str) -> int:
    if code < 0:
        raise CoderError(
            f"libopus {operation} failed: {native.opus_error(code)} (code {code})", code
        )
    return code


@dataclass(frozen=True)
class Settings:
    """What every encoder of a file is set to (see recordings.audio.opus for why)."""

    rate: int
    bitrate: int
    bandwidth: int
    complexity: int
    voice: bool
    lsb_depth: int = 16

    def ctls(self, bitrate: int | None = None) -> list[tuple[int, int, str]]:
        requests = [
            (native.OPUS_SET_BITRATE, bitrate or self.bitrate, "OPUS_SET_BITRATE"),
            (native.OPUS_SET_MAX_BANDWIDTH, self.bandwidth, "OPUS_SET_MAX_BANDWIDTH"),
            (native.OPUS_SET_LSB_DEPTH, self.lsb_depth, "OPUS_SET_LSB_DEPTH"),
            (native.OPUS_SET_COMPLEXITY, self.complexity, "OPUS_SET_COMPLEXITY"),
        ]
        if self.voice:
            requests.append((native.OPUS_SET_SIGNAL, native.OPUS_SIGNAL_VOICE, "OPUS_SET_SIGNAL"))
        return requests


class MultistreamCoder:
    """Mono or coupled stereo: one libopus multistream encoder with one stream."""

    holdback = 0

    def __init__(self, settings: Settings, channels: int) -> None:
        self._lib = native.libopus()
        self.channels = channels
        mapping = (ctypes.c_ubyte * channels)(*range(channels))
        error = ctypes.c_int(0)
        encoder = self._lib.opus_multistream_encoder_create(
            settings.rate,
            channels,
            1,
            channels - 1,
            mapping,
            native.OPUS_APPLICATION_VOIP,
            ctypes.byref(error),
        )
        if not encoder or error.value != 0:
            raise CoderError(
                f"libopus could not create the encoder: {native.opus_error(error.value)}",
                error.value,
            )
        self._encoder: Any = encoder
        try:
            for request, value, name in settings.ctls():
                self._ctl(request, ctypes.c_int(value), name)
            lookahead = ctypes.c_int32(0)
            self._ctl(native.OPUS_GET_LOOKAHEAD, ctypes.byref(lookahead), "OPUS_GET_LOOKAHEAD")
        except BaseException:
            self.release()
            raise
        self.lookahead = lookahead.value
        self._buffer = ctypes.create_string_buffer(MAX_PACKET_BYTES_PER_STREAM * channels)

    def _ctl(self, request: int, value: Any, name: str) -> None:
        _check(
            self._lib.opus_multistream_encoder_ctl(
                ctypes.c_void_p(self._encoder), ctypes.c_int(request), value
            ),
            name,
        )

    def encode(
        self, pcm: npt.NDArray[np.float32], frame: int, count: int
    ) -> Iterator[tuple[int, int]]:
        """(address, size) of the packet of each of the first ``count`` frames of ``pcm``
        (C-contiguous, interleaved); an address is valid until the next packet."""
        base = pcm.ctypes.data
        stride = frame * self.channels * 4
        encode = self._lib.opus_multistream_encode_float
        buffer, capacity, address = self._buffer, len(self._buffer), ctypes.addressof(self._buffer)
        for index in range(count):
            size = _check(
                encode(self._encoder, base + index * stride, frame, buffer, capacity), "encode"
            )
            yield address, size

    def release(self) -> None:
        if self._encoder is not None:
            self._lib.opus_multistream_encoder_destroy(self._encoder)
            self._encoder = None


class SplitCoder:
    """Two parties, two mono encoders, one multistream packet per frame; the bitrate follows
    whoever talks (module docstring)."""

    holdback = 1  # frames kept back: a frame's allocation looks one frame ahead

    def __init__(
        self, settings: Settings, talker_bitrate: int, listener_bitrate: int, even_bitrate: int
    ) -> None:
        self._lib = native.libopus()
        self._settings = settings
        self._shares = {
            (True, False): (talker_bitrate, listener_bitrate),
            (False, True): (listener_bitrate, talker_bitrate),
        }
        self._even = (even_bitrate, even_bitrate)
        self._encoders: list[Any] = []
        try:
            for _ in range(2):
                error = ctypes.c_int(0)
                encoder = self._lib.opus_encoder_create(
                    settings.rate, 1, native.OPUS_APPLICATION_VOIP, ctypes.byref(error)
                )
                if not encoder or error.value != 0:
                    raise CoderError(
                        f"libopus could not create an encoder: {native.opus_error(error.value)}",
                        error.value,
                    )
                self._encoders.append(encoder)
                for request, value, name in settings.ctls(self._even[0]):
                    self._ctl(encoder, request, ctypes.c_int(value), name)
            lookahead = ctypes.c_int32(0)
            self._ctl(
                self._encoders[0],
                native.OPUS_GET_LOOKAHEAD,
                ctypes.byref(lookahead),
                "OPUS_GET_LOOKAHEAD",
            )
        except BaseException:
            self.release()
            raise
        self.lookahead = lookahead.value
        self._current: Sequence[tuple[int, int]] = ((self._even[0], settings.complexity),) * 2
        self._since_active = [HANGOVER_FRAMES + 1, HANGOVER_FRAMES + 1]
        self._buffers = [ctypes.create_string_buffer(MAX_PACKET_BYTES_PER_STREAM) for _ in "ab"]
        self._packet = ctypes.create_string_buffer(2 * MAX_PACKET_BYTES_PER_STREAM + 2)

    def _ctl(self, encoder: Any, request: int, value: Any, name: str) -> None:
        _check(
            self._lib.opus_encoder_ctl(ctypes.c_void_p(encoder), ctypes.c_int(request), value),
            name,
        )

    def _allocate(self, active: tuple[bool, bool]) -> None:
        """Set each encoder's bitrate and complexity for the next frame, where they change."""
        rates = self._shares.get(active, self._even)
        listener = min(rates)
        wanted = [
            (
                rate,
                _IDLE_COMPLEXITY
                if rate == listener and rates[0] != rates[1]
                else self._settings.complexity,
            )
            for rate in rates
        ]
        for encoder, (old, new) in zip(
            self._encoders, zip(self._current, wanted, strict=True), strict=True
        ):
            if old[0] != new[0]:
                self._ctl(encoder, native.OPUS_SET_BITRATE, ctypes.c_int(new[0]), "bitrate")
            if old[1] != new[1]:
                self._ctl(encoder, native.OPUS_SET_COMPLEXITY, ctypes.c_int(new[1]), "complexity")
        self._current = wanted

    def encode(
        self, pcm: npt.NDArray[np.float32], frame: int, count: int
    ) -> Iterator[tuple[int, int]]:
        """(address, size) of the multistream packet of each of the first ``count`` frames of
        ``pcm`` (interleaved, two channels); the frame after them, if ``pcm`` holds it, is the
        lookahead of the last one."""
        whole = min(len(pcm) // frame, count + 1)
        planar = np.ascontiguousarray(pcm[: whole * frame].T)  # (2, samples)
        levels = planar.reshape(2, whole, frame)
        power = np.einsum("cfs,cfs->cf", levels, levels) / frame
        loud = power > 10 ** (ACTIVE_DBFS / 10)  # (2, whole)
        encode, unpad = self._lib.opus_encode_float, self._lib.opus_packet_unpad
        bases = [planar[channel].ctypes.data for channel in (0, 1)]
        packet, packet_address = self._packet, ctypes.addressof(self._packet)
        for index in range(count):
            active = []
            for channel in (0, 1):
                if loud[channel, index]:
                    self._since_active[channel] = 0
                else:
                    self._since_active[channel] += 1
                ahead = index + 1 < whole and bool(loud[channel, index + 1])
                active.append(ahead or self._since_active[channel] <= HANGOVER_FRAMES)
            self._allocate((active[0], active[1]))
            parts = []
            for channel in (0, 1):
                buffer = self._buffers[channel]
                size = _check(
                    encode(
                        self._encoders[channel],
                        bases[channel] + index * frame * 4,
                        frame,
                        buffer,
                        len(buffer),
                    ),
                    "encode",
                )
                size = _check(unpad(buffer, size), "unpad")
                parts.append(buffer.raw[:size])
            joined = self_delimited(parts[0]) + parts[1]
            ctypes.memmove(packet, joined, len(joined))
            yield packet_address, len(joined)

    def release(self) -> None:
        for encoder in self._encoders:
            self._lib.opus_encoder_destroy(encoder)
        self._encoders = []
