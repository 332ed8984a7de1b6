"""Two-party calls spoken by real text-to-speech engines, for benchmarks that must not be fed by
our own signal generator.

`recordings_cli.synth` writes speech-like signals we designed; an encoder tuned on them met its
target there and missed it on real speech. The calls written here are spoken by two engines
from Debian's archive, `espeak-ng` (formant synthesis) and `flite` (diphone/cluster unit
selection), with several voices: each call is two speakers taking turns on a customer-service
script, with pauses of 0.3-1.5 s between turns and, every few turns, a stretch where both talk
at once (:func:`write_call`). :func:`write_double_talk` writes the worst case for stereo coding:
both speakers talking at once from start to end. For a two-channel recording each speaker has a
channel of its own (agent left, customer right), as contact-centre recorders store them; a mono
recording carries their mix.

Every utterance is synthesized once into a cache folder and resampled with `sox` (its VHQ
resampler) to the recording's rate; a call is then assembled with NumPy and written with
`soundfile` in the requested subtype (16-bit PCM, u-law, ...). Everything is deterministic for
a given seed, so two runs of a benchmark encode the same audio.

Needs the Debian packages `espeak-ng`, `flite` and `sox` (`make bench-deps` installs them).
"""

import hashlib
import random
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ENGINES = ("espeak-ng", "flite", "sox")

# A customer-service call, agent and customer alternating; the lines are ours, the voices are
# not.
AGENT_LINES = (
    "Thank you for calling, my name is Jordan, how can I help you today?",
    "I can certainly look into that for you. Could you give me your account number, please?",
    "Thank you. I can see the order here, it was shipped on Tuesday from our warehouse.",
    "It looks like the parcel was delayed at the regional depot because of the weather.",
    "I am sorry about that. I can arrange a new delivery for tomorrow morning if that suits you.",
    "Of course. I have also added a credit of ten pounds to your account for the inconvenience.",
    "Is there anything else I can help you with while I have you on the line?",
    "Let me read back the address we have on file, just to make sure it is correct.",
    "The reference for this call is seven four two nine, in case you need to contact us again.",
    "Thank you for your patience, and have a lovely rest of your day.",
)
CUSTOMER_LINES = (
    "Hi, yes, I ordered a coffee machine two weeks ago and it still has not arrived.",
    "Sure, it is four five eight one, three three two, nine nine.",
    "Tuesday? The tracking page has said in transit for five days now.",
    "Well, I really needed it for the weekend, I have guests coming over.",
    "Tomorrow morning would be fine, I will be working from home.",
    "That is very kind, thank you. Will I get an email confirming the new date?",
    "No, I think that covers it. Actually, can you confirm my delivery address?",
    "Yes, that is right, flat three, twelve Harbour Street.",
    "Great, I have written that down. Thanks for sorting it out so quickly.",
    "You too, goodbye.",
)


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng" or "flite"
    name: str  # espeak-ng voice (with variant) or flite voice

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}"


# Agents and customers: both engines, several voices each, men and women.
AGENT_VOICES = (
    Voice("flite", "slt"),
    Voice("espeak-ng", "en-us+f3"),
    Voice("flite", "awb"),
    Voice("espeak-ng", "en-gb+m3"),
)
CUSTOMER_VOICES = (
    Voice("espeak-ng", "en-gb-scotland+m2"),
    Voice("flite", "rms"),
    Voice("espeak-ng", "en-us+f4"),
    Voice("flite", "kal16"),
)


def missing_engines() -> list[str]:
    """The programs this module needs that are not installed."""
    return [engine for engine in ENGINES if shutil.which(engine) is None]


class SpeechCache:
    """Utterances synthesized once per (voice, text, rate) into `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def utterance(self, voice: Voice, text: str, rate: int) -> np.ndarray:
        """The utterance as float32 mono samples at `rate`."""
        digest = hashlib.sha256(f"{voice.label}|{text}".encode()).hexdigest()[:16]
        resampled = self.folder / f"{digest}-{rate}.wav"
        if not resampled.exists():
            native = self.folder / f"{digest}.wav"
            if not native.exists():
                _speak(voice, text, native)
            temporary = resampled.with_suffix(".part.wav")
            command = ["sox", str(native), "-r", str(rate), "-c", "1", "-b", "16"]
            subprocess.run(
                [*command, str(temporary), "rate", "-v"],
                check=True,
                capture_output=True,
            )
            temporary.replace(resampled)
        samples, _ = sf.read(resampled, dtype="float32", always_2d=False)
        return samples


def _speak(voice: Voice, text: str, output: Path) -> None:
    if voice.engine == "espeak-ng":
        command = ["espeak-ng", "-v", voice.name, "-s", "165", "-w", str(output), text]
    else:
        command = ["flite", "-voice", voice.name, "-t", text, "-o", str(output)]
    subprocess.run(command, check=True, capture_output=True)


@dataclass(frozen=True)
class Call:
    """A call as written: its length and who spoke."""

    path: Path
    seconds: float
    voices: tuple[str, str]
    overlap_seconds: float


def write_call(
    path: Path,
    cache: SpeechCache,
    *,
    seconds: float,
    rate: int,
    channels: int,
    subtype: str = "PCM_16",
    file_format: str = "WAV",
    seed: int = 0,
) -> Call:
    """A two-party call of `seconds` at `rate`: stereo = agent left, customer right; mono =
    their mix. Turns alternate with pauses; every fourth turn starts one second before the
    previous one ends (double-talk). Written with `soundfile` as `file_format`/`subtype`."""
    rng = random.Random(seed)  # noqa: S311 - bench data
    agent, customer = _voices(seed)
    total = int(seconds * rate)
    tracks = np.zeros((2, total), dtype=np.float32)
    position = int(rng.uniform(0.2, 0.8) * rate)
    turn = rng.randrange(len(AGENT_LINES))
    overlap = 0
    while position < total:
        speaker = turn % 2
        lines, voice = (AGENT_LINES, agent) if speaker == 0 else (CUSTOMER_LINES, customer)
        samples = cache.utterance(voice, lines[(turn // 2) % len(lines)], rate)
        if turn % 4 == 3 and position > rate:  # double-talk: start before the other ends
            position -= rate
            overlap += rate
        end = min(total, position + len(samples))
        tracks[speaker, position:end] += samples[: end - position]
        position = end + int(rng.uniform(0.3, 1.5) * rate)
        turn += 1
    _write(path, tracks, rate, channels, subtype, file_format)
    return Call(path, total / rate, (agent.label, customer.label), overlap / rate)


def write_double_talk(
    path: Path,
    cache: SpeechCache,
    *,
    seconds: float,
    rate: int,
    channels: int,
    subtype: str = "PCM_16",
    file_format: str = "WAV",
    seed: int = 0,
) -> Call:
    """Like :func:`write_call`, but both parties talk at once for the whole call: each speaks
    its lines one after another with breath pauses of 0.15-0.4 s, independently of the other.
    The worst case for coding two parties in one stereo stream. `overlap_seconds` counts the
    time both are speaking."""
    rng = random.Random(seed)  # noqa: S311 - bench data
    agent, customer = _voices(seed)
    total = int(seconds * rate)
    tracks = np.zeros((2, total), dtype=np.float32)
    speaking = np.zeros((2, total), dtype=bool)
    for speaker, (lines, voice) in enumerate(((AGENT_LINES, agent), (CUSTOMER_LINES, customer))):
        position = int(rng.uniform(0.1, 0.6) * rate)
        line = rng.randrange(len(lines))
        while position < total:
            samples = cache.utterance(voice, lines[line % len(lines)], rate)
            end = min(total, position + len(samples))
            tracks[speaker, position:end] = samples[: end - position]
            speaking[speaker, position:end] = True
            position = end + int(rng.uniform(0.15, 0.4) * rate)
            line += 1
    _write(path, tracks, rate, channels, subtype, file_format)
    overlap = int(np.count_nonzero(speaking[0] & speaking[1]))
    return Call(path, total / rate, (agent.label, customer.label), overlap / rate)


def _voices(seed: int) -> tuple[Voice, Voice]:
    """The agent's and the customer's voice for `seed`: consecutive seeds rotate both, so a set
    of calls hears every voice of both engines."""
    agent = AGENT_VOICES[seed % len(AGENT_VOICES)]
    customer = CUSTOMER_VOICES[(seed + 1 + seed // len(AGENT_VOICES)) % len(CUSTOMER_VOICES)]
    return agent, customer


def _write(
    path: Path, tracks: np.ndarray, rate: int, channels: int, subtype: str, file_format: str
) -> None:
    """Write the two parties' `tracks` as a stereo call (agent left) or their mix, peak-limited
    to 0.89 so that no format clips."""
    if channels == 2:
        audio = tracks.T
    elif channels == 1:
        audio = (tracks[0] + tracks[1]) * 0.7
    else:
        raise ValueError(f"{channels} channels: calls are written mono or stereo")
    peak = float(np.max(np.abs(audio))) or 1.0
    audio = audio * min(1.0, 0.89 / peak)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype, format=file_format)


def write_calls(
    folder: Path,
    cache: SpeechCache,
    specs: Sequence[tuple[str, float, int, int, str]],
) -> list[Call]:
    """One call per (name, seconds, rate, channels, subtype) into `folder`, as WAV files."""
    return [
        write_call(
            folder / f"{name}.wav",
            cache,
            seconds=seconds,
            rate=rate,
            channels=channels,
            subtype=subtype,
            seed=index,
        )
        for index, (name, seconds, rate, channels, subtype) in enumerate(specs)
    ]
