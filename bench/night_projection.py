"""The night at 100, 1,000 and 10,000 tenants: measured costs, projected on N workers (issue 11).

On 2 cores the audio of 10,000 tenants cannot be encoded in a benchmark, so this measures the
three costs a night is made of, on a local stack of its own, and projects the night of a
platform-shaped population from them, printing the formula with its numbers:

1. **A run's fixed cost and a tenant-day's marginal cost**, in process: one run of 1 empty
   tenant-day and one packed run of `--tenants` K empty tenant-days, exactly as the nightly
   schedule requests them (`nightly_run_requests`) and with its tags; the split is
   marginal = (CPU(K) - CPU(1)) / (K - 1), fixed = CPU(1) - marginal (this process and
   SeaweedFS). A run launched by the daemon also starts a run worker process that loads the code
   location: its CPU is measured apart (`--worker-starts` starts of
   `python -c "import recordings_dagster.definitions"`, the median: a lower bound, the run
   worker also reads the run and opens the instance), and counted once per run for the default
   and Kubernetes launchers, not for Celery's long-lived workers.
2. **The audio's cost** on a sample of real speech: `bench/speech.py` calls (two speakers from
   `espeak-ng` and `flite`, turns, pauses and double-talk) in six source classes, equal shares
   (8 kHz mono and two-channel u-law telephony, 16 kHz mono and stereo, 44.1 kHz stereo,
   48 kHz mono), `--calls` calls of `--call-seconds` each, registered to tenants of one pack and
   archived in one run; the audio CPU is the run's CPU minus its fixed and per-tenant-day share
   from 1., per hour of audio. In the same run of the benchmark, `ffmpeg -c:a libopus -b:a 24k
   -application voip` encodes the same files (its CPU, `RUSAGE_CHILDREN`): the reference.
3. **The population** at each size, drawn by `bench/population.py` (quiet 20 %, small 60 %,
   medium 17 %, heavy 3 %; seeded), packed as the nightly schedules pack them (each shard's
   tenants apart, `pack_tenant_days` with the default limits): tenant-days T, runs R, hours of
   audio A, and the longest run.

The projection, for W workers of C cores (a run converts on every core of its worker)::

    CPU   = R x (run fixed + worker start) + T x tenant-day + A x audio hour
    night = max(CPU / (W x C), longest run's CPU / C)

plus the nightly tick (`bench/tick.py`) before the first run starts. Everything that grows with
tenants, hours and audio is in R, T and A; the per-unit costs are measured on this machine in
this run. Not counted: the queue's and the daemon's own CPU (another process, bounded by
`max_concurrent_runs` x their poll interval), PostgreSQL and the S3 server of production.

Run::

    PYTHONPATH=. .venv/bin/python bench/night_projection.py [--sizes 100,1000,10000]
        [--tenants 20] [--calls 12] [--call-seconds 120] [--workers 1,16,64,128,256]
        [--cores 2]

Markdown goes to stdout, progress to stderr. CPU figures from a shared 2-core machine are noisy;
the load average is printed with them.
"""

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
from minio import Minio
from population import TIERS, draw_day, summarize  # bench/population.py
from speech import SpeechCache, missing_engines, write_call  # bench/speech.py
from stack import elapsed, local_stack, progress  # bench/stack.py
from tenant_day_overhead import (  # bench/tenant_day_overhead.py
    PACKED_SHARD,
    InProcess,
    Split,
    Tenants,
    children_cpu_seconds,
    load_average,
    run_in_process,
)

from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.keys import day_hours, source_key, tenant_shard, tenants_by_shard
from recordings.packing import PackLimits, pack_tenant_days
from recordings.storage import upload_file

SOURCE_BUCKET = "projection-sources"
ARCHIVE_BUCKET = "projection-archives"
# (name, rate, channels, soundfile subtype): the six source classes, equal shares.
SOURCE_CLASSES = (
    ("8k-mono", 8000, 1, "PCM_16"),
    ("8k-stereo-ulaw", 8000, 2, "ULAW"),
    ("16k-mono", 16000, 1, "PCM_16"),
    ("16k-stereo", 16000, 2, "PCM_16"),
    ("44k-stereo", 44100, 2, "PCM_16"),
    ("48k-mono", 48000, 1, "PCM_16"),
)
CALLS_PER_TENANT = 3


# --- 1. fixed costs ----------------------------------------------------------------------------


def worker_start_cpu(starts: int) -> float:
    """CPU of a process that loads the code location, as a run worker does first (median)."""
    samples = []
    for _ in range(starts):
        before = children_cpu_seconds()
        subprocess.run(
            [sys.executable, "-c", "import recordings_dagster.definitions"],
            check=True,
            capture_output=True,
        )
        samples.append(children_cpu_seconds() - before)
    return statistics.median(samples)


# --- 2. the audio sample -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    tenants: list[str]
    files: list[Path]
    audio_seconds: float


def register_sample(
    database_url: str,
    client: Minio,
    day: date,
    folder: Path,
    calls: int,
    call_seconds: float,
) -> Sample:
    """`calls` real-speech calls over the source classes, three per fresh tenant (all of one
    shard, so one run archives them), each in an hour of its own, uploaded and registered as
    the platform does."""
    cache = SpeechCache(folder / "utterances")
    hours = day_hours(day)
    tenants: list[str] = []
    files: list[Path] = []
    candidates = (f"audio-{number:04d}" for number in itertools.count())
    engine = create_db_engine(database_url)
    with session_scope(engine) as session:
        for index in range(calls):
            name, rate, channels, subtype = SOURCE_CLASSES[index % len(SOURCE_CLASSES)]
            if index % CALLS_PER_TENANT == 0:  # a fresh tenant of the packed shard
                tenant = next(name for name in candidates if tenant_shard(name) == PACKED_SHARD)
                ensure_tenant(session, tenant, f"Projection tenant {tenant}")
                set_recording_settings(session, tenant, changed_by="bench", enabled=True)
                tenants.append(tenant)
            path = folder / "calls" / f"{index:03d}-{name}.wav"
            write_call(path, cache, seconds=call_seconds, rate=rate, channels=channels,
                       subtype=subtype, seed=index)  # fmt: skip
            files.append(path)
            ids = [str(uuid.uuid4()) for _ in range(3)]
            key = source_key(tenants[-1], ids[0], ids[1], ids[2], ".wav")
            upload_file(client, SOURCE_BUCKET, key, path, "audio/wav")
            register_recording(
                session,
                tenant_id=tenants[-1],
                conversation_id=ids[0],
                session_id=ids[1],
                recording_id=ids[2],
                bucket=SOURCE_BUCKET,
                object_key=key,
                started_at=hours[(3 + 5 * index) % 24] + timedelta(minutes=2),
                duration_seconds=call_seconds,
                audio_format="WAV",
                channels=channels,
                sample_rate=rate,
                size_bytes=path.stat().st_size,
            )
    engine.dispose()
    return Sample(tenants, files, calls * call_seconds)


def ffmpeg_cpu(files: Sequence[Path], folder: Path) -> float:
    """CPU of `ffmpeg -c:a libopus -b:a 24k -application voip` over `files`."""
    before = children_cpu_seconds()
    for index, source in enumerate(files):
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-c:a", "libopus",
             "-b:a", "24k", "-application", "voip", str(folder / f"{index}.opus")],
            check=True,
        )  # fmt: skip
    return children_cpu_seconds() - before


# --- 3. the population -------------------------------------------------------------------------


@dataclass(frozen=True)
class Night:
    tenants: int
    tenant_days: int
    runs: int
    single_runs: int
    audio_hours: float
    longest_run_audio_hours: float
    by_tier: str


def night_of(size: int, day: date) -> Night:
    names = [f"tenant-{index:05d}" for index in range(size)]
    days = draw_day(names, day)
    expected = {name: tenant_day.audio_seconds for name, tenant_day in days.items()}
    # As the nightly schedules do: each shard's tenants packed apart (a run stays in its shard).
    packs = [
        pack
        for shard_tenants in tenants_by_shard(names).values()
        for pack in pack_tenant_days(shard_tenants, set(shard_tenants), expected, PackLimits())
    ]
    population = summarize(days)
    by_tier = ", ".join(
        f"{tier.name} {population.tenants_by_tier.get(tier.name, 0):,}" for tier in TIERS
    )
    return Night(
        tenants=size,
        tenant_days=len(names),
        runs=len(packs),
        single_runs=sum(1 for pack in packs if pack.single_tenant),
        audio_hours=population.audio_hours,
        longest_run_audio_hours=max(pack.audio_seconds for pack in packs) / 3600,
        by_tier=by_tier,
    )


# --- the projection ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Costs:
    run_fixed: float  # CPU-s, in process
    worker_start: float  # CPU-s, a run worker loading the code location
    tenant_day: float  # CPU-s, marginal, empty
    audio_hour: float  # CPU-s per hour of audio
    ffmpeg_audio_hour: float  # the reference, CPU-s per hour of audio

    def night_cpu(self, night: Night, worker_per_run: bool) -> float:
        per_run = self.run_fixed + (self.worker_start if worker_per_run else 0.0)
        return (
            night.runs * per_run
            + night.tenant_days * self.tenant_day
            + night.audio_hours * self.audio_hour
        )

    def longest_run_cpu(self, night: Night) -> float:
        return self.run_fixed + self.worker_start + night.longest_run_audio_hours * self.audio_hour


def hours_minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def report(
    costs: Costs, nights: Sequence[Night], workers: Sequence[int], cores: int, sample: Sample
) -> None:
    print("\n**Measured costs** (CPU-s; this process and SeaweedFS)\n")
    print("| cost | CPU-s |")
    print("| --- | ---: |")
    print(f"| a run's fixed cost, in process | {costs.run_fixed:.2f} |")
    print(f"| a run worker starting (code location load, a lower bound), per run, not Celery | "
          f"{costs.worker_start:.2f} |")  # fmt: skip
    print(f"| an empty tenant-day in a packed run, marginal | {costs.tenant_day:.3f} |")
    print(
        f"| an hour of audio (real speech, six source classes; sample: "
        f"{sample.audio_seconds / 60:.0f} min in {len(sample.files)} calls) | "
        f"{costs.audio_hour:.1f} |"
    )
    print(f"| the same hour through `ffmpeg -c:a libopus` voip 24k (reference) | "
          f"{costs.ffmpeg_audio_hour:.1f} |")  # fmt: skip
    if costs.run_fixed < 0 or costs.tenant_day < 0:
        print(
            "\nA fixed cost came out below zero: with this few tenant-days the split of a run's "
            "CPU into fixed and marginal is within the noise; measure with more `--tenants`."
        )
    print(
        f"\nArchiving an hour of audio (download, decode, encode, ZIP, upload, evidence) costs "
        f"{costs.audio_hour / costs.ffmpeg_audio_hour:.2f}x ffmpeg's encode of it alone."
    )
    print("\n**The population and its night**\n")
    print("| tenants | tiers | tenant-days T | runs R (alone) | audio A | longest run |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for night in nights:
        print(
            f"| {night.tenants:,} | {night.by_tier} | {night.tenant_days:,} | {night.runs:,} "
            f"({night.single_runs:,}) | {night.audio_hours:,.0f} h | "
            f"{night.longest_run_audio_hours:.1f} h of audio |"
        )
    for label, worker_per_run in (
        ("default or Kubernetes launcher (a run worker per run)", True),
        ("Celery launcher (long-lived workers)", False),
    ):
        print(f"\n**Projected night, {label}**, W workers of {cores} cores\n")
        print(
            f"CPU = R x ({costs.run_fixed:.2f}"
            + (f" + {costs.worker_start:.2f}" if worker_per_run else "")
            + f") + T x {costs.tenant_day:.3f} + A x {costs.audio_hour:.1f} CPU-s; "
            f"night = max(CPU / (W x {cores}), longest run / {cores})\n"
        )
        header = "| tenants | runs | tenant-days | audio | CPU | " + " | ".join(
            f"W = {w}" for w in workers
        )
        print(header + " |")
        print("| ---: " * 5 + "| ---: " * len(workers) + "|")
        for night in nights:
            per_run = costs.run_fixed + (costs.worker_start if worker_per_run else 0.0)
            parts = (
                night.runs * per_run,
                night.tenant_days * costs.tenant_day,
                night.audio_hours * costs.audio_hour,
            )
            total = sum(parts)
            floor = costs.longest_run_cpu(night) / cores
            walls = [hours_minutes(max(total / (w * cores), floor)) for w in workers]
            print(
                f"| {night.tenants:,} | {parts[0] / 3600:.2f} h | {parts[1] / 3600:.2f} h | "
                f"{parts[2] / 3600:.1f} h | {total / 3600:.1f} h | " + " | ".join(walls) + " |"
            )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="tenant counts, comma-separated")
    parser.add_argument("--tenants", type=int, default=20, help="empty tenant-days in the pack")
    parser.add_argument("--calls", type=int, default=12, help="real-speech calls in the sample")
    parser.add_argument("--call-seconds", type=float, default=120.0, help="length of each call")
    parser.add_argument("--worker-starts", type=int, default=3, help="code loads measured")
    parser.add_argument("--workers", default="1,16,64,128,256", help="worker counts projected")
    parser.add_argument("--cores", type=int, default=2, help="cores per worker")
    parser.add_argument("--temp-dir", type=Path, help="where the temporary folder goes")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    missing = missing_engines() + [p for p in ("ffmpeg",) if not _has(p)]
    if missing:
        raise SystemExit(f"missing programs: {', '.join(missing)} (run `make bench-deps`)")
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    print(
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, Dagster "
        f"{dg.__version__}; load average at start {load_average()}. Day {day}; SQLite run, event "
        "and application storage."
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-projection-", dir=args.temp_dir) as name,
        local_stack(
            Path(name), source_bucket=SOURCE_BUCKET, archive_bucket=ARCHIVE_BUCKET
        ) as local,
    ):
        s3_pid = local.s3.server.running_pid()
        if s3_pid is None:
            raise RuntimeError("the local S3 server is not running")
        os.environ.update(local.environment())
        folder = Path(name) / "scratch"
        folder.mkdir()
        tenants = Tenants(local.database_url, local.s3.client, day, 0, 1.0, folder)
        with dg.DagsterInstance.from_config(str(local.home)) as instance:
            progress("warm-up tenant-day")
            run_in_process(instance, day, tenants.make("empty", 1), s3_pid)
            progress(f"1 empty tenant-day, then {args.tenants} in one run")
            one = run_in_process(instance, day, tenants.make("empty", 1), s3_pid)
            many = run_in_process(instance, day, tenants.make("empty", args.tenants), s3_pid)
            split = Split.of(_cpu(one), _cpu(many), many.tenant_days)
            progress(f"the audio sample: {args.calls} calls of {args.call_seconds:g} s")
            sample = register_sample(
                local.database_url, local.s3.client, day, folder, args.calls, args.call_seconds
            )
            audio = run_in_process(instance, day, sample.tenants, s3_pid)
        if audio.runs != 1:
            raise RuntimeError(f"the sample took {audio.runs} runs, not one")
        audio_cpu = _cpu(audio) - split.fixed - len(sample.tenants) * split.marginal
        progress("the reference: ffmpeg libopus over the same files")
        reference = ffmpeg_cpu(sample.files, folder)
        progress(f"{args.worker_starts} code loads")
        worker = worker_start_cpu(args.worker_starts)
    hours = sample.audio_seconds / 3600
    costs = Costs(split.fixed, worker, split.marginal, audio_cpu / hours, reference / hours)
    nights = [night_of(int(size), day) for size in args.sizes.split(",")]
    report(costs, nights, [int(w) for w in args.workers.split(",")], args.cores, sample)
    print(f"\n_Load average at the end {load_average()}; bench runtime {elapsed():.0f} s._")


def _cpu(result: InProcess) -> float:
    return result.cpu + result.s3_cpu


def _has(program: str) -> bool:
    from shutil import which

    return which(program) is not None


if __name__ == "__main__":
    main()
