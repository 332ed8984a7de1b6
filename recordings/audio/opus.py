"""Ogg Opus file encoder: libopus at the rate the band needs, muxed into Ogg with libogg.

Why not libopusenc (what this module used before): it always runs libopus at 48 kHz and
resamples every source to 48 kHz first, so an 8 kHz call paid for a resampler and for libopus'
48 kHz front end it does not need; on real speech that made 8 kHz two-channel telephony 2.5x
slower than ffmpeg, which runs libopus at the source rate. Here libopus runs at the rate of the
band it codes (8 kHz narrowband, 12 mediumband, 16 wideband, 24 super-wideband, 48 fullband):
a source at that rate goes in as it is, any other is resampled once with libsoxr (``soxr``)
to it. An Ogg Opus stream always counts time at 48 kHz, whatever rate the encoder ran at;
OpusHead records the source's rate for players that want it back.

What the muxer guarantees (RFC 7845): OpusHead alone on the first page, OpusTags on the next,
then the audio; the pre-skip is the encoder's lookahead; every page's granule position is the
48 kHz sample count at the end of its last packet, and the last page's is the source's length
plus the pre-skip, so decoders trim the padding and the decoded duration equals the source's.
A fixed Ogg serial number makes the file a pure function of the input and the settings.

Settings, each explained where it is defined: VoIP application; the bitrate for the whole
stream; the bandwidth cap from the source rate and channel count; 16-bit LSB depth; the frame
length; the voice hint below 16 kHz; the complexity; VBR; and how a two-channel recording is
coded (``StereoLayout``).
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Mapping
from enum import StrEnum
from types import TracebackType
from typing import Any, BinaryIO, Final, Self

import numpy as np
import numpy.typing as npt
import soxr

from recordings.audio import native
from recordings.audio.coders import CoderError, MultistreamCoder, Settings, SplitCoder

DEFAULT_BITRATE: Final = 24_000
"""Bits per second for the whole stream (mono or stereo), as the product specifies."""

ENCODER_TAG: Final = "daily-conversation-audio-recordings"

OGG_OPUS_RATE: Final = 48_000
"""The rate Ogg Opus counts time in (granule positions, pre-skip), whatever the coded band."""


class StereoLayout(StrEnum):
    """How a two-channel recording is coded."""

    COUPLED = "coupled"
    """One coupled stereo stream (channel mapping family 0): libopus codes the channels
    jointly (mid/side where it pays)."""
    DUAL_MONO = "dual-mono"
    """Two independent mono streams in one Ogg Opus file (channel mapping family 1, two
    streams, none coupled): each party's channel is coded on its own, and the stream's bitrate
    goes to whoever talks (recordings.audio.coders.SplitCoder)."""


DUAL_MONO_MAX_RATE: Final = 8_000
"""Two-party recordings coded at this libopus rate or below (narrowband: 8 kHz telephony) take
the dual-mono layout; wider ones stay coupled. Measured on real speech (bench/encoder_speech.py,
docs/BENCHMARKS.md "The stereo layout"): at narrowband dual-mono keeps each party intelligible
through double-talk (per-channel PESQ 4.33 and 4.28 against coupled's 2.16 and 3.05) and
matches coupled on calls that take turns, with or without line noise. At wideband a mono SILK
stream needs about 20 kb/s to code a party well, so two of them do not fit in 24 kb/s: on calls
that take turns dual-mono scored 3.46 mixed against coupled's 4.33."""


def stereo_layout_for(encoder_rate: int) -> StereoLayout:
    """The layout a two-channel recording gets when libopus runs at ``encoder_rate``."""
    return StereoLayout.DUAL_MONO if encoder_rate <= DUAL_MONO_MAX_RATE else StereoLayout.COUPLED


# (highest source rate it covers, libopus constant, name, the libopus rate that codes it),
# narrowest first.
_BANDS: Final = (
    (8_000, 1101, "narrowband", 8_000),
    (12_000, 1102, "mediumband", 12_000),
    (16_000, 1103, "wideband", 16_000),
    (24_000, 1104, "superwideband", 24_000),
)
_FULLBAND: Final = (1105, "fullband", 48_000)
_WIDEBAND: Final = (1103, "wideband", 16_000)
# Below this stream bitrate, coupled stereo wider than wideband bleeds one channel into the
# other. Two synthetic two-speaker calls at 48 kHz, 24 kb/s, the silent side's level relative
# to the talker's: wideband (SILK) -48 and -31 dB, super-wideband -21 and -11 dB, full band -15
# and -2 dB. At 32 kb/s every band kept -28 dB or better.
_STEREO_WIDE_MIN_BITRATE: Final = 32_000

# libopus runs its speech/music analysis only at 16 kHz and above; below, in the VoIP
# application, it assumes speech. Saying so keeps narrowband calls in SILK whatever the rate.
_ASSUME_VOICE_MAX_RATE: Final = 12_000

# VBR everywhere, libopus' default and ffmpeg's. Narrowband stereo was CBR, to hold 24 kb/s on
# calls whose channels are each silent half the time; on real speech (bench/encoder_speech.py,
# 300 s) that cost 2.9x ffmpeg's CPU and, on double-talk, PESQ 3.75 against 4.24 for the
# mixed signal. With VBR the bitrate on speech stays within 10 % of 24 kb/s; the silences
# cost less, as they may.

# Long packets: an archive has no latency to protect, and several SILK frames per packet save
# per-packet work. Mono takes 60 ms. Coupled stereo takes 40: on real speech (8 and 16 kHz
# calls, turns and double-talk) it cost 7 % less CPU than 20 ms for 0.02-0.06 more PESQ, where
# 60 ms lost 0.01-0.05 PESQ and 1-1.5 kb/s. The dual-mono layout's mono streams take 60.
_MONO_FRAME_MS: Final = 60
_STEREO_FRAME_MS: Final = 40

# Input is 16-bit telephony or lossy audio: telling the encoder so stops it spending bits on
# the noise floor below 16 bits.
_LSB_DEPTH: Final = 16

# libopus' default and ffmpeg's.
DEFAULT_COMPLEXITY: Final = 10

# libopus clamps the bitrate into this range (per channel) without an error: refuse instead.
_MIN_BITRATE: Final = 500
_MAX_BITRATE_PER_CHANNEL: Final = 300_000


class OpusEncodeError(RuntimeError):
    """libopus or libogg refused a call, or is not installed.

    ``code`` is libopus' (negative) error code, or ``None`` for anything else.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def libopus_version() -> str:
    """The libopus version string, for archive metadata and benchmark reports."""
    try:
        return native.libopus_version()
    except native.NativeLibraryError as error:
        raise OpusEncodeError(str(error)) from error


def max_bandwidth(sample_rate: int, channels: int, bitrate: int) -> tuple[int, str]:
    """The widest Opus bandwidth worth coding: ``(libopus constant, name)``.

    First, the band that just covers the source's Nyquist frequency, so an 8 kHz call is not
    coded as a wider band with bits spent on an empty spectrum. Second, coupled stereo below
    ``_STEREO_WIDE_MIN_BITRATE`` is capped at wideband: 24 kb/s cannot pay for two channels of
    hybrid super-wideband or full band, and Opus then lets one speaker into the other's channel.
    """
    constant, name, _ = _band(sample_rate, channels, bitrate)
    return constant, name


def _band(sample_rate: int, channels: int, bitrate: int) -> tuple[int, str, int]:
    constant, name, rate = _FULLBAND
    for max_rate, band_constant, band_name, band_rate in _BANDS:
        if sample_rate <= max_rate:
            constant, name, rate = band_constant, band_name, band_rate
            break
    if channels == 2 and bitrate < _STEREO_WIDE_MIN_BITRATE and constant > _WIDEBAND[0]:
        return _WIDEBAND
    return constant, name, rate


def opus_head(
    channels: int, pre_skip: int, input_rate: int, layout: StereoLayout | None = None
) -> bytes:
    """The identification header (RFC 7845, section 5.1).

    Mono and coupled stereo use channel mapping family 0; dual-mono stereo uses family 1 with
    two uncoupled streams, channel 0 from stream 0 and channel 1 from stream 1.
    """
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_rate, 0, 0)
    if channels == 2 and layout is StereoLayout.DUAL_MONO:
        head = head[:-1] + struct.pack("<BBBBB", 1, 2, 0, 0, 1)
    return head


def opus_tags(vendor: str, comments: Mapping[str, str]) -> bytes:
    """The comment header (RFC 7845, section 5.2)."""
    encoded = [f"{key}={value}".encode() for key, value in comments.items()]
    vendor_bytes = vendor.encode()
    parts = [b"OpusTags", struct.pack("<I", len(vendor_bytes)), vendor_bytes]
    parts.append(struct.pack("<I", len(encoded)))
    for comment in encoded:
        parts += [struct.pack("<I", len(comment)), comment]
    return b"".join(parts)


class _OggWriter:
    """Packets into Ogg pages, through libogg, onto an open file."""

    def __init__(self, file: BinaryIO, serial: int) -> None:
        self._lib = native.libogg()
        self._file = file
        self._state = native.new_ogg_stream_state()
        # ogg_stream_init takes an int: a serial of 2**31 or more goes as its signed twin.
        signed = serial - (1 << 32) if serial >= 1 << 31 else serial
        if self._lib.ogg_stream_init(self._state, signed) != 0:
            raise OpusEncodeError("libogg could not initialise the stream")
        self._page = native.OggPage()
        self._packet = native.OggPacket()
        self._packetno = 0

    def header(self, data: bytes) -> None:
        """One header packet on a page of its own."""
        buffer = ctypes.create_string_buffer(data, len(data))
        self.packet(ctypes.addressof(buffer), len(data), 0)  # libogg copies it
        self._write_pages(self._lib.ogg_stream_flush)

    def packet(self, data: int, size: int, granule: int, *, last: bool = False) -> None:
        """Queue one packet (``data`` its address) and write any page it completes; the last
        packet's pages are flushed."""
        packet = self._packet
        packet.packet = data
        packet.bytes = size
        packet.b_o_s = int(self._packetno == 0)
        packet.e_o_s = int(last)
        packet.granulepos = granule
        packet.packetno = self._packetno
        self._packetno += 1
        if self._lib.ogg_stream_packetin(self._state, ctypes.byref(packet)) != 0:
            raise OpusEncodeError("libogg refused a packet")
        self._write_pages(self._lib.ogg_stream_flush if last else self._lib.ogg_stream_pageout)

    def _write_pages(self, next_page: Any) -> None:
        page = self._page
        while next_page(self._state, ctypes.byref(page)) != 0:
            self._file.write(ctypes.string_at(page.header, page.header_len))
            self._file.write(ctypes.string_at(page.body, page.body_len))

    def close(self) -> None:
        self._lib.ogg_stream_clear(self._state)


def split_shares(bitrate: int, rate: int) -> tuple[int, int, int]:
    """The dual-mono layout's encoder bitrates for a stream of ``bitrate``: the talker's and the
    listener's while one party talks, and each party's while both talk or neither.

    At narrowband, measured on real speech at 24 kb/s (bench/encoder_speech.py):

    - Both talk: 13 kb/s each. A mono SILK encoder in VBR spends about 10 % under its target on
      speech (two asked for 12 kb/s spent 21.1-21.5 together, where coupled stereo spends
      23.0-24.1); 13 each brings the stream to 23.2-24.3 kb/s on speech, and 26 is the most it
      can spend while both channels are loud, 24 + 8 %.
    - One talks: 22 kb/s for the talker, 6 for the listener. The listener is quiet (below
      recordings.audio.coders.ACTIVE_DBFS) and its VBR spends little; below 6 kb/s SILK coded
      its background noise up to 9 dB louder than it was.

    Above narrowband the split stays even: below about 12 kb/s SILK narrows a wideband stream,
    and widening it again at the listener's next onset cost the talker 0.2-0.6 PESQ.
    """
    if rate > DUAL_MONO_MAX_RATE:
        half = bitrate // 2
        return half, half, half
    return bitrate * 11 // 12, bitrate // 4, bitrate * 13 // 24


class OpusFileEncoder:
    """Streams float PCM into an Ogg Opus file.

    Use as a context manager; ``write`` blocks of shape ``(frames, channels)``. On a clean exit
    the encoder is drained and the file is complete. If an exception leaves the ``with`` block
    (or ``write``/``close`` raises), the encoder is released without draining and the file at
    ``path`` is incomplete (no end-of-stream page): the caller owns the path and must delete it.
    An instance is not thread-safe; use one per thread.

    ``stereo_layout`` left as ``None`` takes :func:`stereo_layout_for` the coded band.
    """

    _coder: MultistreamCoder | SplitCoder | None = None
    _ogg: _OggWriter | None = None
    _file: BinaryIO | None = None

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int,
        channels: int,
        bitrate: int = DEFAULT_BITRATE,
        *,
        tags: Mapping[str, str] | None = None,
        serial: int | None = None,
        stereo_layout: StereoLayout | None = None,
        complexity: int = DEFAULT_COMPLEXITY,
    ) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if not _MIN_BITRATE <= bitrate <= _MAX_BITRATE_PER_CHANNEL * channels:
            raise ValueError(f"bitrate {bitrate} b/s is out of Opus' range for {channels} ch")
        if not 0 <= complexity <= 10:
            raise ValueError(f"complexity must be 0..10, got {complexity}")
        try:
            native.libopus()
            native.libogg()
        except native.NativeLibraryError as error:
            raise OpusEncodeError(str(error)) from error
        self.path = os.fspath(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self.bitrate = bitrate
        self.complexity = complexity
        self.bandwidth, self.bandwidth_name, self.encoder_rate = _band(
            sample_rate, channels, bitrate
        )
        self.layout = (
            (stereo_layout or stereo_layout_for(self.encoder_rate)) if channels == 2 else None
        )
        split = self.layout is StereoLayout.DUAL_MONO
        frame_ms = _MONO_FRAME_MS if channels == 1 or split else _STEREO_FRAME_MS
        self.frame_size = self.encoder_rate * frame_ms // 1000
        self.frames_written = 0
        self.serial = serial if serial is not None else int.from_bytes(os.urandom(4), "little")
        self._resampler = (
            soxr.ResampleStream(sample_rate, self.encoder_rate, channels, dtype="float32")
            if sample_rate != self.encoder_rate
            else None
        )
        # Samples waiting for a whole frame (or, for the split coder, for the frame after it),
        # at the encoder's rate.
        self._pending = np.zeros((0, channels), dtype=np.float32)
        self._encoded = 0  # samples coded, at the encoder's rate
        settings = Settings(
            rate=self.encoder_rate,
            bitrate=bitrate,
            bandwidth=self.bandwidth,
            complexity=complexity,
            voice=self.encoder_rate <= _ASSUME_VOICE_MAX_RATE or split,
            lsb_depth=_LSB_DEPTH,
        )
        try:
            self._coder = (
                SplitCoder(settings, *split_shares(bitrate, self.encoder_rate))
                if split
                else MultistreamCoder(settings, channels)
            )
        except CoderError as error:
            raise OpusEncodeError(str(error), error.code) from error
        try:
            self._ratio = OGG_OPUS_RATE // self.encoder_rate
            self.pre_skip = self._coder.lookahead * self._ratio
            self._open(tags or {})
        except BaseException:
            self.abort()
            raise

    def _open(self, tags: Mapping[str, str]) -> None:
        try:
            self._file = open(self.path, "wb")
        except OSError as error:
            raise OpusEncodeError(f"cannot open file {self.path!r}: {error}") from error
        self._ogg = _OggWriter(self._file, self.serial)
        self._ogg.header(opus_head(self.channels, self.pre_skip, self.sample_rate, self.layout))
        self._ogg.header(opus_tags(native.libopus_version(), {"ENCODER": ENCODER_TAG, **tags}))

    def write(self, block: npt.NDArray[Any]) -> None:
        """Encode one block of samples in [-1, 1], shape ``(frames, channels)``."""
        if self._coder is None:
            raise ValueError("write to a closed OpusFileEncoder")
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"block must have shape (frames, {self.channels}), got {block.shape}")
        if block.shape[0] == 0:
            return
        pcm = np.ascontiguousarray(block, dtype=np.float32)
        self.frames_written += pcm.shape[0]
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        try:
            self._encode(pcm, last=False)
        except BaseException:
            self.abort()
            raise

    def _encode(self, pcm: npt.NDArray[np.float32], *, last: bool) -> None:
        """Code every whole frame of what is pending plus ``pcm`` (but those the coder keeps
        back to look ahead); with ``last``, pad the rest with silence past the lookahead and end
        the stream."""
        coder, ogg = self._coder, self._ogg
        if coder is None or ogg is None:
            raise ValueError("write to a closed OpusFileEncoder")
        if self._pending.shape[0]:
            pcm = np.concatenate((self._pending, pcm))
        frame = self.frame_size
        if last:
            # The decoder drops the pre-skip (the lookahead) and stops at the last granule
            # position: code at least that far, rounded up to a whole frame.
            end = self.pre_skip + self._source_samples_at_48k()
            needed = max(pcm.shape[0], -(-end // self._ratio) - self._encoded)
            padded = -(-needed // frame) * frame
            pcm = np.concatenate((pcm, np.zeros((padded - pcm.shape[0], self.channels), "f4")))
        pcm = np.ascontiguousarray(pcm)
        whole = pcm.shape[0] // frame
        count = whole if last else max(0, whole - coder.holdback)
        for index, (address, size) in enumerate(coder.encode(pcm, frame, count)):
            self._encoded += frame
            end_of_stream = last and index == count - 1
            granule = (
                self.pre_skip + self._source_samples_at_48k()
                if end_of_stream
                else self._encoded * self._ratio
            )
            ogg.packet(address, size, granule, last=end_of_stream)
        self._pending = pcm[count * frame :].copy()

    def _source_samples_at_48k(self) -> int:
        """The source's length in 48 kHz samples (what the last granule position adds to the
        pre-skip), rounded to the nearest sample for rates that do not divide 48 kHz."""
        return round(self.frames_written * OGG_OPUS_RATE / self.sample_rate)

    def close(self) -> None:
        """Drain the encoder (final packets, end-of-stream page) and close the file."""
        if self._coder is None:
            return
        try:
            tail = (
                self._resampler.resample_chunk(
                    np.zeros((0, self.channels), dtype=np.float32), last=True
                )
                if self._resampler is not None
                else np.zeros((0, self.channels), dtype=np.float32)
            )
            self._encode(tail, last=True)
        except BaseException:
            self.abort()
            raise
        self._release()

    def abort(self) -> None:
        """Release the encoder without finishing the stream; the file is left incomplete."""
        self._release()

    def _release(self) -> None:
        if self._coder is not None:
            self._coder.release()
            self._coder = None
        if self._ogg is not None:
            self._ogg.close()
            self._ogg = None
        if self._file is not None:
            self._file.close()
            self._file = None

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
