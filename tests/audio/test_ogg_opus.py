"""The Ogg Opus files the encoder writes, read back by what the world plays them with.

The encoder muxes libopus packets into Ogg itself (recordings.audio.opus), so these tests check
the container against RFC 7845 page by page (headers on pages of their own, CRCs, granule
positions, the end-of-stream trim) and decode every file with libsndfile (soundfile), FFmpeg and
libopusfile (opus-tools' `opusdec`, with `opusinfo`'s verdict): each must give back exactly the
source's samples, at every rate we meet (Opus' own and the ones resampled on the way) and for
both stereo layouts.
"""

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recordings.audio.opus import OGG_OPUS_RATE, OpusFileEncoder, StereoLayout, opus_head

needs_tools = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("ffmpeg", "opusdec", "opusinfo")),
    reason="ffmpeg and opus-tools come with `make bench-deps` (the test command installs them)",
)

RATES = (8_000, 11_025, 16_000, 22_050, 44_100, 48_000)


def _crc_table() -> list[int]:
    table = []
    for index in range(256):
        value = index << 24
        for _ in range(8):
            value = ((value << 1) ^ 0x04C11DB7) if value & 0x8000_0000 else value << 1
        table.append(value & 0xFFFF_FFFF)
    return table


_CRC = _crc_table()


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04c11db7, no reflection, zero start and end)."""
    value = 0
    for byte in data:
        value = ((value << 8) & 0xFFFF_FFFF) ^ _CRC[(value >> 24) ^ byte]
    return value


@dataclass(frozen=True)
class Page:
    flags: int
    granule: int
    serial: int
    sequence: int
    packets: list[bytes]  # packets that end on this page (a continued one whole)


def read_pages(path: Path) -> list[Page]:
    """Every page of a single-stream Ogg file, each CRC checked."""
    data = path.read_bytes()
    pages, position, carry = [], 0, b""
    while position < len(data):
        assert data[position : position + 4] == b"OggS", f"no capture pattern at {position}"
        _, flags, granule, serial, sequence, crc, count = struct.unpack_from(
            "<BBqIIIB", data, position + 4
        )
        lacing = data[position + 27 : position + 27 + count]
        start = position + 27 + count
        end = start + sum(lacing)
        header = bytearray(data[position:start])
        header[22:26] = b"\0\0\0\0"
        assert ogg_crc(bytes(header) + data[start:end]) == crc, f"bad CRC on page {sequence}"
        packets, offset = [], start
        for size in lacing:
            carry += data[offset : offset + size]
            offset += size
            if size < 255:
                packets.append(carry)
                carry = b""
        pages.append(Page(flags, granule, serial, sequence, packets))
        position = end
    return pages


def write_source(path: Path, rate: int, channels: int, seconds: float = 2.5) -> np.ndarray:
    """Two different voices' worth of tones: channel 0 at 300 Hz, channel 1 at 700 Hz, with a
    pause in each, at an odd length (not a whole number of frames)."""
    frames = int(rate * seconds) + 37
    t = np.arange(frames) / rate
    left = 0.4 * np.sin(2 * np.pi * 300 * t) * (t % 1.0 < 0.6)
    right = 0.4 * np.sin(2 * np.pi * 700 * t) * (t % 1.0 >= 0.4)
    signal = np.stack([left, right], axis=1)[:, :channels].astype(np.float32)
    sf.write(path, signal, rate, subtype="PCM_16")
    return signal


def encode(source: Path, output: Path, layout: StereoLayout = StereoLayout.COUPLED) -> None:
    data, rate = sf.read(source, dtype="float32", always_2d=True)
    with OpusFileEncoder(output, rate, data.shape[1], serial=7, stereo_layout=layout) as encoder:
        for start in range(0, len(data), 4_000):  # blocks that are not whole frames
            encoder.write(data[start : start + 4_000])


def expected_48k(frames: int, rate: int) -> int:
    return round(frames * OGG_OPUS_RATE / rate)


CASES = [(rate, 1, StereoLayout.COUPLED) for rate in RATES]
CASES += [(rate, 2, layout) for rate in RATES for layout in StereoLayout]
every_case = pytest.mark.parametrize(
    ("rate", "channels", "layout"), CASES, ids=lambda value: getattr(value, "value", value)
)


def encoded(
    folder: Path, rate: int, channels: int, layout: StereoLayout
) -> tuple[np.ndarray, Path]:
    """The test source at `rate` and its Ogg Opus file."""
    source = folder / "source.wav"
    signal = write_source(source, rate, channels)
    output = folder / "out.opus"
    encode(source, output, layout)
    return signal, output


@every_case
def test_pages_follow_rfc_7845(
    tmp_path: Path, rate: int, channels: int, layout: StereoLayout
) -> None:
    signal, output = encoded(tmp_path, rate, channels, layout)
    pages = read_pages(output)
    head, tags = pages[0].packets, pages[1].packets
    assert pages[0].flags == 0x02 and len(head) == 1 and head[0].startswith(b"OpusHead")
    assert len(tags) == 1 and tags[0].startswith(b"OpusTags")
    assert b"ENCODER=daily-conversation-audio-recordings" in tags[0]
    version, count, pre_skip, input_rate, gain, family = struct.unpack_from("<BBHIhB", head[0], 8)
    assert (version, count, input_rate, gain) == (1, channels, rate, 0)
    dual = channels == 2 and layout is StereoLayout.DUAL_MONO
    assert family == (1 if dual else 0)
    if dual:  # two streams, none coupled, channel i from stream i
        assert head[0][19:] == bytes([2, 0, 0, 1])
    assert [page.sequence for page in pages] == list(range(len(pages)))
    assert {page.serial for page in pages} == {7}
    audio = pages[2:]
    assert all(page.flags & 0x04 == 0 for page in pages[:-1]) and pages[-1].flags & 0x04
    granules = [page.granule for page in audio]
    assert granules == sorted(granules)
    # The end trim: the last page stops exactly at the source's length after the pre-skip.
    assert granules[-1] == pre_skip + expected_48k(len(signal), rate)


@needs_tools
@every_case
def test_every_decoder_gives_back_the_source_length(
    tmp_path: Path, rate: int, channels: int, layout: StereoLayout
) -> None:
    signal, output = encoded(tmp_path, rate, channels, layout)
    at_48k = expected_48k(len(signal), rate)

    decoded, decoded_rate = sf.read(output, dtype="float32", always_2d=True)
    assert decoded.shape[1] == channels
    # libsndfile decodes at the nearest Opus rate and converts the 48 kHz end to it: exact at
    # Opus' own rates, within a sample at the others.
    exact = len(signal) * decoded_rate / rate
    assert abs(len(decoded) - exact) < (0.01 if decoded_rate == rate else 1.5)

    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(output), "-f", "f32le", "-ar", "48000", "-"],
        capture_output=True,
        check=True,
    ).stdout
    assert len(raw) == at_48k * channels * 4

    wav = tmp_path / "opusdec.wav"
    subprocess.run(
        ["opusdec", "--quiet", "--rate", "48000", str(output), str(wav)],
        capture_output=True,
        check=True,
    )
    assert sf.info(wav).frames == at_48k and sf.info(wav).channels == channels
    info = subprocess.run(["opusinfo", str(output)], capture_output=True, text=True, check=True)
    assert "WARNING" not in info.stdout + info.stderr, info.stdout + info.stderr


@pytest.mark.parametrize("layout", list(StereoLayout), ids=lambda layout: layout.value)
def test_each_party_stays_on_its_own_channel(tmp_path: Path, layout: StereoLayout) -> None:
    source = tmp_path / "source.wav"
    signal = write_source(source, 16_000, 2)
    output = tmp_path / "out.opus"
    encode(source, output, layout)
    decoded, rate = sf.read(output, dtype="float32", always_2d=True)
    assert rate == 16_000
    for channel in (0, 1):
        own = np.corrcoef(decoded[:, channel], signal[:, channel])[0, 1]
        other = np.corrcoef(decoded[:, channel], signal[:, 1 - channel])[0, 1]
        assert own > 0.9 and abs(other) < 0.05, (layout, channel, own, other)


@pytest.mark.parametrize(
    ("rate", "layout"),
    [
        (8_000, StereoLayout.DUAL_MONO),
        (11_025, StereoLayout.COUPLED),
        (16_000, StereoLayout.COUPLED),
        (44_100, StereoLayout.COUPLED),
    ],
)
def test_two_party_calls_take_dual_mono_at_narrowband_only(
    tmp_path: Path, rate: int, layout: StereoLayout
) -> None:
    """The layout decided in docs/BENCHMARKS.md: dual-mono where libopus codes narrowband,
    coupled above; the file's OpusHead says which."""
    output = tmp_path / "out.opus"
    with OpusFileEncoder(output, rate, 2, serial=1) as encoder:
        encoder.write(np.zeros((rate, 2), dtype=np.float32))
    assert encoder.layout is layout
    family = read_pages(output)[0].packets[0][18]
    assert family == (1 if layout is StereoLayout.DUAL_MONO else 0)


def test_opus_head_layouts() -> None:
    assert opus_head(1, 312, 8_000) == b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 8000, 0, 0)
    dual = opus_head(2, 312, 8_000, StereoLayout.DUAL_MONO)
    assert dual[18] == 1 and dual[19:] == bytes([2, 0, 0, 1])
    assert opus_head(2, 312, 8_000, StereoLayout.COUPLED)[18:] == b"\x00"


def stream_sizes(packet: bytes) -> tuple[int, int]:
    """Bytes of each stream in a two-stream packet whose first stream is self-delimited and
    a single frame (code 0), as 60 ms SILK packets are."""
    assert packet[0] & 3 == 0
    first = packet[1]
    offset = 2
    if first >= 252:
        first, offset = first + 4 * packet[2], 3
    return first, len(packet) - offset - first


def test_the_dual_mono_budget_follows_whoever_talks(tmp_path: Path) -> None:
    """8 kHz, agent talking for 2 s while the customer is silent, then the other way round:
    the talker's stream gets most of the budget (talker 22 kb/s, listener 6), and the file
    stays within it."""
    rate = 8_000
    t = np.arange(2 * rate) / rate
    voice = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype("f4")
    silence = np.zeros_like(voice)
    signal = np.concatenate(
        [np.stack([voice, silence], axis=1), np.stack([silence, voice], axis=1)]
    )
    source = tmp_path / "turns.wav"
    sf.write(source, signal, rate, subtype="PCM_16")
    output = tmp_path / "out.opus"
    encode(source, output, StereoLayout.DUAL_MONO)
    packets = [p for page in read_pages(output)[2:] for p in page.packets]
    sizes = [stream_sizes(packet) for packet in packets]
    # 60 ms packets, 33 a turn; steady stretches of each (away from the switch and the ends).
    agent_turn, customer_turn = sizes[2:31], sizes[37:64]
    assert all(agent > 3 * customer for agent, customer in agent_turn), agent_turn
    assert all(customer > 3 * agent for agent, customer in customer_turn), customer_turn
    seconds = len(signal) / rate
    assert output.stat().st_size * 8 / seconds < 24_000 * 1.1
