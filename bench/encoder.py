"""Encoder throughput: our ``convert_to_opus`` against ``ffmpeg -c:a libopus``, same inputs.

Why: the nightly job's cost is mostly Opus encoding, and we chose libopus through ctypes over
ffmpeg (no subprocess per recording, no ffmpeg in production). That choice holds only if it is
not much slower: the target is a median of at least 0.85x ffmpeg's throughput over the inputs
below. Throughput is audio seconds per CPU second (ours: this process's CPU time around the
call, which includes decoding with libsndfile and hashing the output; ffmpeg: the CPU time of
the child process, from ``RUSAGE_CHILDREN``, which includes its process start). Medians of a few
repetitions, the two encoders alternating so that load from elsewhere hits both alike.

Inputs are speech-like calls from :mod:`recordings_cli.synth`, written as 16-bit WAV. Run::

    .venv/bin/python bench/encoder.py [--seconds 120] [--repeats 3]

and paste the Markdown it prints into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from recordings.audio.convert import convert_to_opus
from recordings.audio.opus import libopus_version
from recordings_cli.synth import FORMATS, write_conversation

INPUTS = ((8_000, 1), (16_000, 1), (16_000, 2), (44_100, 2), (48_000, 1))
# Shown for information, outside the target's median: our encoder codes 8 kHz stereo CBR (VBR
# undershoots the bitrate there, see recordings.audio.opus), ffmpeg's default is VBR.
EXTRA_INPUTS = ((8_000, 2),)
TARGET_RATIO = 0.85
SEED = 2024


@dataclass
class Runs:
    """CPU seconds and output sizes of the repetitions of one encoder on one input."""

    cpu_seconds: list[float] = field(default_factory=list)
    output_bytes: list[int] = field(default_factory=list)

    def throughput(self, audio_seconds: float) -> float:
        return audio_seconds / statistics.median(self.cpu_seconds)

    def kbps(self, audio_seconds: float) -> float:
        return statistics.median(self.output_bytes) * 8 / audio_seconds / 1000


@dataclass(frozen=True)
class Row:
    """Both encoders on one input."""

    name: str
    ours: Runs
    ffmpeg: Runs
    audio_seconds: float

    @property
    def ratio(self) -> float:
        return self.ours.throughput(self.audio_seconds) / self.ffmpeg.throughput(self.audio_seconds)

    def markdown(self, note: str = "") -> str:
        seconds = self.audio_seconds
        return (
            f"| {self.name}{note} | {self.ours.throughput(seconds):.1f} "
            f"| {self.ffmpeg.throughput(seconds):.1f} | {self.ratio:.2f} "
            f"| {self.ours.kbps(seconds):.1f} | {self.ffmpeg.kbps(seconds):.1f} |"
        )


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ffmpeg_command(source: Path, output: Path) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-i", str(source),
        "-c:a", "libopus", "-b:a", "24k", "-application", "voip",
        str(output),
    ]  # fmt: skip


def run_ours(source: Path, output: Path, runs: Runs) -> None:
    start = time.process_time()
    result = convert_to_opus(source, output)
    runs.cpu_seconds.append(time.process_time() - start)
    runs.output_bytes.append(result.output_bytes)


def run_ffmpeg(source: Path, output: Path, runs: Runs) -> None:
    before = children_cpu_seconds()
    subprocess.run(ffmpeg_command(source, output), check=True)
    runs.cpu_seconds.append(children_cpu_seconds() - before)
    runs.output_bytes.append(output.stat().st_size)


def ffmpeg_start_cpu_seconds(repeats: int) -> float:
    """CPU time of an ffmpeg that does nothing: the process-start share of its figures."""
    samples = []
    for _ in range(repeats):
        before = children_cpu_seconds()
        subprocess.run(["ffmpeg", "-hide_banner", "-version"], check=True, capture_output=True)
        samples.append(children_cpu_seconds() - before)
    return statistics.median(samples)


def ffmpeg_version() -> str:
    first_line = subprocess.run(
        ["ffmpeg", "-hide_banner", "-version"], check=True, capture_output=True, text=True
    ).stdout.splitlines()[0]
    return first_line.split(" Copyright")[0]


def label(rate: int, channels: int) -> str:
    return f"{rate / 1000:g} kHz {'stereo' if channels == 2 else 'mono'}"


def measure(folder: Path, rate: int, channels: int, seconds: float, repeats: int) -> Row:
    source = folder / f"in-{rate}-{channels}.wav"
    write_conversation(source, FORMATS["wav-pcm16"], seconds, rate, channels, seed=SEED)
    ours, ffmpeg = Runs(), Runs()
    for _ in range(repeats):
        run_ours(source, folder / "ours.opus", ours)
        run_ffmpeg(source, folder / "ffmpeg.opus", ffmpeg)
    return Row(label(rate, channels), ours, ffmpeg, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of each input")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per encoder")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not installed (Debian: apt-get install ffmpeg)")

    with tempfile.TemporaryDirectory(prefix="bench-encoder-") as name:
        folder = Path(name)
        rows = [measure(folder, *spec, args.seconds, args.repeats) for spec in INPUTS]
        extra = [measure(folder, *spec, args.seconds, args.repeats) for spec in EXTRA_INPUTS]
        start_cpu = ffmpeg_start_cpu_seconds(args.repeats)

    median_ratio = statistics.median(row.ratio for row in rows)
    print(
        f"Encoder throughput on {args.seconds:g} s speech-like calls (16-bit WAV): audio seconds "
        f"per CPU second, median of {args.repeats} runs.\n"
        f"Ours: `convert_to_opus` ({libopus_version()}): 24 kb/s, VoIP, libopus at the rate of "
        "the coded band, 60 ms packets for mono and 20 ms for stereo "
        "(see recordings/audio/opus.py). "
        f"ffmpeg: {ffmpeg_version()}, `-c:a libopus -b:a 24k -application voip`: VBR, libopus at "
        "the source rate (48 kHz for 44.1 kHz), 20 ms.\n"
    )
    print(
        "| input | ours (x realtime) | ffmpeg (x realtime) | ours / ffmpeg "
        "| ours kb/s | ffmpeg kb/s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(row.markdown())
    for row in extra:
        print(row.markdown(note=" (ours CBR, not in the median)"))
    verdict = "meets" if median_ratio >= TARGET_RATIO else "MISSES"
    print(
        f"\nMedian ratio ours / ffmpeg: **{median_ratio:.2f}** ({verdict} the {TARGET_RATIO} "
        f"target). ffmpeg's figures include its process start: {start_cpu * 1000:.0f} ms CPU "
        "for `ffmpeg -version`."
    )


if __name__ == "__main__":
    main()
