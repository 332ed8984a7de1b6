"""What conversation platforms store and libsndfile cannot read, archived through FFmpeg (PyAV).

Every file here is written by an encoder the world uses, not by us: FFmpeg's own AAC, libopus,
libvorbis and G.722 encoders (Debian's `ffmpeg`), and for AMR-NB the OpenCORE encoder mobile
stacks use (carried by PyAV's wheel; Debian's ffmpeg has no AMR encoder). Each must archive with
its channels and its duration within 20 ms, and say which decoder read it and what it found.

Not covered, for want of an encoder on this machine: AMR-WB (no libvo-amrwbenc in Debian's
ffmpeg nor in PyAV's) and G.729 (FFmpeg decodes it but has no encoder); FFmpeg's decoders for
both are in the wheel (`test_the_wheel_carries_every_decoder_platforms_need`).
"""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from recordings.audio.convert import SourceAudioError, convert_to_opus, probe_source
from recordings_cli.synth import encode_with_ffmpeg

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None,
    reason="ffmpeg comes with `make bench-deps` (the test command installs it)",
)

DURATION_TOLERANCE = 0.020 + 1e-9  # 20 ms, float-safe


@dataclass(frozen=True)
class Made:
    name: str
    suffix: str
    rate: int
    channels: int
    args: tuple[str, ...]  # ffmpeg output options
    container: str  # part of FFmpeg's demuxer name
    codec: str


MADE_BY_FFMPEG = [
    Made("aac-m4a", ".m4a", 44_100, 2, ("-c:a", "aac", "-b:a", "64k"), "mp4", "aac"),
    Made("aac-mp4-mono", ".mp4", 16_000, 1, ("-c:a", "aac", "-b:a", "32k"), "mp4", "aac"),
    Made(
        "opus-webm",
        ".webm",
        48_000,
        1,
        ("-c:a", "libopus", "-b:a", "32k", "-f", "webm"),
        "webm",
        "opus",
    ),
    Made(
        "opus-webm-stereo",
        ".webm",
        48_000,
        2,
        ("-c:a", "libopus", "-b:a", "48k", "-f", "webm"),
        "webm",
        "opus",
    ),
    Made("vorbis-webm", ".webm", 44_100, 2, ("-c:a", "libvorbis", "-f", "webm"), "webm", "vorbis"),
    Made("vorbis-mka", ".mka", 22_050, 1, ("-c:a", "libvorbis"), "matroska", "vorbis"),
    Made("g722-wav", ".wav", 16_000, 1, ("-c:a", "g722"), "wav", "g722"),
    # A conference bridge's per-participant channels: mixed down to one mono stream.
    Made(
        "opus-webm-4ch",
        ".webm",
        48_000,
        4,
        # libopus codes four channels as quad (channel mapping family 1)
        ("-af", "channelmap=channel_layout=quad", "-c:a", "libopus", "-b:a", "96k", "-f", "webm"),
        "webm",
        "opus",
    ),
    Made("aac-m4a-6ch", ".m4a", 48_000, 6, ("-c:a", "aac", "-b:a", "192k"), "mp4", "aac"),
]


def speech_like_source(path: Path, rate: int, channels: int, seconds: float) -> np.ndarray:
    """A PCM WAV the encoders start from: voiced tones with a syllable rhythm, one voice per
    channel, each silent half the time."""
    frames = round(rate * seconds)
    t = np.arange(frames) / rate
    rhythm = 0.5 + 0.5 * np.sin(2 * np.pi * 3.5 * t)
    slot = (t // 1.0).astype(int) % max(2, channels)  # whose turn it is, one second each
    voices = [
        0.3 * rhythm * np.sin(2 * np.pi * (180.0 - 20.0 * index) * t) * (slot == index)
        for index in range(channels)
    ]
    signal = np.stack(voices, axis=1).astype(np.float32)
    sf.write(path, signal, rate, subtype="PCM_16")
    return signal


def made_with_ffmpeg(folder: Path, made: Made, seconds: float = 3.3) -> Path:
    source = folder / f"{made.name}-source.wav"
    speech_like_source(source, made.rate, made.channels, seconds)
    output = folder / f"{made.name}{made.suffix}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), *made.args, str(output)],
        check=True,
    )
    return output


def assert_archived(source: Path, made: Made, seconds: float, tmp_path: Path) -> None:
    probed = probe_source(source)
    assert probed.decoder == "ffmpeg"
    assert made.container in probed.format and probed.subtype == made.codec
    assert (probed.sample_rate, probed.channels) == (made.rate, made.channels)
    output = tmp_path / f"{made.name}.opus"
    result = convert_to_opus(source, output)
    assert result.source.decoder == "ffmpeg"
    assert abs(result.encoded_seconds - seconds) <= DURATION_TOLERANCE, result.encoded_seconds
    assert not result.truncated
    coded = 1 if made.channels > 2 else made.channels  # more than two are mixed down
    assert result.output_channels == coded
    decoded, rate = sf.read(output, dtype="float32", always_2d=True)
    assert decoded.shape[1] == coded
    assert abs(len(decoded) / rate - seconds) <= DURATION_TOLERANCE
    assert float(np.sqrt(np.mean(decoded**2))) > 0.02  # audio, not silence


@needs_ffmpeg
@pytest.mark.parametrize("made", MADE_BY_FFMPEG, ids=lambda made: made.name)
def test_formats_libsndfile_cannot_read_archive_through_ffmpeg(tmp_path: Path, made: Made) -> None:
    source = made_with_ffmpeg(tmp_path, made)
    assert_archived(source, made, 3.3, tmp_path)


@needs_ffmpeg
def test_raw_adts_aac_archives_what_it_decodes_to(tmp_path: Path) -> None:
    """Raw ADTS carries neither the stream's length nor the encoder's delay, so no decoder can
    trim them: FFmpeg's own command line decodes this 3.3 s source to 3.328 s, like ours. The
    archive keeps what the stream decodes to, at most one AAC frame (1024 samples) of priming
    and padding longer, and does not call it truncated although FFmpeg's length estimate
    (from the bitrate) says 2.35 s."""
    made = Made("aac-adts", ".aac", 48_000, 1, ("-c:a", "aac", "-b:a", "48k"), "aac", "aac")
    source = made_with_ffmpeg(tmp_path, made)
    cli = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(source), "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    result = convert_to_opus(source, tmp_path / "adts.opus")
    assert result.source.decoder == "ffmpeg" and not result.truncated
    assert round(result.encoded_seconds * made.rate) == len(cli) // 4
    assert 0 <= result.encoded_seconds - 3.3 <= 1024 / made.rate + DURATION_TOLERANCE


def write_amr_nb(path: Path, container: str, seconds: float) -> None:
    """AMR-NB at 12.2 kb/s by OpenCORE's encoder, in a raw `.amr` or a 3GP file."""
    signal = speech_like_source(path.with_suffix(".wav"), 8_000, 1, seconds)
    encode_with_ffmpeg(path, (container, "libopencore_amrnb", 12_200), 8_000, 1, [signal])


@pytest.mark.parametrize(("container", "suffix"), [("amr", ".amr"), ("3gp", ".3gp")])
def test_amr_nb_from_a_mobile_network_archives(tmp_path: Path, container: str, suffix: str) -> None:
    source = tmp_path / f"call{suffix}"
    write_amr_nb(source, container, 3.2)  # a whole number of 20 ms AMR frames
    made = Made(f"amr-nb-{container}", suffix, 8_000, 1, (), container, "amrnb")
    if container == "3gp":
        made = Made(made.name, suffix, 8_000, 1, (), "mp4", "amrnb")
    assert_archived(source, made, 3.2, tmp_path)


def test_the_wheel_carries_every_decoder_platforms_need() -> None:
    for decoder in ("aac", "opus", "vorbis", "amrnb", "amrwb", "g722", "g729"):
        assert av.codec.Codec(decoder, "r").type == "audio", decoder


def test_a_video_without_audio_is_unsupported_with_what_ffmpeg_found(tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg comes with `make bench-deps`")
    video = tmp_path / "screen.webm"
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-f", "lavfi"),
            *("-i", "color=c=black:s=64x64:d=1", "-c:v", "libvpx", str(video)),
        ],
        check=True,
    )
    with pytest.raises(SourceAudioError) as refused:
        convert_to_opus(video, tmp_path / "out.opus")
    assert refused.value.reason == "unsupported"
    assert "no audio stream" in refused.value.detail and "video" in refused.value.detail
    assert not (tmp_path / "out.opus").exists()


def test_a_cut_off_m4a_archives_what_it_holds_or_is_refused_clearly(tmp_path: Path) -> None:
    """An upload cut off in transfer: an MP4 whose index (moov) is at the end loses it, and
    FFmpeg cannot find the audio; the reason says what was recognised."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg comes with `make bench-deps`")
    made = MADE_BY_FFMPEG[0]
    whole = made_with_ffmpeg(tmp_path, made).read_bytes()
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(whole[: len(whole) // 2])
    output = tmp_path / "cut.opus"
    try:
        result = convert_to_opus(cut, output)
    except SourceAudioError as error:
        assert error.reason in {"corrupt", "unsupported"}
        assert "MP4/M4A" in error.detail and "FFmpeg" in error.detail
        assert not output.exists()
    else:
        assert 0 < result.encoded_seconds < 3.3 and result.truncated
