"""The system's libopus and libogg, through ctypes: only the calls the encoder makes.

Why not pyogg: its bindings load libopusenc too and rewrite ``PATH`` on import, and the encoder
needs a dozen functions whose C signatures are stable since libopus 1.0 and libogg 1.1. Both
libraries are loaded on first use, so a machine without them can still import the package and
gets a clear :class:`NativeLibraryError` naming the Debian packages when it tries to encode.

``ctypes.CDLL`` releases the GIL for the duration of each C call, so encoders running in several
threads use several cores.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Final

# libopus ctl requests (opus_defines.h). The ctl is variadic: values go as c_int, results
# through a pointer to a 32-bit int.
OPUS_SET_BITRATE: Final = 4002
OPUS_SET_MAX_BANDWIDTH: Final = 4004
OPUS_SET_COMPLEXITY: Final = 4010
OPUS_SET_SIGNAL: Final = 4024
OPUS_GET_LOOKAHEAD: Final = 4027
OPUS_SET_LSB_DEPTH: Final = 4036
OPUS_APPLICATION_VOIP: Final = 2048
OPUS_SIGNAL_VOICE: Final = 3001

# sizeof(ogg_stream_state) is 408 bytes on 64-bit Linux (ogg.h: ten pointers and longs, a
# 282-byte header buffer, three ints, two longs and two 64-bit integers); libogg only needs the
# memory, so the state is an opaque, generously sized, aligned buffer.
_OGG_STREAM_STATE_BYTES: Final = 1024


class NativeLibraryError(RuntimeError):
    """libopus or libogg is missing or refused a call."""


class OggPacket(ctypes.Structure):
    """``ogg_packet`` (ogg.h)."""

    _fields_ = (
        ("packet", ctypes.c_void_p),
        ("bytes", ctypes.c_long),
        ("b_o_s", ctypes.c_long),
        ("e_o_s", ctypes.c_long),
        ("granulepos", ctypes.c_int64),
        ("packetno", ctypes.c_int64),
    )


class OggPage(ctypes.Structure):
    """``ogg_page`` (ogg.h): pointers into the stream state, valid until its next call."""

    _fields_ = (
        ("header", ctypes.c_void_p),
        ("header_len", ctypes.c_long),
        ("body", ctypes.c_void_p),
        ("body_len", ctypes.c_long),
    )


def new_ogg_stream_state() -> ctypes.Array[ctypes.c_int64]:
    """Memory for one ``ogg_stream_state`` (initialised by ``ogg_stream_init``)."""
    return (ctypes.c_int64 * (_OGG_STREAM_STATE_BYTES // 8))()


def _load(name: str, package: str) -> ctypes.CDLL:
    path = ctypes.util.find_library(name)
    if path is None:
        raise NativeLibraryError(
            f"lib{name} is not installed: install the system package {package} (Debian)"
        )
    return ctypes.CDLL(path)


@functools.cache
def libopus() -> ctypes.CDLL:
    """libopus, with the prototypes of the multistream encoder."""
    lib = _load("opus", "libopus0")
    lib.opus_get_version_string.restype = ctypes.c_char_p
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = (ctypes.c_int,)
    lib.opus_multistream_encoder_create.restype = ctypes.c_void_p
    lib.opus_multistream_encoder_create.argtypes = (
        ctypes.c_int32,  # Fs
        ctypes.c_int,  # channels
        ctypes.c_int,  # streams
        ctypes.c_int,  # coupled_streams
        ctypes.POINTER(ctypes.c_ubyte),  # mapping
        ctypes.c_int,  # application
        ctypes.POINTER(ctypes.c_int),  # error
    )
    lib.opus_multistream_encode_float.restype = ctypes.c_int32
    lib.opus_multistream_encode_float.argtypes = (
        ctypes.c_void_p,
        ctypes.c_void_p,  # const float *pcm, interleaved
        ctypes.c_int,  # frame_size, per channel
        ctypes.c_void_p,  # unsigned char *data
        ctypes.c_int32,  # max_data_bytes
    )
    lib.opus_multistream_encoder_destroy.restype = None
    lib.opus_multistream_encoder_destroy.argtypes = (ctypes.c_void_p,)
    lib.opus_multistream_encoder_ctl.restype = ctypes.c_int
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = (
        ctypes.c_int32,  # Fs
        ctypes.c_int,  # channels
        ctypes.c_int,  # application
        ctypes.POINTER(ctypes.c_int),  # error
    )
    lib.opus_encode_float.restype = ctypes.c_int32
    lib.opus_encode_float.argtypes = (
        ctypes.c_void_p,
        ctypes.c_void_p,  # const float *pcm
        ctypes.c_int,  # frame_size
        ctypes.c_void_p,  # unsigned char *data
        ctypes.c_int32,  # max_data_bytes
    )
    lib.opus_encoder_destroy.restype = None
    lib.opus_encoder_destroy.argtypes = (ctypes.c_void_p,)
    lib.opus_encoder_ctl.restype = ctypes.c_int
    lib.opus_packet_unpad.restype = ctypes.c_int32
    lib.opus_packet_unpad.argtypes = (ctypes.c_void_p, ctypes.c_int32)
    return lib


@functools.cache
def libogg() -> ctypes.CDLL:
    """libogg, with the prototypes of the stream (page) writer."""
    lib = _load("ogg", "libogg0")
    lib.ogg_stream_init.restype = ctypes.c_int
    lib.ogg_stream_init.argtypes = (ctypes.c_void_p, ctypes.c_int)
    lib.ogg_stream_packetin.restype = ctypes.c_int
    lib.ogg_stream_packetin.argtypes = (ctypes.c_void_p, ctypes.POINTER(OggPacket))
    for name in ("ogg_stream_pageout", "ogg_stream_flush"):
        function = getattr(lib, name)
        function.restype = ctypes.c_int
        function.argtypes = (ctypes.c_void_p, ctypes.POINTER(OggPage))
    lib.ogg_stream_clear.restype = ctypes.c_int
    lib.ogg_stream_clear.argtypes = (ctypes.c_void_p,)
    return lib


def opus_error(code: int) -> str:
    """libopus' own message for an error code."""
    message = libopus().opus_strerror(code)
    return message.decode(errors="replace") if message else f"error {code}"


def libopus_version() -> str:
    """The loaded libopus' version string, e.g. ``libopus 1.3.1``."""
    return libopus().opus_get_version_string().decode()
