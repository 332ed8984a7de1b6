"""bench/encoder_speech.py: its measuring helpers on signals whose answer is known, and the whole
benchmark at its smallest (12 s calls, two input classes including 8 kHz stereo u-law, one run
of each timing). The benchmark is run by hand to judge the encoder on real speech, so this keeps
it runnable and its figures sound; it asserts no time and no ratio, only that every figure is
there and in range. It uses no database, so the PostgreSQL run skips it rather than repeat it.
"""

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf

from recordings_cli.synth import conversation, speech_like
from tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "bench"
PYTHONPATH = os.environ.get("PYTHONPATH", "")


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))  # the benchmarks import each other as scripts do
    return importlib.import_module("encoder_speech")


def test_segments_are_ten_seconds_and_the_last_takes_the_remainder(bench: ModuleType) -> None:
    assert bench.segment_bounds(35 * 8000, 8000) == [
        range(0, 80_000),
        range(80_000, 160_000),
        range(160_000, 280_000),
    ]
    assert bench.segment_bounds(12 * 16000, 16000) == [range(0, 192_000)]
    assert bench.segment_bounds(5 * 16000, 16000) == [range(0, 80_000)]


def test_segment_scores_rate_speech_and_skip_silence(bench: ModuleType) -> None:
    rate = 16_000
    speech = speech_like(20.0, rate, seed=3).astype(np.float64)
    silent = np.concatenate([speech, np.zeros(10 * rate)])
    noisy = silent + np.random.default_rng(0).normal(0, 0.02, len(silent))

    clean = bench.segment_scores(silent, silent, rate, "wb")
    degraded = bench.segment_scores(silent, noisy, rate, "wb")

    assert clean[2] is None and degraded[2] is None  # the silent third segment
    assert all(4.0 < score <= 4.7 for score in clean[:2])
    assert all(
        1.0 <= score < clean_score
        for score, clean_score in zip(degraded[:2], clean[:2], strict=True)
    )
    assert bench.common_means(clean, degraded) == pytest.approx(
        (sum(clean[:2]) / 2, sum(degraded[:2]) / 2, 2)
    )


def test_common_means_use_only_the_segments_both_sides_scored(bench: ModuleType) -> None:
    assert bench.common_means([4.0, None, 3.0], [3.5, 2.0, None]) == (4.0, 3.5, 1)
    assert bench.common_means([None], [2.0]) == (None, None, 0)


def test_separation_tells_a_clean_channel_from_one_carrying_the_other_party(
    bench: ModuleType,
) -> None:
    rate = 16_000
    call = conversation(30.0, rate, 2, seed=5).astype(np.float64)
    own, other = call[:, 0], call[:, 1]
    other_at_own_level = other * np.sqrt(np.dot(own, own) / np.dot(other, other))

    clean = bench.separation(own, own, other, rate)
    at_20_db = bench.separation(own + 0.1 * other_at_own_level, own, other, rate)
    both = bench.separation(own + other_at_own_level, own, other, rate)
    # A leak whose sign flips every half second: one fit over the whole call would cancel it.
    flips = np.where((np.arange(len(own)) // (rate // 2)) % 2 == 0, 1.0, -1.0)
    flipping = bench.separation(own + 0.1 * flips * other_at_own_level, own, other, rate)

    assert clean.leak_db == bench.LEAK_FLOOR_DB
    assert clean.correlation_own == pytest.approx(1.0)
    assert at_20_db.leak_db == pytest.approx(-20.0, abs=1.0)
    assert flipping.leak_db == pytest.approx(-20.0, abs=1.0)
    assert both.leak_db == pytest.approx(0.0, abs=1.0)
    assert both.correlation_other > 0.5 > at_20_db.correlation_other


def test_alignment_finds_a_shift_and_undoes_it(bench: ModuleType) -> None:
    rate = 8_000
    reference = speech_like(5.0, rate, seed=1).astype(np.float64)
    late = np.concatenate([np.zeros(3), reference])[: len(reference)]
    early = reference[2:]

    assert bench.alignment_lag(reference, reference, 800, 8000) == 0
    assert bench.alignment_lag(reference, late, 800, 8000) == 3
    assert bench.alignment_lag(reference, early, 800, 8000) == -2
    np.testing.assert_array_equal(
        bench.shifted(late[:, None], 3, len(reference))[:-3, 0], reference[:-3]
    )
    np.testing.assert_array_equal(
        bench.shifted(early[:, None], -2, len(reference))[2:, 0], reference[2:]
    )


def test_opus_packet_durations_come_from_the_toc_byte(bench: ModuleType) -> None:
    silk_nb_20ms, hybrid_20ms, celt_fb_20ms, silk_wb_60ms = 1 << 3, 13 << 3, 31 << 3, 11 << 3
    assert bench.opus_packet_samples(bytes([silk_nb_20ms])) == 960
    assert bench.opus_packet_samples(bytes([hybrid_20ms | 1])) == 1920  # two frames
    assert bench.opus_packet_samples(bytes([celt_fb_20ms | 3, 3])) == 2880  # code 3, 3 frames
    assert bench.opus_packet_samples(bytes([silk_wb_60ms])) == 2880


def test_speech_frames_and_speech_bitrate_follow_the_source(
    bench: ModuleType, tmp_path: Path
) -> None:
    rate = 16_000
    speech = speech_like(4.0, rate, seed=2)
    source = np.concatenate([speech, np.zeros(4 * rate, dtype=np.float32)])[:, None]
    speaking = bench.speech_frames(source.astype(np.float64), rate)
    wav, opus = tmp_path / "in.wav", tmp_path / "out.opus"
    sf.write(wav, source, rate, subtype="PCM_16")
    bench.convert_to_opus(wav, opus)
    head, tags, *audio = bench.ogg_packets(opus.read_bytes())
    pre_skip = int.from_bytes(head[10:12], "little")

    assert len(speaking) == 400 and not speaking[200:].any() and speaking[:200].mean() > 0.5
    assert head.startswith(b"OpusHead") and tags.startswith(b"OpusTags")
    decoded = sum(bench.opus_packet_samples(packet) for packet in audio) - pre_skip
    assert abs(decoded - 8 * 48_000) < 2880  # within a packet
    # Every frame speaking: the audio packets' share of the file over their duration (the
    # headers are not speech; OpusTags alone may be 6% of an 8 s file).
    audio_share = sum(map(len, audio)) / sum(map(len, [head, tags, *audio]))
    audio_seconds = (decoded + pre_skip) / 48_000
    assert bench.speech_kbps(opus, np.ones_like(speaking)) == pytest.approx(
        opus.stat().st_size * audio_share * 8 / audio_seconds / 1000, rel=0.03
    )
    assert bench.speech_kbps(opus, np.zeros_like(speaking)) == 0.0


@pytest.mark.slow
def test_line_noise_is_added_at_its_level_and_the_source_keeps_its_format(
    bench: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "call.wav"
    silent = np.zeros((8_000 * 4, 2))
    sf.write(path, silent, 8_000, subtype="ULAW")
    bench.add_line_noise(path, -50.0, seed=1)
    info = sf.info(path)
    assert (info.subtype, info.channels, info.frames) == ("ULAW", 2, len(silent))
    noisy, _ = sf.read(path, always_2d=True)
    levels = 10 * np.log10(np.mean(noisy**2, axis=0))
    assert np.all(np.abs(levels + 50.0) < 1.0), levels  # u-law's step adds a little
    assert abs(np.corrcoef(noisy[:, 0], noisy[:, 1])[0, 1]) < 0.05  # each channel its own


@pytest.mark.sqlite_run_only
def test_the_smallest_run_prints_every_figure_for_both_encoders(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "encoder_speech.py"),
            *("--seconds", "12", "--classes", "8k-stereo,16k-mono"),
            *("--process-runs", "1", "--inprocess-runs", "1", "--temp-dir", str(tmp_path)),
            "--platform-formats",
        ],
        cwd=tmp_path,  # no developer `.env` in sight
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), PYTHONPATH])),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-4000:]
    table = re.findall(
        r"^\| (8 kHz stereo u-law|16 kHz mono)[^|]* \| (turns|double-talk) \|", out, re.M
    )
    # The main table and the details table: a row per class and kind in each.
    assert len(table) == 8, out
    assert "| input | speech | speed ours / ffmpeg (a) | (b) |" in out
    assert re.search(r"\*\*\d+ of 4\*\* real-speech rows", out), out
    report = json.loads(out.strip().splitlines()[-1])
    rows = report["rows"]
    assert [(r["input_class"], r["kind"]) for r in rows] == [
        ("8k-stereo", "turns"),
        ("8k-stereo", "double-talk"),
        ("16k-mono", "turns"),
        ("16k-mono", "double-talk"),
    ]
    for row in rows:
        quality = row["quality"]
        stereo = row["input_class"] == "8k-stereo"
        assert quality["pesq_mode"] == ("nb" if stereo else "wb")
        scores = [quality["mixed"], *quality["channels"]]
        assert len(scores) == (3 if stereo else 1)
        for figure in scores:
            assert figure["segments"] == figure["of_segments"] == 1
            assert 1.0 <= figure["ours"] <= 4.7 and 1.0 <= figure["ffmpeg"] <= 4.7
        for output in (quality["ours"], quality["ffmpeg"]):
            assert output["kept"] and output["channels"] == (2 if stereo else 1)
            assert output["kbps"] > 0 and output["speech_kbps"] > 0
        assert row["verdict"]["kept"]
        separations = [*quality["separation_ours"], *quality["separation_ffmpeg"]]
        assert len(separations) == (4 if stereo else 0)
        assert all(-99.0 <= s["leak_db"] <= 99.0 for s in separations)
        assert len(row["speed"]["ours_process"]) == len(row["speed"]["ffmpeg_inprocess"]) == 1
        if row["kind"] == "double-talk":  # both talking nearly all the time
            assert row["overlap_seconds"] > 0.7 * 12, row
    assert report["pesq"] and report["libopus"] and report["ffmpeg"]
    # The FFmpeg decoder's inputs: M4A/AAC, WebM/Opus, AMR-NB, each archived whole.
    assert "| M4A/AAC 44.1 kHz stereo (phone app) |" in out
    platform = {row["input"]: row for row in report["platform_rows"]}
    assert sorted(platform) == ["amr-nb", "m4a-aac", "webm-opus"]
    for row in platform.values():
        assert row["kept"] and row["process_ratio"] > 0 and row["inprocess_ratio"] > 0, row
    assert platform["m4a-aac"]["channels"] == 2
