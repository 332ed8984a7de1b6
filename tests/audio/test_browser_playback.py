"""Archived two-party calls play in a browser: headless Chromium decodes them with Web Audio.

A compliance officer opens an archive's recording in whatever they have, most often a browser,
so the Ogg Opus files we write (coupled stereo, dual-mono stereo, mono) must decode there as
they do in FFmpeg, libopusfile and libsndfile (tests/audio/test_ogg_opus.py). The page below
asks Chromium's `decodeAudioData` for each file and posts back what it got: channels, length at
48 kHz, and each channel's energy while only one party speaks. The harness serves the page and
the files from a loopback HTTP server and waits for the posts, so nothing depends on when
Chromium decides a page has finished loading.
"""

import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from recordings.audio.convert import convert_to_opus
from recordings.audio.opus import OpusFileEncoder, StereoLayout

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium comes with `make bench-deps` (the test command installs it)"
)

RATE_48K = 48_000
DECODE_TIMEOUT_SECONDS = 90.0

PAGE = """<!doctype html><meta charset="utf-8"><title>decode</title><script>
async function decodeOne(name) {
  const response = await fetch("/files/" + name);
  const bytes = await response.arrayBuffer();
  let result;
  try {
    const context = new OfflineAudioContext(1, 1, 48000);
    const audio = await context.decodeAudioData(bytes);
    const halves = [];
    for (let c = 0; c < audio.numberOfChannels; c++) {
      const data = audio.getChannelData(c);
      const half = Math.floor(data.length / 2);
      const energy = (from, to) => {
        let sum = 0;
        for (let i = from; i < to; i++) sum += data[i] * data[i];
        return sum / Math.max(1, to - from);
      };
      halves.push([energy(0, half), energy(half, data.length)]);
    }
    result = {name, channels: audio.numberOfChannels, length: audio.length,
              sampleRate: audio.sampleRate, halves};
  } catch (error) {
    result = {name, error: String(error)};
  }
  await fetch("/result", {method: "POST", body: JSON.stringify(result)});
}
(async () => { for (const name of NAMES) await decodeOne(name); })();
</script>"""


def call_source(path: Path, rate: int, channels: int) -> int:
    """A call in two halves: the agent (channel 0) speaks in the first, the customer (channel 1)
    in the second, each a voiced, pitch-gliding tone with a syllable rhythm. Returns its frames."""
    frames = int(rate * 3.0) + 41  # not a whole number of Opus frames
    t = np.arange(frames) / rate
    rhythm = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    pitch = 140 + 30 * np.sin(2 * np.pi * t)
    voice = sum(np.sin(2 * np.pi * k * pitch * t) / k for k in (1, 2, 3))
    first = t < t[-1] / 2
    agent = 0.25 * voice * rhythm * first
    customer = 0.25 * voice * rhythm * ~first
    signal = np.stack([agent, customer], axis=1)[:, :channels] if channels == 2 else agent[:, None]
    sf.write(path, signal.astype(np.float32), rate, subtype="PCM_16")
    return frames


class _Harness(BaseHTTPRequestHandler):
    folder: Path
    names: list[str]
    results: "queue.Queue[dict[str, Any]]"

    def do_GET(self) -> None:
        if self.path == "/":
            body = PAGE.replace("NAMES", json.dumps(self.names)).encode()
            content_type = "text/html"
        elif self.path.startswith("/files/") and self.path[7:] in self.names:
            body = (self.folder / self.path[7:]).read_bytes()
            content_type = "audio/ogg"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.results.put(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def decode_in_chromium(folder: Path, names: list[str], profile: Path) -> dict[str, Any]:
    """What Chromium's Web Audio made of each file in `folder`, by name."""
    results: queue.Queue[dict[str, Any]] = queue.Queue()
    handler = type("Handler", (_Harness,), {"folder": folder, "names": names, "results": results})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    assert CHROMIUM is not None
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",  # root in CI containers
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            f"http://127.0.0.1:{server.server_address[1]}/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    decoded: dict[str, Any] = {}
    try:
        while len(decoded) < len(names):
            try:
                result = results.get(timeout=DECODE_TIMEOUT_SECONDS)
            except queue.Empty:
                pytest.fail(f"Chromium reported {sorted(decoded)} of {names} in time")
            decoded[result["name"]] = result
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
        server.server_close()
    return decoded


@pytest.fixture(scope="module")
def chromium_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("browser")
    expected: dict[str, Any] = {}
    for rate in (8_000, 16_000, 44_100):
        source = folder / f"call-{rate}.wav"
        frames = call_source(source, rate, 2)
        # The archive's own path, with whatever layout it chooses for this rate...
        name = f"archived-{rate}.opus"
        convert_to_opus(source, folder / name, serial=1)
        expected[name] = (2, frames, rate)
        # ...and each layout explicitly, so both stay playable whichever is the default.
        data, _ = sf.read(source, dtype="float32", always_2d=True)
        for layout in StereoLayout:
            name = f"{layout.value}-{rate}.opus"
            with OpusFileEncoder(folder / name, rate, 2, serial=2, stereo_layout=layout) as enc:
                enc.write(data)
            expected[name] = (2, frames, rate)
    mono = folder / "mono-8000.wav"
    frames = call_source(mono, 8_000, 1)
    convert_to_opus(mono, folder / "archived-mono-8000.opus", serial=3)
    expected["archived-mono-8000.opus"] = (1, frames, 8_000)
    results = decode_in_chromium(folder, sorted(expected), folder / "profile")
    yield {name: (results[name], expected[name]) for name in expected}


def test_chromium_decodes_every_layout_to_the_source_length(
    chromium_results: dict[str, Any],
) -> None:
    for name, (result, (channels, frames, rate)) in chromium_results.items():
        assert "error" not in result, f"{name}: {result.get('error')}"
        assert result["sampleRate"] == RATE_48K, name
        assert result["channels"] == channels, name
        # Pre-skip and the end trim honoured: the source's length, counted at 48 kHz.
        assert result["length"] == round(frames * RATE_48K / rate), (name, result["length"])


def test_chromium_keeps_each_party_on_its_own_channel(chromium_results: dict[str, Any]) -> None:
    for name, (result, (channels, _, _)) in chromium_results.items():
        if channels != 2:
            continue
        (agent_first, agent_second), (customer_first, customer_second) = result["halves"]
        # The agent speaks in the first half, the customer in the second: each channel carries
        # its own party at least 20 dB above the other party.
        assert agent_first > 100 * agent_second, (name, result["halves"])
        assert customer_second > 100 * customer_first, (name, result["halves"])
