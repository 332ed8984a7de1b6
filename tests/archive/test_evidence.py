"""The per-hour evidence contract the pipeline writes and the API reads: what is written reads
back the same, and a missing or mistyped key is an error that names it, never an empty key or
a zero size."""

import pytest

from recordings.archive.evidence import (
    OBJECT_KEY,
    SHA256,
    SIZE_BYTES,
    ArchiveEvidence,
    EvidenceError,
    optional_value,
    required_value,
)

EVIDENCE = ArchiveEvidence(
    object_key="tenants/acme/daily-conversation-audio-recordings/2026/03/20/13.zip",
    size_bytes=123_456,
    sha256="ab" * 32,
    recording_count=3,
    conversation_count=2,
    failed_recording_count=1,
)


def test_the_metadata_reads_back_as_the_same_evidence() -> None:
    metadata = EVIDENCE.to_metadata()
    assert ArchiveEvidence.from_metadata(metadata) == EVIDENCE
    assert metadata[OBJECT_KEY] == EVIDENCE.object_key
    assert all(isinstance(value, str | int) for value in metadata.values())  # plain values


def test_keys_only_the_pipeline_reads_are_ignored() -> None:
    metadata = {**EVIDENCE.to_metadata(), "bucket": "archives", "audio_seconds": 12.5}
    assert ArchiveEvidence.from_metadata(metadata) == EVIDENCE


@pytest.mark.parametrize("key", list(EVIDENCE.to_metadata()))
def test_a_missing_key_is_named(key: str) -> None:
    metadata = EVIDENCE.to_metadata()
    del metadata[key]
    with pytest.raises(EvidenceError, match=f"'{key}' is missing") as raised:
        ArchiveEvidence.from_metadata(metadata)
    assert raised.value.key == key


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (SIZE_BYTES, "123456"),  # a number written as text
        (SIZE_BYTES, 123.0),
        (SIZE_BYTES, True),  # bool is an int to Python, not a size
        (SHA256, None),
        (OBJECT_KEY, 7),
        ("recording_count", "3"),
    ],
)
def test_a_mistyped_key_is_named(key: str, value: object) -> None:
    metadata: dict[str, object] = {**EVIDENCE.to_metadata(), key: value}
    with pytest.raises(EvidenceError, match=f"'{key}' is .*expected a") as raised:
        ArchiveEvidence.from_metadata(metadata)
    assert raised.value.key == key


def test_an_optional_key_may_be_absent_but_not_mistyped() -> None:
    assert optional_value({}, SHA256, str) is None
    assert optional_value({SHA256: "ab" * 32}, SHA256, str) == "ab" * 32
    with pytest.raises(EvidenceError, match="'sha256' is 5"):
        optional_value({SHA256: 5}, SHA256, str)
    with pytest.raises(EvidenceError, match="'sha256' is missing"):
        required_value({}, SHA256, str)
