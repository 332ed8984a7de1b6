"""Opus packet framing (RFC 6716): what it takes to put two mono streams in one Ogg Opus file.

A multistream packet (RFC 7845, channel mapping family 1) is the streams' packets one after the
other, every one but the last in the self-delimited framing of RFC 6716, appendix B: the same
packet with the length of its last frame written out, since nothing else says where it ends.
libopus frames them so inside its multistream encoder, but that encoder splits the bitrate
between the streams by a fixed rule; the dual-mono layout (recordings.audio.opus) encodes each
stream with an encoder of its own, to move the budget to whoever talks, so it frames the packets
itself. Input packets must carry no padding (``opus_packet_unpad`` removes it).
"""

from __future__ import annotations

from typing import Final

_MAX_FRAME_BYTES: Final = 1275


class PacketError(ValueError):
    """An Opus packet this module cannot frame (malformed, or padded)."""


def frame_length(size: int) -> bytes:
    """A frame length in the packet's one- or two-byte code (RFC 6716, section 3.2.1)."""
    if not 0 <= size <= _MAX_FRAME_BYTES:
        raise PacketError(f"a frame of {size} bytes is out of Opus' range")
    if size < 252:
        return bytes((size,))
    first = 252 + (size & 3)
    return bytes((first, (size - first) >> 2))


def _read_length(packet: bytes, position: int) -> tuple[int, int]:
    """The frame length coded at ``position``, and the position after it."""
    if position >= len(packet):
        raise PacketError("the packet ends inside a frame length")
    first = packet[position]
    if first < 252:
        return first, position + 1
    if position + 1 >= len(packet):
        raise PacketError("the packet ends inside a two-byte frame length")
    return first + 4 * packet[position + 1], position + 2


def self_delimited(packet: bytes) -> bytes:
    """``packet`` in the self-delimited framing: the last frame's length (or, where all frames
    share one, that length) inserted after the lengths the packet already codes."""
    if not packet:
        raise PacketError("an empty packet")
    code = packet[0] & 3
    if code == 0:
        return packet[:1] + frame_length(len(packet) - 1) + packet[1:]
    if code == 1:
        if (len(packet) - 1) % 2:
            raise PacketError("a code 1 packet must hold two frames of one size")
        return packet[:1] + frame_length((len(packet) - 1) // 2) + packet[1:]
    if code == 2:
        first, position = _read_length(packet, 1)
        last = len(packet) - position - first
        if last < 0:
            raise PacketError("a code 2 packet shorter than its first frame")
        return packet[:position] + frame_length(last) + packet[position:]
    # Code 3: a frame count byte (VBR flag, padding flag, count), then for VBR the lengths of
    # all frames but the last.
    if len(packet) < 2:
        raise PacketError("a code 3 packet without its frame count")
    variable, padded, count = packet[1] & 0x80, packet[1] & 0x40, packet[1] & 0x3F
    if padded:
        raise PacketError("a padded packet: unpad it first (opus_packet_unpad)")
    if count == 0:
        raise PacketError("a code 3 packet of no frame")
    position = 2
    if variable:
        sizes = 0
        for _ in range(count - 1):
            size, position = _read_length(packet, position)
            sizes += size
        length = len(packet) - position - sizes
    else:
        if (len(packet) - 2) % count:
            raise PacketError("a constant-bitrate code 3 packet with uneven frames")
        length = (len(packet) - 2) // count
    if length < 0:
        raise PacketError("a code 3 packet shorter than its frames")
    return packet[:position] + frame_length(length) + packet[position:]
