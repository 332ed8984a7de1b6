"""Our encoder against ffmpeg's libopus on real speech: speed, bitrate, PESQ, channel separation.

Why: ``bench/encoder.py`` measured ``convert_to_opus`` on our own synthetic calls, and an encoder
tuned there missed its targets on real speech (issue 12). This bench judges it on speech no
generator of ours wrote: two-party calls spoken by ``espeak-ng`` and ``flite`` with several
voices (:mod:`bench/speech.py <speech>`), for every input class a contact centre stores, against
``ffmpeg -c:a libopus -b:a 24k -application voip``. It imports ``convert_to_opus`` and measures
whatever it does, so it judges each new encoder as it is merged.

Inputs: six classes (8 kHz mono PCM, 8 kHz stereo u-law with the agent left and the customer
right, 16 kHz mono and stereo, 44.1 kHz stereo, 48 kHz mono; all WAV), each with two kinds of
speech, each its own row: ``turns`` (speech.write_call: turns, pauses, double-talk every fourth
turn) and ``double-talk`` (speech.write_double_talk: both parties talking at once throughout).
``--synthetic`` adds rows on recordings_cli.synth's calls; they are shown, not judged.

What is measured, per row:

- Speed, as throughput ours / ffmpeg = ffmpeg's CPU seconds / ours (above 1 we are faster),
  medians of runs that alternate the two encoders: (a) whole processes, a child Python running
  ``convert_to_opus`` against the ffmpeg child, both from ``RUSAGE_CHILDREN`` (process start and
  imports included); (b) in process, this process's CPU time around ``convert_to_opus`` against
  the ffmpeg child's.
- Bitrate: output bytes x 8 / source duration (Ogg framing included), and the bitrate "on
  speech": the Opus packets whose span is mostly speech in the source (20 ms frames within 40 dB
  of the loudest), their bytes with the file's Ogg framing shared pro rata, over their duration.
- Channels and duration kept: the output decoded with ``soundfile`` has the source's channels
  and its duration within 20 ms.
- PESQ (ITU-T P.862, the ``pesq`` package): narrowband at 8 kHz for 8 kHz sources, wideband at
  16 kHz for the others, reference and decoded output resampled with SoX's VHQ resampler. PESQ is
  made for 8-20 s stretches, so each signal is scored in 10 s segments (the last one takes the
  remainder) and a figure is the mean over the segments both encoders' outputs could be scored
  on (PESQ rejects a segment without speech). Mixed: the channel mean of reference and decoded;
  per channel (stereo): each decoded channel against its own source channel.
- Alignment: the decoded output should be sample aligned with the source once the pre-skip is
  dropped; the lag of the best cross-correlation of the mixes (within 100 ms, over the first
  minute) is reported and, when not zero, the decoded signal is shifted by it before scoring.
- Separation (stereo): how much of the other party each decoded channel carries. In each
  100 ms block the decoded channel d is fitted by least squares as a*own + b*other (the two
  source channels at the PESQ rate); the leak is 10 log10(sum |b*other|^2 / sum |a*own|^2) dB
  over the blocks: the energy d carries of the other party relative to what it carries of its
  own (0 dB: both equally present; -99 dB, the floor: none of the other). Blocks, because the
  codecs' stereo parameters change from frame to frame and one fit over the whole call averages
  them away (an 8 kHz double-talk call measured -43 dB in one fit, -23 dB in blocks). Codec noise
  fitted by chance puts the figure's floor near -40 dB. For scale, PESQ of a clean channel with
  the other party added at -20 dB is about 2.2 (NB) and 1.5 (WB), at -30 dB 3.2 and 2.6. The
  Pearson correlations of d with both source channels, over the whole call, are given too.

Targets (issue 12), per row on real speech: speed at least 1.0 in (a) and (b); PESQ no lower than
ffmpeg's minus 0.05, mixed and per channel; 24 kb/s +-10% on speech (silence may go lower, so
the whole file only has the upper bound); channels and duration kept. Run::

    PYTHONPATH=$PWD .venv/bin/python bench/encoder_speech.py [--seconds 300]
        [--classes 8k-mono,8k-stereo,16k-mono,16k-stereo,44k-stereo,48k-mono]
        [--kinds turns,double-talk] [--synthetic] [--process-runs 5] [--inprocess-runs 3]
        [--noise-dbfs -50] [--stereo-layout coupled|dual-mono] [--platform-formats]

``--platform-formats`` adds a table of inputs libsndfile cannot read (M4A/AAC, WebM/Opus,
AMR-NB, each a turns call of the same speech coded by the encoder platforms use), which ours
decodes through FFmpeg's libraries in process: speed and whether channels and duration are kept
(within 45 ms: AMR frames are 20 ms and its encoder's flush adds one).

It needs ffmpeg, sox, espeak-ng and flite (``make bench-deps``) and the ``dev`` extra's pesq.
Progress goes to stderr; stdout gets the Markdown (paste it into docs/BENCHMARKS.md) and, as its
last line, one JSON object with every figure. The full size (12 rows of 300 s) takes about a
quarter of an hour on two cores; CPU figures from a shared machine are noisy, so the load
average is printed with them.
"""

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import soundfile as sf
from pesq import BufferTooShortError, NoUtterancesError, pesq
from speech import SpeechCache, missing_engines, write_call, write_double_talk  # bench/speech.py

from recordings.audio.convert import convert_to_opus
from recordings.audio.opus import StereoLayout, libopus_version
from recordings_cli.synth import FORMATS, encode_with_ffmpeg, write_conversation

Audio = npt.NDArray[np.float64]
"""Samples as (frames, channels), or (frames,) for one signal."""

REPO: Final = Path(__file__).resolve().parents[1]
KINDS: Final = ("turns", "double-talk", "synthetic")
SPEECH_KINDS: Final = ("turns", "double-talk")
TARGET_SPEED: Final = 1.0
PESQ_TOLERANCE: Final = 0.05
TARGET_KBPS: Final = 24.0
KBPS_TOLERANCE: Final = 0.10
DURATION_TOLERANCE: Final = 0.020
SEGMENT_SECONDS: Final = 10.0
MAX_LAG_SECONDS: Final = 0.1
LAG_WINDOW_SECONDS: Final = 60.0
LEAK_FLOOR_DB: Final = -99.0
SEPARATION_BLOCK_SECONDS: Final = 0.1
SPEECH_FLOOR_DB: Final = -40.0
OGG_TICKS: Final = 48_000  # Ogg Opus granule positions count 48 kHz samples whatever the rate
SPEECH_FRAME: Final = OGG_TICKS // 50  # 20 ms
CHILD: Final = (
    "import sys\n"
    "from recordings.audio.convert import convert_to_opus\n"
    "from recordings.audio.opus import StereoLayout\n"
    "layout = StereoLayout(sys.argv[3]) if len(sys.argv) > 3 else None\n"
    "convert_to_opus(sys.argv[1], sys.argv[2], stereo_layout=layout)\n"
)


@dataclass(frozen=True)
class InputClass:
    """A kind of source recording: its rate, channels and WAV subtype."""

    key: str
    label: str
    rate: int
    channels: int
    subtype: str


CLASSES: Final = (
    InputClass("8k-mono", "8 kHz mono (telephony)", 8_000, 1, "PCM_16"),
    InputClass("8k-stereo", "8 kHz stereo u-law (agent / customer)", 8_000, 2, "ULAW"),
    InputClass("16k-mono", "16 kHz mono", 16_000, 1, "PCM_16"),
    InputClass("16k-stereo", "16 kHz stereo", 16_000, 2, "PCM_16"),
    InputClass("44k-stereo", "44.1 kHz stereo", 44_100, 2, "PCM_16"),
    InputClass("48k-mono", "48 kHz mono", 48_000, 1, "PCM_16"),
)


# --- speed -------------------------------------------------------------------------------------


@dataclass
class Speed:
    """CPU seconds of each run; throughput ours / ffmpeg = ffmpeg's median / ours."""

    ours_process: list[float]
    ffmpeg_process: list[float]
    ours_inprocess: list[float]
    ffmpeg_inprocess: list[float]

    @property
    def process_ratio(self) -> float:
        return statistics.median(self.ffmpeg_process) / statistics.median(self.ours_process)

    @property
    def inprocess_ratio(self) -> float:
        return statistics.median(self.ffmpeg_inprocess) / statistics.median(self.ours_inprocess)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_cpu_seconds(command: Sequence[str], env: dict[str, str] | None = None) -> float:
    """CPU seconds of a child process run to completion."""
    before = children_cpu_seconds()
    subprocess.run(command, check=True, env=env)
    return children_cpu_seconds() - before


def ffmpeg_command(source: Path, output: Path) -> list[str]:
    """ffmpeg's libopus as issue 12 runs it; `-loglevel error -y` change nothing encoded."""
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-i", str(source),
        "-c:a", "libopus", "-b:a", "24k", "-application", "voip",
        str(output),
    ]  # fmt: skip


def child_environment() -> dict[str, str]:
    """The environment of the child Python: this checkout first, so it runs this encoder."""
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def ours_in_child(source: Path, output: Path, layout: StereoLayout | None) -> float:
    command = [sys.executable, "-c", CHILD, str(source), str(output)]
    return child_cpu_seconds(command + ([layout.value] if layout else []), child_environment())


def ours_in_process(source: Path, output: Path, layout: StereoLayout | None) -> float:
    start = time.process_time()
    convert_to_opus(source, output, stereo_layout=layout)
    return time.process_time() - start


def alternate(
    runs: int, ours: Callable[[], float], ffmpeg: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """CPU seconds of `runs` runs of each, ours first on even runs and ffmpeg first on odd
    ones, so that load from elsewhere hits both alike."""
    ours_cpu: list[float] = []
    ffmpeg_cpu: list[float] = []
    for run in range(runs):
        if run % 2:
            ffmpeg_cpu.append(ffmpeg())
            ours_cpu.append(ours())
        else:
            ours_cpu.append(ours())
            ffmpeg_cpu.append(ffmpeg())
    return ours_cpu, ffmpeg_cpu


def measure_speed(
    source: Path,
    ours_out: Path,
    ffmpeg_out: Path,
    process_runs: int,
    inprocess_runs: int,
    layout: StereoLayout | None = None,
) -> Speed:
    """(a) then (b); the outputs of the last runs stay for the quality figures."""

    def ffmpeg() -> float:
        return child_cpu_seconds(ffmpeg_command(source, ffmpeg_out))

    ours_process, ffmpeg_process = alternate(
        process_runs, lambda: ours_in_child(source, ours_out, layout), ffmpeg
    )
    ours_inprocess, ffmpeg_inprocess = alternate(
        inprocess_runs, lambda: ours_in_process(source, ours_out, layout), ffmpeg
    )
    return Speed(ours_process, ffmpeg_process, ours_inprocess, ffmpeg_inprocess)


def start_cpu_seconds(runs: int) -> tuple[float, float]:
    """Median CPU seconds of starting each side and doing nothing: Python importing
    ``convert_to_opus``, and ``ffmpeg -version``. Part of every figure in (a)."""
    python = [sys.executable, "-c", "import recordings.audio.convert"]
    ffmpeg = ["ffmpeg", "-hide_banner", "-version"]
    ours = [child_cpu_seconds(python, child_environment()) for _ in range(runs)]
    theirs: list[float] = []
    for _ in range(runs):
        before = children_cpu_seconds()
        subprocess.run(ffmpeg, check=True, capture_output=True)
        theirs.append(children_cpu_seconds() - before)
    return statistics.median(ours), statistics.median(theirs)


# --- bitrate -----------------------------------------------------------------------------------


def ogg_packets(data: bytes) -> list[bytes]:
    """The packets of a single-stream Ogg file, in order (RFC 3533 pages and lacing)."""
    packets: list[bytes] = []
    pending = bytearray()
    offset = 0
    while offset < len(data):
        if data[offset : offset + 4] != b"OggS":
            raise ValueError(f"no Ogg page at byte {offset}")
        count = data[offset + 26]
        lacing = data[offset + 27 : offset + 27 + count]
        position = offset + 27 + count
        for size in lacing:
            pending += data[position : position + size]
            position += size
            if size < 255:
                packets.append(bytes(pending))
                pending.clear()
        offset = position
    return packets


def opus_packet_samples(packet: bytes) -> int:
    """Samples at 48 kHz an Opus packet decodes to, from its TOC byte (RFC 6716, 3.1)."""
    config, code = packet[0] >> 3, packet[0] & 3
    if config < 12:  # SILK-only
        frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:  # hybrid
        frame = (480, 960)[config % 2]
    else:  # CELT-only
        frame = (120, 240, 480, 960)[config % 4]
    frames = 1 if code == 0 else 2 if code < 3 else packet[1] & 0x3F
    return frame * frames


def speech_frames(audio: Audio, rate: int) -> npt.NDArray[np.bool_]:
    """Per 20 ms frame of the source, whether it holds speech: an RMS (loudest channel) within
    ``SPEECH_FLOOR_DB`` of the loudest frame's."""
    size = rate // 50
    count = len(audio) // size
    frames = audio[: count * size].reshape(count, size, -1)
    rms = np.sqrt(np.mean(frames**2, axis=1)).max(axis=1)
    loudest = float(rms.max()) if count else 0.0
    return rms > loudest * 10 ** (SPEECH_FLOOR_DB / 20)


def speech_kbps(opus: Path, speaking: npt.NDArray[np.bool_]) -> float:
    """kb/s of the Opus packets whose span is at least half speech (frames of `speaking`), their
    bytes with the file's Ogg framing shared pro rata, over their duration."""
    data = opus.read_bytes()
    head, tags, *audio = ogg_packets(data)
    position = -int.from_bytes(head[10:12], "little")  # the pre-skip precedes the audio
    speech_bytes = speech_samples = 0
    for packet in audio:
        samples = opus_packet_samples(packet)
        first = max(0, position) // SPEECH_FRAME
        last = max(first + 1, math.ceil((position + samples) / SPEECH_FRAME))
        if first < len(speaking) and np.mean(speaking[first:last]) >= 0.5:
            speech_bytes += len(packet)
            speech_samples += samples
        position += samples
    if speech_samples == 0:
        return 0.0
    framing = len(data) / sum(len(packet) for packet in [head, tags, *audio])
    return speech_bytes * framing * 8 / (speech_samples / OGG_TICKS) / 1000


# --- quality -----------------------------------------------------------------------------------


def resample(audio: Audio, rate: int, to_rate: int) -> Audio:
    """`audio` (frames, channels) at `to_rate`, through SoX's VHQ linear-phase resampler
    (no dither, so it is deterministic)."""
    if rate == to_rate:
        return audio
    channels = audio.shape[1]

    def raw(at: int) -> list[str]:
        return ["-t", "raw", "-e", "floating-point", "-b", "32", "-r", str(at), "-c", str(channels)]

    done = subprocess.run(
        ["sox", "-D", *raw(rate), "-", *raw(to_rate), "-", "rate", "-v"],
        input=audio.astype("<f4").tobytes(),
        capture_output=True,
        check=True,
    )
    return np.frombuffer(done.stdout, dtype="<f4").reshape(-1, channels).astype(np.float64)


def pesq_rate(source_rate: int) -> tuple[int, str]:
    """PESQ's sample rate and mode for a source: narrowband at 8 kHz, wideband above."""
    return (8_000, "nb") if source_rate <= 8_000 else (16_000, "wb")


def segment_bounds(frames: int, rate: int, seconds: float = SEGMENT_SECONDS) -> list[range]:
    """`seconds`-long segments covering `frames`, the last one taking the remainder (so between
    `seconds` and twice that, or the whole signal when it is shorter)."""
    size = round(seconds * rate)
    count = max(1, frames // size)
    return [range(i * size, frames if i == count - 1 else (i + 1) * size) for i in range(count)]


def segment_scores(reference: Audio, decoded: Audio, rate: int, mode: str) -> list[float | None]:
    """PESQ of each segment of the one-signal `reference` and `decoded`; None where PESQ finds
    no utterance (or too little signal) to score."""
    scores: list[float | None] = []
    for span in segment_bounds(len(reference), rate):
        ref, deg = reference[span.start : span.stop], decoded[span.start : span.stop]
        if not np.any(ref) or not np.any(deg):
            scores.append(None)
            continue
        try:
            scores.append(float(pesq(rate, ref, deg, mode)))
        except (NoUtterancesError, BufferTooShortError):
            scores.append(None)
    return scores


def common_means(
    ours: Sequence[float | None], theirs: Sequence[float | None]
) -> tuple[float | None, float | None, int]:
    """Mean scores over the segments both sides were scored on, and how many there were."""
    pairs = [(a, b) for a, b in zip(ours, theirs, strict=True) if a is not None and b is not None]
    if not pairs:
        return None, None, 0
    return (
        statistics.fmean(a for a, _ in pairs),
        statistics.fmean(b for _, b in pairs),
        len(pairs),
    )


def alignment_lag(reference: Audio, decoded: Audio, max_lag: int, window: int) -> int:
    """The shift of `decoded` against `reference` (one signal each) with the best
    cross-correlation within +-`max_lag` samples over their first `window` samples:
    decoded[t + lag] matches reference[t]."""
    n = min(len(reference), len(decoded), window)
    size = 1 << math.ceil(math.log2(2 * n))
    spectrum = np.fft.rfft(decoded[:n], size) * np.conj(np.fft.rfft(reference[:n], size))
    correlation = np.fft.irfft(spectrum, size)
    lags = np.concatenate([correlation[-max_lag:], correlation[: max_lag + 1]])
    return int(np.argmax(lags)) - max_lag


def shifted(decoded: Audio, lag: int, frames: int) -> Audio:
    """`decoded` moved by `lag` (see :func:`alignment_lag`) and cut or zero-padded to `frames`."""
    if lag > 0:
        decoded = decoded[lag:]
    elif lag < 0:
        decoded = np.concatenate([np.zeros((-lag, *decoded.shape[1:])), decoded])
    if len(decoded) < frames:
        decoded = np.concatenate([decoded, np.zeros((frames - len(decoded), *decoded.shape[1:]))])
    return decoded[:frames]


@dataclass(frozen=True)
class Separation:
    """How much of each party a decoded channel carries (see the module's docstring)."""

    leak_db: float
    correlation_own: float
    correlation_other: float


def separation(decoded: Audio, own: Audio, other: Audio, rate: int) -> Separation:
    """The leak of `other` into the decoded channel `decoded` relative to `own`, in blocks of
    ``SEPARATION_BLOCK_SECONDS``, and the channel's correlation with both (one signal each, the
    same length, at `rate`)."""
    size = max(2, round(SEPARATION_BLOCK_SECONDS * rate))
    own_energy = other_energy = 0.0
    for start in range(0, len(decoded) - size + 1, size):
        block = slice(start, start + size)
        basis = np.stack([own[block], other[block]], axis=1)
        (a, b), *_ = np.linalg.lstsq(basis, decoded[block], rcond=None)
        own_energy += float(a * a * np.dot(own[block], own[block]))
        other_energy += float(b * b * np.dot(other[block], other[block]))
    if other_energy <= own_energy * 10 ** (LEAK_FLOOR_DB / 10):
        leak = LEAK_FLOOR_DB
    elif own_energy == 0:
        leak = -LEAK_FLOOR_DB
    else:
        leak = 10 * math.log10(other_energy / own_energy)
    return Separation(leak, correlation(decoded, own), correlation(decoded, other))


def correlation(x: Audio, y: Audio) -> float:
    if not np.any(x - x.mean()) or not np.any(y - y.mean()):
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


# --- one row -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """One encoder's output for one input, decoded, and the figures that need only it."""

    kbps: float
    speech_kbps: float
    channels: int
    decoded_rate: int
    duration_seconds: float
    kept: bool
    lag: int
    """See :func:`alignment_lag`, in samples at the PESQ rate."""


@dataclass(frozen=True)
class Scores:
    """PESQ means of both encoders over the segments both were scored on."""

    ours: float | None
    ffmpeg: float | None
    segments: int
    of_segments: int

    def meets(self) -> bool:
        if self.ours is None or self.ffmpeg is None:
            return False
        return self.ours >= self.ffmpeg - PESQ_TOLERANCE - 1e-9


@dataclass(frozen=True)
class Quality:
    """Both encoders' outputs on one input, everything but speed."""

    ours: Output
    ffmpeg: Output
    pesq_mode: str
    pesq_rate: int
    mixed: Scores
    channels: list[Scores]
    """Per channel (agent, customer) of a stereo input; empty for mono."""
    separation_ours: list[Separation]
    separation_ffmpeg: list[Separation]


@dataclass(frozen=True)
class Verdict:
    """Which of the targets a row meets."""

    speed: bool
    pesq: bool
    bitrate: bool
    kept: bool

    @property
    def meets(self) -> bool:
        return self.speed and self.pesq and self.bitrate and self.kept


@dataclass(frozen=True)
class Row:
    """Both encoders on one input."""

    input_class: InputClass
    kind: str
    seconds: float
    voices: tuple[str, ...]
    overlap_seconds: float
    speed: Speed
    quality: Quality

    @property
    def judged(self) -> bool:
        """Real speech: the rows the targets are judged on."""
        return self.kind in SPEECH_KINDS

    def verdict(self) -> Verdict:
        low, high = TARGET_KBPS * (1 - KBPS_TOLERANCE), TARGET_KBPS * (1 + KBPS_TOLERANCE)
        quality = self.quality
        return Verdict(
            speed=min(self.speed.process_ratio, self.speed.inprocess_ratio) >= TARGET_SPEED,
            pesq=quality.mixed.meets() and all(scores.meets() for scores in quality.channels),
            bitrate=low <= quality.ours.speech_kbps <= high and quality.ours.kbps <= high,
            kept=quality.ours.kept,
        )


def read_audio(path: Path) -> tuple[Audio, int]:
    """A sound file's samples as float64 (frames, channels), and its rate."""
    samples, rate = sf.read(path, dtype="float64", always_2d=True)
    return np.asarray(samples, dtype=np.float64), rate


def decode(
    opus: Path, source_frames: int, source_rate: int, source_channels: int
) -> tuple[Audio, int, float, bool]:
    """The decoded output at its own rate, its duration, and whether channels and duration
    were kept."""
    decoded, rate = read_audio(opus)
    duration = len(decoded) / rate
    kept = (
        decoded.shape[1] == source_channels
        and abs(duration - source_frames / source_rate) <= DURATION_TOLERANCE
    )
    return decoded, rate, duration, kept


def measure_quality(source: Path, ours_out: Path, ffmpeg_out: Path) -> Quality:
    """Everything but speed: bitrate, channels and duration, alignment, PESQ, separation."""
    audio, rate = read_audio(source)
    frames, channels = audio.shape
    scoring_rate, mode = pesq_rate(rate)
    reference = resample(audio, rate, scoring_rate)
    speaking = speech_frames(audio, rate)
    outputs: list[Output] = []
    aligned: list[Audio] = []
    for opus in (ours_out, ffmpeg_out):
        decoded, decoded_rate, duration, kept = decode(opus, frames, rate, channels)
        at_scoring = resample(decoded, decoded_rate, scoring_rate)
        lag = alignment_lag(
            reference.mean(axis=1),
            at_scoring.mean(axis=1),
            max_lag=round(MAX_LAG_SECONDS * scoring_rate),
            window=round(LAG_WINDOW_SECONDS * scoring_rate),
        )
        aligned.append(shifted(at_scoring, lag, len(reference)))
        outputs.append(
            Output(
                kbps=opus.stat().st_size * 8 / (frames / rate) / 1000,
                speech_kbps=speech_kbps(opus, speaking),
                channels=decoded.shape[1],
                decoded_rate=decoded_rate,
                duration_seconds=duration,
                kept=kept,
                lag=lag,
            )
        )

    def scores(pick: Callable[[Audio], Audio]) -> Scores:
        ours, theirs = (
            segment_scores(pick(reference), pick(decoded), scoring_rate, mode)
            for decoded in aligned
        )
        return Scores(*common_means(ours, theirs), of_segments=len(ours))

    mixed = scores(lambda signal: signal.mean(axis=1))
    per_channel: list[Scores] = []
    separations: list[list[Separation]] = [[], []]
    if channels == 2 and aligned[0].shape[1] == 2 and aligned[1].shape[1] == 2:
        for channel in range(2):
            per_channel.append(scores(lambda signal, c=channel: signal[:, c]))
            own, other = reference[:, channel], reference[:, 1 - channel]
            for index, decoded in enumerate(aligned):
                separations[index].append(separation(decoded[:, channel], own, other, scoring_rate))
    return Quality(
        ours=outputs[0],
        ffmpeg=outputs[1],
        pesq_mode=mode,
        pesq_rate=scoring_rate,
        mixed=mixed,
        channels=per_channel,
        separation_ours=separations[0],
        separation_ffmpeg=separations[1],
    )


def write_input(
    kind: str, input_class: InputClass, path: Path, cache: SpeechCache, seconds: float, seed: int
) -> tuple[tuple[str, ...], float]:
    """Write one input; its voices and the seconds both parties speak at once."""
    if kind == "synthetic":
        subtype = input_class.subtype
        fmt = next(f for f in FORMATS.values() if f.format == "WAV" and f.subtype == subtype)
        write_conversation(path, fmt, seconds, input_class.rate, input_class.channels, seed=seed)
        return ("recordings_cli.synth",), 0.0
    writer = write_call if kind == "turns" else write_double_talk
    call = writer(
        path,
        cache,
        seconds=seconds,
        rate=input_class.rate,
        channels=input_class.channels,
        subtype=input_class.subtype,
        seed=seed,
    )
    return call.voices, call.overlap_seconds


def add_line_noise(path: Path, dbfs: float, seed: int) -> None:
    """Add white noise at ``dbfs`` (RMS, each channel on its own) to a written input, in place,
    as a line or a room adds it under both parties: it decides whether a silent party's channel
    looks silent to an encoder."""
    info = sf.info(path)
    audio, rate = sf.read(path, dtype="float64", always_2d=True)
    noise = np.random.default_rng(seed).normal(0.0, 10 ** (dbfs / 20), audio.shape)
    sf.write(path, np.clip(audio + noise, -1.0, 1.0), rate, subtype=info.subtype)


def measure_row(
    input_class: InputClass,
    kind: str,
    seed: int,
    folder: Path,
    cache: SpeechCache,
    args: argparse.Namespace,
) -> Row:
    source = folder / f"{input_class.key}-{kind}.wav"
    voices, overlap = write_input(kind, input_class, source, cache, args.seconds, seed)
    if args.noise_dbfs is not None:
        add_line_noise(source, args.noise_dbfs, seed)
    progress(f"{input_class.key} {kind}: {', '.join(voices)}; timing")
    ours_out, ffmpeg_out = folder / "ours.opus", folder / "ffmpeg.opus"
    speed = measure_speed(
        source, ours_out, ffmpeg_out, args.process_runs, args.inprocess_runs, args.stereo_layout
    )
    progress(f"{input_class.key} {kind}: PESQ and separation")
    quality = measure_quality(source, ours_out, ffmpeg_out)
    source.unlink()
    return Row(input_class, kind, args.seconds, voices, overlap, speed, quality)


@dataclass(frozen=True)
class PlatformInput:
    """A file libsndfile cannot read, as a platform stores it: real speech coded by the encoder
    the world uses for it, so ours decodes it through FFmpeg's libraries (PyAV)."""

    key: str
    label: str
    rate: int
    channels: int
    suffix: str
    ffmpeg_args: tuple[str, ...]
    """Debian ffmpeg's options that make it from a PCM WAV, or () for AMR-NB (made with the
    OpenCORE encoder in PyAV's wheel: Debian's ffmpeg has none)."""


PLATFORM_INPUTS: Final = (
    PlatformInput(
        "m4a-aac", "M4A/AAC 44.1 kHz stereo (phone app)", 44_100, 2, ".m4a",
        ("-c:a", "aac", "-b:a", "96k"),
    ),
    PlatformInput(
        "webm-opus", "WebM/Opus 48 kHz mono (browser)", 48_000, 1, ".webm",
        ("-c:a", "libopus", "-b:a", "32k", "-f", "webm"),
    ),
    PlatformInput("amr-nb", "AMR-NB 8 kHz mono (mobile network)", 8_000, 1, ".amr", ()),
)  # fmt: skip


@dataclass(frozen=True)
class PlatformRow:
    platform: PlatformInput
    seconds: float
    speed: Speed
    kbps: float
    decoded_seconds: float
    channels: int

    @property
    def kept(self) -> bool:
        return (
            self.channels == self.platform.channels
            and abs(self.decoded_seconds - self.seconds) <= DURATION_TOLERANCE + 0.025
        )


def write_amr_nb(wav: Path, output: Path) -> None:
    """AMR-NB 12.2 kb/s by OpenCORE's encoder (PyAV), from an 8 kHz mono WAV."""
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    encode_with_ffmpeg(output, ("amr", "libopencore_amrnb", 12_200), rate, 1, [audio])


def measure_platform_row(
    platform: PlatformInput, seed: int, folder: Path, cache: SpeechCache, args: argparse.Namespace
) -> PlatformRow:
    wav = folder / f"{platform.key}.wav"
    write_call(
        wav, cache, seconds=args.seconds, rate=platform.rate, channels=platform.channels, seed=seed
    )
    source = folder / f"{platform.key}{platform.suffix}"
    if platform.ffmpeg_args:
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(wav), *platform.ffmpeg_args, str(source)],
            check=True,
        )
    else:
        write_amr_nb(wav, source)
    wav.unlink()
    progress(f"{platform.key}: timing")
    ours_out, ffmpeg_out = folder / "ours.opus", folder / "ffmpeg.opus"
    speed = measure_speed(source, ours_out, ffmpeg_out, args.process_runs, args.inprocess_runs)
    decoded, rate = sf.read(ours_out, dtype="float32", always_2d=True)
    kbps = ours_out.stat().st_size * 8 / args.seconds / 1000
    source.unlink()
    return PlatformRow(platform, args.seconds, speed, kbps, len(decoded) / rate, decoded.shape[1])


def platform_report(rows: Sequence[PlatformRow]) -> str:
    lines = [
        "Inputs libsndfile cannot read, decoded through FFmpeg's libraries in process (PyAV); "
        "ffmpeg decodes them itself. Same speech and timing as above.",
        "",
        "| input | speed ours / ffmpeg (a) | (b) | kb/s ours | channels and duration kept |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        process, inprocess = row.speed.process_ratio, row.speed.inprocess_ratio
        kept = "yes" if row.kept else f"**no** ({row.channels} ch, {row.decoded_seconds:.3f} s)"
        cells = [
            row.platform.label,
            bold_unless(process >= TARGET_SPEED, f"{process:.2f}"),
            bold_unless(inprocess >= TARGET_SPEED, f"{inprocess:.2f}"),
            f"{row.kbps:.1f}",
            kept,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- report ------------------------------------------------------------------------------------


def bold_unless(ok: bool, text: str) -> str:
    """The issue's convention: a figure that misses its target is bold."""
    return text if ok else f"**{text}**"


def score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def pesq_cell(scores: Scores) -> str:
    return bold_unless(scores.meets(), f"{score(scores.ours)} / {score(scores.ffmpeg)}")


def markdown_row(row: Row) -> str:
    verdict, speed, quality = row.verdict(), row.speed, row.quality
    ours, theirs = quality.ours, quality.ffmpeg
    per_channel = leak = ""
    if quality.channels:
        ours_scores = ", ".join(score(s.ours) for s in quality.channels)
        ffmpeg_scores = ", ".join(score(s.ffmpeg) for s in quality.channels)
        per_channel = bold_unless(
            all(s.meets() for s in quality.channels), f"{ours_scores} / {ffmpeg_scores}"
        )
    if quality.separation_ours:
        leak = " / ".join(
            ", ".join(f"{s.leak_db:.1f}" for s in side)
            for side in (quality.separation_ours, quality.separation_ffmpeg)
        )
    missing = [name for name in ("speed", "pesq", "bitrate", "kept") if not getattr(verdict, name)]
    judgement = "meets" if verdict.meets else "misses: " + ", ".join(missing)
    if not row.judged:
        judgement += " (not judged: synthetic)"
    cells = [
        row.input_class.label,
        row.kind,
        bold_unless(speed.process_ratio >= TARGET_SPEED, f"{speed.process_ratio:.2f}"),
        bold_unless(speed.inprocess_ratio >= TARGET_SPEED, f"{speed.inprocess_ratio:.2f}"),
        bold_unless(
            verdict.bitrate,
            f"{ours.kbps:.1f} ({ours.speech_kbps:.1f}) / {theirs.kbps:.1f} "
            f"({theirs.speech_kbps:.1f})",
        ),
        f"{pesq_cell(quality.mixed)} ({quality.pesq_mode.upper()})",
        per_channel,
        leak,
        bold_unless(verdict.kept, "yes" if verdict.kept else "no"),
        judgement,
    ]
    return "| " + " | ".join(cells) + " |"


def details_row(row: Row) -> str:
    """Correlations, alignment and segments scored: what the main table leaves out."""

    def correlations(side: list[Separation]) -> str:
        return ", ".join(f"{s.correlation_own:.2f}/{s.correlation_other:.2f}" for s in side)

    quality = row.quality
    segments = [quality.mixed, *quality.channels]
    return (
        "| "
        + " | ".join(
            [
                row.input_class.label,
                row.kind,
                ", ".join(row.voices),
                f"{row.overlap_seconds:.0f}",
                f"{quality.ours.lag} / {quality.ffmpeg.lag}",
                f"{quality.ours.duration_seconds:.3f} / {quality.ffmpeg.duration_seconds:.3f}",
                " ".join(f"{s.segments}/{s.of_segments}" for s in segments),
                " / ".join(
                    correlations(side)
                    for side in (quality.separation_ours, quality.separation_ffmpeg)
                )
                if quality.separation_ours
                else "",
            ]
        )
        + " |"
    )


def ffmpeg_version() -> str:
    first_line = subprocess.run(
        ["ffmpeg", "-hide_banner", "-version"], check=True, capture_output=True, text=True
    ).stdout.splitlines()[0]
    return first_line.split(" Copyright")[0]


def ffmpeg_libopus() -> str:
    """The libopus file ffmpeg loads, to show both encoders run the same library."""
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    listing = subprocess.run(["ldd", ffmpeg], capture_output=True, text=True, check=False).stdout
    for line in listing.splitlines():
        if "libopus.so" in line:
            return line.split("=>")[-1].split("(")[0].strip()
    return "unknown"


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def report(
    rows: Sequence[Row],
    args: argparse.Namespace,
    start_cpu: tuple[float, float],
    loads: Sequence[str],
) -> str:
    judged = [row for row in rows if row.judged]
    lines = [
        f"Our `convert_to_opus` against `ffmpeg -c:a libopus -b:a 24k -application voip` on "
        f"{args.seconds:g} s two-party calls spoken by espeak-ng and flite (bench/speech.py). "
        f"Speed: throughput ours / ffmpeg (ffmpeg's CPU seconds / ours; above 1 we are faster), "
        f"medians of alternating runs, (a) whole processes ({args.process_runs} runs each), "
        f"(b) ours in process against ffmpeg's child ({args.inprocess_runs} runs each). "
        "kb/s: whole file (on speech). PESQ: mean over 10 s segments both outputs could be "
        "scored on; per channel: agent, customer. Leak: dB of the other party in each channel "
        "relative to its own (agent, customer). Bold: misses its target."
        + (f" Line noise: white, {args.noise_dbfs:g} dBFS." if args.noise_dbfs is not None else "")
        + (
            f" Stereo layout: {args.stereo_layout.value} (forced)."
            if args.stereo_layout is not None
            else " Stereo layout: by band."
        ),
        "",
        "| input | speech | speed ours / ffmpeg (a) | (b) | kb/s ours / ffmpeg "
        "| PESQ mixed ours / ffmpeg | PESQ per channel ours / ffmpeg | leak dB ours / ffmpeg "
        "| channels and duration kept | verdict |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        *(markdown_row(row) for row in rows),
        "",
        f"Targets on real speech: speed >= {TARGET_SPEED:.1f} in (a) and (b); PESQ >= ffmpeg's "
        f"- {PESQ_TOLERANCE} mixed and per channel; {TARGET_KBPS:g} kb/s +-"
        f"{KBPS_TOLERANCE:.0%} on speech and at most the upper bound on the whole file; "
        f"channels and duration (+-{DURATION_TOLERANCE * 1000:.0f} ms) kept. "
        f"**{sum(row.verdict().meets for row in judged)} of {len(judged)}** real-speech rows "
        "meet all of them.",
        "",
        "| input | speech | voices (agent, customer) | double-talk s | lag ours / ffmpeg "
        "(samples at the PESQ rate) | decoded s ours / ffmpeg | segments scored (mixed, "
        "per channel) | correlation own/other per channel ours / ffmpeg |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | --- |",
        *(details_row(row) for row in rows),
        "",
        f"Versions: {libopus_version()} (ctypes; ffmpeg loads {ffmpeg_libopus()}), "
        f"{ffmpeg_version()}, pesq {version('pesq')}, soundfile {sf.__version__} "
        f"(libsndfile {sf.__libsndfile_version__}), numpy {np.__version__}. Process start "
        f"in (a): Python importing convert_to_opus {start_cpu[0] * 1000:.0f} ms CPU, "
        f"`ffmpeg -version` {start_cpu[1] * 1000:.0f} ms. Load average (1/5/15 min) before "
        f"{loads[0]}, after {loads[1]}, on {os.cpu_count()} cores.",
    ]
    return "\n".join(lines)


def as_json(
    rows: Sequence[Row],
    args: argparse.Namespace,
    start_cpu: tuple[float, float],
    loads: Sequence[str],
    platform_rows: Sequence[PlatformRow] = (),
) -> str:
    def row_json(row: Row) -> dict[str, object]:
        data = asdict(row)
        data["input_class"] = row.input_class.key
        data["speed"]["process_ratio"] = row.speed.process_ratio
        data["speed"]["inprocess_ratio"] = row.speed.inprocess_ratio
        data["verdict"] = {**asdict(row.verdict()), "meets": row.verdict().meets}
        data["judged"] = row.judged
        return data

    return json.dumps(
        {
            "bench": "encoder_speech",
            "seconds": args.seconds,
            "process_runs": args.process_runs,
            "inprocess_runs": args.inprocess_runs,
            "noise_dbfs": args.noise_dbfs,
            "stereo_layout": args.stereo_layout.value if args.stereo_layout else None,
            "libopus": libopus_version(),
            "ffmpeg": ffmpeg_version(),
            "pesq": version("pesq"),
            "start_cpu_seconds": {"ours": start_cpu[0], "ffmpeg": start_cpu[1]},
            "load_average": list(loads),
            "rows": [row_json(row) for row in rows],
            "platform_rows": [
                {
                    "input": row.platform.key,
                    "process_ratio": row.speed.process_ratio,
                    "inprocess_ratio": row.speed.inprocess_ratio,
                    "kbps": row.kbps,
                    "decoded_seconds": row.decoded_seconds,
                    "channels": row.channels,
                    "kept": row.kept,
                }
                for row in platform_rows
            ],
        },
        separators=(",", ":"),
    )


_STARTED = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    keys = [c.key for c in CLASSES]
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="length of each input")
    parser.add_argument(
        "--classes", default=",".join(keys), help=f"input classes, of {','.join(keys)}"
    )
    parser.add_argument(
        "--kinds", default=",".join(SPEECH_KINDS), help=f"kinds of speech, of {','.join(KINDS)}"
    )
    parser.add_argument(
        "--synthetic", action="store_true", help="add rows on recordings_cli.synth's calls"
    )
    parser.add_argument("--process-runs", type=int, default=5, help="runs of (a) per encoder")
    parser.add_argument("--inprocess-runs", type=int, default=3, help="runs of (b) per encoder")
    parser.add_argument("--temp-dir", type=Path, default=None, help="where inputs are written")
    parser.add_argument(
        "--noise-dbfs", type=float, default=None, help="add white line noise at this RMS level"
    )
    parser.add_argument(
        "--platform-formats",
        action="store_true",
        help="add a table for M4A/AAC, WebM/Opus and AMR-NB inputs (the FFmpeg decoder's speed)",
    )
    parser.add_argument(
        "--stereo-layout",
        type=StereoLayout,
        default=None,
        help=f"code stereo inputs in this layout ({', '.join(StereoLayout)}), not by band",
    )
    args = parser.parse_args(argv)
    chosen = args.classes.split(",")
    kinds = args.kinds.split(",")
    if args.synthetic and "synthetic" not in kinds:
        kinds.append("synthetic")
    unknown = sorted(set(chosen) - set(keys)) + sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown classes or kinds: {', '.join(unknown)}")
    args.classes = [c for c in CLASSES if c.key in chosen]
    args.kinds = kinds
    if args.process_runs < 1 or args.inprocess_runs < 1:
        parser.error("--process-runs and --inprocess-runs must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    missing = [p for p in ("ffmpeg", "sox") if shutil.which(p) is None] + missing_engines()
    if missing:
        raise SystemExit(f"missing {', '.join(sorted(set(missing)))} (make bench-deps)")
    loads = [load_average()]
    with tempfile.TemporaryDirectory(prefix="bench-encoder-speech-", dir=args.temp_dir) as name:
        folder = Path(name)
        cache = SpeechCache(folder / "utterances")
        rows = [
            measure_row(input_class, kind, seed, folder, cache, args)
            for input_class in args.classes
            for kind in args.kinds
            for seed in [CLASSES.index(input_class) * len(KINDS) + KINDS.index(kind)]
        ]
        platform_rows = [
            measure_platform_row(platform, 100 + index, folder, cache, args)
            for index, platform in enumerate(PLATFORM_INPUTS if args.platform_formats else ())
        ]
        start_cpu = start_cpu_seconds(3)
    loads.append(load_average())
    print(report(rows, args, start_cpu, loads))
    if platform_rows:
        print()
        print(platform_report(platform_rows))
    print()
    print(as_json(rows, args, start_cpu, loads, platform_rows))


if __name__ == "__main__":
    main()
