"""Self-delimited Opus framing (RFC 6716, appendix B), for the dual-mono layout's packets."""

import pytest

from recordings.audio.packets import PacketError, frame_length, self_delimited


def test_frame_lengths_use_one_or_two_bytes() -> None:
    assert frame_length(0) == b"\x00"
    assert frame_length(251) == bytes([251])
    # Two bytes from 252 on: the first in 252..255, the length is first + 4 x second.
    for size in (252, 253, 700, 1275):
        first, second = frame_length(size)
        assert 252 <= first <= 255 and first + 4 * second == size
    with pytest.raises(PacketError, match="1276 bytes"):
        frame_length(1276)


def test_code_0_gets_its_frame_length_after_the_toc() -> None:
    packet = bytes([0b01000_0_00]) + b"x" * 300
    assert self_delimited(packet) == packet[:1] + frame_length(300) + packet[1:]


def test_code_1_gets_the_length_of_one_of_its_two_equal_frames() -> None:
    packet = bytes([0b01000_0_01]) + b"ab" * 10
    assert self_delimited(packet) == packet[:1] + bytes([10]) + packet[1:]
    with pytest.raises(PacketError, match="two frames of one size"):
        self_delimited(bytes([1]) + b"abc")


def test_code_2_gets_the_second_frame_length_after_the_first() -> None:
    packet = bytes([0b01000_0_10, 3]) + b"aaa" + b"bbbbb"
    assert self_delimited(packet) == packet[:2] + bytes([5]) + packet[2:]
    long_first = bytes([2]) + frame_length(300) + b"a" * 300 + b"b" * 7
    assert self_delimited(long_first) == long_first[:3] + bytes([7]) + long_first[3:]


def test_code_3_gets_the_last_or_the_common_length() -> None:
    # VBR, three frames of 2, 4 and 6 bytes: lengths of the first two, then the last's.
    vbr = bytes([3, 0x80 | 3, 2, 4]) + b"aa" + b"bbbb" + b"cccccc"
    assert self_delimited(vbr) == vbr[:4] + bytes([6]) + vbr[4:]
    # CBR, three frames of 4 bytes: the common length after the count byte.
    cbr = bytes([3, 3]) + b"x" * 12
    assert self_delimited(cbr) == cbr[:2] + bytes([4]) + cbr[2:]


def test_packets_it_cannot_frame_are_refused_with_the_reason() -> None:
    with pytest.raises(PacketError, match="empty"):
        self_delimited(b"")
    with pytest.raises(PacketError, match="unpad it first"):
        self_delimited(bytes([3, 0x40 | 2, 0]) + b"xx")
    with pytest.raises(PacketError, match="uneven frames"):
        self_delimited(bytes([3, 3]) + b"x" * 10)
    with pytest.raises(PacketError, match="ends inside a frame length"):
        self_delimited(bytes([2]))
