"""Convert one source recording to Ogg Opus at 24 kb/s, streaming, with a verdict on bad input.

Decoding is libsndfile's (through soundfile): WAV PCM/u-law/A-law, FLAC, Ogg Vorbis/Opus, MP3
and the rest of what it reads, at any sample rate. Encoding is libopus' at the rate of the band
it codes, muxed into Ogg by :mod:`recordings.audio.opus`, rather than libsndfile's own Ogg Opus
writer, whose only knob is a per-channel ``compression_level`` (fixed application and
complexity, so "24 kb/s for the stream" is not expressible for stereo) and which was 2-3x slower
than ``ffmpeg -c:a libopus`` at 16 kHz and above.

Memory is bounded by one block (``block_seconds`` of audio) whatever the file's length. Input that
cannot be archived raises :class:`SourceAudioError` with a reason for ``metadata.json``.
"""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import soundfile as sf

from recordings.audio.ffmpeg import DECODER_NAME, FFmpegDecodeError, FFmpegSource
from recordings.audio.opus import DEFAULT_BITRATE, OpusFileEncoder, StereoLayout

SourceErrorReason = Literal["empty", "unsupported", "corrupt"]

MAX_CODED_CHANNELS: Final = 2
"""Channels coded as they are; a source with more (a conference bridge recording each
participant on a channel of its own) is mixed down to mono, as a bridge mixes its participants:
at 24 kb/s, one mono stream scored PESQ 4.23-4.41 on 4- and 6-party calls where one mono Opus
stream per participant, the bitrate moved to whoever talks, scored 3.32-3.85 without line noise
and 1.16-2.25 with it (docs/BENCHMARKS.md, "More than two channels")."""
_SNIFF_BYTES: Final = 64
_HASH_CHUNK: Final = 1 << 20
# A file this small whose header declares no frames is an empty recording; a bigger one holds
# data its header does not account for.
_HEADER_ONLY_BYTES: Final = 8192
_DATA_CHUNK_LOG: Final = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+) \(should be (\d+)\)", re.M)
_STREAMING_PLACEHOLDER: Final = 0x7FFF_F000

# First-packet signatures of Ogg codecs libsndfile does not read (it reads Vorbis, Opus, FLAC).
_OGG_UNREADABLE: Final = {
    b"Speex   ": "Ogg Speex",
    b"\x80theora": "Ogg Theora (video)",
    b"fishead\x00": "Ogg Skeleton",
}


class SourceAudioError(Exception):
    """A source recording that cannot be archived, and why.

    ``reason`` is one of ``"empty"``, ``"unsupported"`` (a container or codec libsndfile does
    not read, nor FFmpeg) and ``"corrupt"`` (looks like audio libsndfile knows
    but fails to open or decode); ``detail`` says what exactly was wrong, for people.
    """

    def __init__(self, reason: SourceErrorReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: SourceErrorReason = reason
        self.detail = detail


@dataclass(frozen=True)
class SourceAudio:
    """What libsndfile says about a source file, before decoding it."""

    format: str
    """libsndfile's major format, e.g. ``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"MP3"``."""
    subtype: str
    """libsndfile's subtype, e.g. ``"PCM_16"``, ``"ULAW"``, ``"VORBIS"``, ``"MPEG_LAYER_III"``."""
    sample_rate: int
    channels: int
    frames: int
    """Frames libsndfile expects to decode."""
    duration_seconds: float
    truncated: bool = False
    """The header declares more audio data than the file holds (a WAV or AIFF cut off in
    transfer). libsndfile then reads what is there and ``frames`` counts only that."""
    frames_exact: bool = True
    """``frames`` is exact (libsndfile; FFmpeg on the MP4 family) rather than the container's
    estimate (FFmpeg elsewhere): only an exact count can tell a cut file."""
    decoder: str = "libsndfile"
    """Which decoder reads it: ``libsndfile``, or ``ffmpeg`` (FFmpeg's libraries through PyAV,
    :mod:`recordings.audio.ffmpeg`) for what libsndfile cannot read. With ``ffmpeg``,
    ``format`` is FFmpeg's container (demuxer) name and ``subtype`` its codec name."""


@dataclass(frozen=True)
class ConversionResult:
    """The written ``.opus`` and what went into it."""

    source: SourceAudio
    output_bytes: int
    output_sha256: str
    output_crc32: int
    """zlib CRC-32 of the output file, as ZIP local headers need it before the data."""
    encoded_seconds: float
    """Audio actually decoded and encoded: decoded frames / source rate."""
    truncated: bool
    """The source holds less audio than its header declared: cut off (``source.truncated``) or
    decoding ended early. What was there is converted; the flag belongs in the metadata."""
    bitrate: int
    opus_bandwidth: str
    """Opus' bandwidth cap (``narrowband`` .. ``fullband``): the source rate's band, and at
    most wideband for stereo at 24 kb/s (see :func:`recordings.audio.opus.max_bandwidth`)."""
    opus_layout: str
    """How the channels were coded: ``mono``, a :class:`recordings.audio.opus.StereoLayout`
    value (``coupled``, ``dual-mono``), or ``downmix`` (more than two channels, summed into one
    mono stream)."""
    coded_sample_rate: int
    """The rate libopus ran at (8, 12, 16, 24 or 48 kHz: the band's); the source was resampled
    to it when it differs."""
    output_channels: int
    """Channels of the Opus stream: the source's, or 1 for a downmix."""


def probe_source(path: str | os.PathLike[str]) -> SourceAudio:
    """Describe a source file, or raise :class:`SourceAudioError` if it cannot be archived.

    A missing file raises ``FileNotFoundError``: that is the caller's failure, not the audio's.
    """
    soundfile, source = _open_source(path)
    soundfile.close()
    return source


def convert_to_opus(
    source_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    bitrate: int = DEFAULT_BITRATE,
    block_seconds: float = 1.0,
    serial: int | None = None,
    stereo_layout: StereoLayout | None = None,
) -> ConversionResult:
    """Decode ``source_path`` block by block and encode it to Ogg Opus at ``output_path``.

    Channels (stereo keeps agent and customer apart) and duration are kept. A file that ends
    before its header says decodes what is there and reports ``truncated=True``; a decode error
    raises :class:`SourceAudioError` (``"corrupt"``). On any exception the output file is
    deleted, so nothing half-written is ever mistaken for a conversion. ``serial`` fixes the
    Ogg stream serial number (random otherwise), making the output a pure function of the input.
    ``stereo_layout`` overrides the layout a two-channel source gets by its band (for
    benchmarks; archives leave it to the band).
    """
    if block_seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds}")
    output = Path(output_path)
    reader, source = _open_source(source_path)
    blocksize = max(1, round(source.sample_rate * block_seconds))
    downmix = source.channels > MAX_CODED_CHANNELS
    coded_channels = 1 if downmix else source.channels
    decoded = 0
    try:
        with (
            reader,
            OpusFileEncoder(
                output,
                source.sample_rate,
                coded_channels,
                bitrate,
                serial=serial,
                stereo_layout=stereo_layout,
            ) as encoder,
        ):
            bandwidth, coded_rate = encoder.bandwidth_name, encoder.encoder_rate
            layout = (
                "downmix"
                if downmix
                else encoder.layout.value
                if encoder.layout is not None
                else "mono"
            )
            mixed = np.empty((blocksize, 1), dtype=np.float32) if downmix else None
            while True:
                try:
                    block = reader.read(blocksize)
                except (sf.SoundFileRuntimeError, FFmpegDecodeError) as error:
                    start = decoded / source.sample_rate
                    raise SourceAudioError(
                        "corrupt",
                        f"decoding failed between {start:.3f} s and {start + block_seconds:.3f} s"
                        f" of {source.duration_seconds:.3f} s: {error}",
                    ) from error
                if len(block) == 0:
                    break
                if mixed is not None:  # the participants summed, as a bridge mixes them
                    out = mixed[: len(block)]
                    np.sum(block, axis=1, keepdims=True, out=out)
                    np.clip(out, -1.0, 1.0, out=out)
                    block = out
                encoder.write(block)
                decoded += len(block)
            if decoded == 0:
                raise SourceAudioError(
                    "corrupt",
                    f"the {source.format} header declares {source.frames} frames "
                    "but no audio could be decoded",
                )
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    size, sha256, crc32 = _digest(output)
    return ConversionResult(
        source=source,
        output_bytes=size,
        output_sha256=sha256,
        output_crc32=crc32,
        encoded_seconds=decoded / source.sample_rate,
        truncated=source.truncated or _cut_short(source, decoded),
        bitrate=bitrate,
        opus_bandwidth=bandwidth,
        opus_layout=layout,
        coded_sample_rate=coded_rate,
        output_channels=coded_channels,
    )


class _LibsndfileReader:
    """libsndfile's blocks, decoded into one reused buffer."""

    def __init__(self, soundfile: sf.SoundFile) -> None:
        self._soundfile = soundfile
        self._buffer: npt.NDArray[np.float32] | None = None

    def read(self, frames: int) -> npt.NDArray[np.float32]:
        if self._buffer is None or len(self._buffer) != frames:
            self._buffer = np.empty((frames, self._soundfile.channels), dtype=np.float32)
        block = self._soundfile.read(frames, dtype="float32", always_2d=True, out=self._buffer)
        return np.asarray(block, dtype=np.float32)

    def close(self) -> None:
        self._soundfile.close()

    def __enter__(self) -> _LibsndfileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_Reader = _LibsndfileReader | FFmpegSource


def _cut_short(source: SourceAudio, decoded: int) -> bool:
    """Whether decoding stopped before the announced length. libsndfile's count is exact; an
    MP4 track's (FFmpeg) allows 50 ms of codec delay and frame rounding; elsewhere FFmpeg only
    estimates the length, which cannot tell a cut file."""
    if not source.frames_exact:
        return False
    allowance = 0 if source.decoder == "libsndfile" else round(source.sample_rate * 0.05)
    return decoded < source.frames - allowance


def _open_source(path: str | os.PathLike[str]) -> tuple[_Reader, SourceAudio]:
    """Open a source for reading, or raise :class:`SourceAudioError` saying why not.

    libsndfile first; what it cannot read goes to FFmpeg. A file neither reads keeps the
    verdict libsndfile's failure gives (``unsupported`` for a container it knows it cannot
    read, ``corrupt`` otherwise), with what FFmpeg recognised, if anything."""
    with open(path, "rb") as file:
        head = file.read(_SNIFF_BYTES)
    if not head:
        raise SourceAudioError("empty", "the file is empty (0 bytes)")
    # Sniff first: libsndfile answers "Format not recognised" both for containers it does not
    # read and for garbage, and the two deserve different verdicts.
    container = _unreadable_container(head)
    if container is not None:
        return _open_with_ffmpeg(
            path,
            SourceAudioError(
                "unsupported", f"the file is {container}, a format libsndfile cannot read"
            ),
        )
    try:
        soundfile = sf.SoundFile(path)
    except sf.LibsndfileError as error:
        message = error.error_string.strip()
        if "unimplemented format" in message:
            refusal = SourceAudioError(
                "unsupported", f"libsndfile does not implement its encoding: {message}"
            )
        else:
            refusal = SourceAudioError(
                "corrupt",
                f"libsndfile cannot open it: {message} (file starts with {head[:8].hex(' ')})",
            )
        return _open_with_ffmpeg(path, refusal)
    source = SourceAudio(
        format=soundfile.format,
        subtype=soundfile.subtype,
        sample_rate=soundfile.samplerate,
        channels=soundfile.channels,
        frames=soundfile.frames,
        duration_seconds=soundfile.frames / soundfile.samplerate,
        truncated=_header_overstates_data(soundfile.extra_info),
    )
    problem: SourceAudioError | None = None
    if source.frames == 0:
        size = os.path.getsize(path)
        problem = (
            SourceAudioError(
                "empty", f"the {source.format} {source.subtype} header declares no audio frames"
            )
            if size <= _HEADER_ONLY_BYTES
            else SourceAudioError(
                "corrupt",
                f"the {source.format} {source.subtype} header declares no audio frames, yet the"
                f" file holds {size} bytes (a header never finalised by its writer?)",
            )
        )
    if problem is not None:
        soundfile.close()
        raise problem
    return _LibsndfileReader(soundfile), source


def _open_with_ffmpeg(
    path: str | os.PathLike[str], refusal: SourceAudioError
) -> tuple[_Reader, SourceAudio]:
    """FFmpeg's reader for a file libsndfile refused, or ``refusal`` with what FFmpeg made of
    it."""
    try:
        reader = FFmpegSource(path)
    except FFmpegDecodeError as error:
        # A container FFmpeg opens whose audio it cannot decode is damaged, not unknown.
        reason = "corrupt" if error.opened else refusal.reason
        raise SourceAudioError(reason, f"{refusal.detail}; {error}") from error
    info = reader.info
    source = SourceAudio(
        format=info.container,
        subtype=info.codec,
        sample_rate=info.sample_rate,
        channels=info.channels,
        frames=info.frames,
        duration_seconds=info.frames / info.sample_rate,
        frames_exact=info.frames_exact,
        decoder=DECODER_NAME,
    )
    return reader, source


def _header_overstates_data(log: str) -> bool:
    """Whether libsndfile's open log says the data chunk is shorter than the header declares.

    libsndfile logs ``data : 640000 (should be 319978)`` (WAV) or ``SSND : ... (should be ...)``
    (AIFF) and reads only what is there, without an error. Sizes at or above
    ``_STREAMING_PLACEHOLDER`` are the "length unknown" marks of streaming writers, not cuts.
    """
    for declared, present in _DATA_CHUNK_LOG.findall(log):
        if int(present) < int(declared) < _STREAMING_PLACEHOLDER:
            return True
    return False


def _unreadable_container(head: bytes) -> str | None:
    """Name the container if the magic bytes are one libsndfile does not read."""
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace").strip()
        return f"an MP4/M4A (ISO base media, brand {brand!r}) file"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "a WebM/Matroska (EBML) file"
    if head.startswith(b"#!AMR"):
        return "an AMR speech file"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "an ASF (WMA/WMV) file"
    # ADTS: 12-bit sync 0xFFF then the layer bits 00 (MP3 frames share the sync, not the layer).
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "an AAC (ADTS) stream"
    if head.startswith(b"OggS") and len(head) > 27:
        packet = head[27 + head[26] :]
        for signature, name in _OGG_UNREADABLE.items():
            if packet.startswith(signature):
                return f"an {name} stream"
    return None


def _digest(path: Path) -> tuple[int, str, int]:
    """Size, SHA-256 (hex) and CRC-32 of a file, in one pass."""
    sha256 = hashlib.sha256()
    crc32 = 0
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            sha256.update(chunk)
            crc32 = zlib.crc32(chunk, crc32)
            size += len(chunk)
    return size, sha256.hexdigest(), crc32
