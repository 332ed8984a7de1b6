"""The per-hour archive evidence: the contract between the pipeline and the API.

The pipeline records one materialization per tenant-hour (`recordings_dagster/assets.py`) whose
metadata holds `ArchiveEvidence.to_metadata()` and, next to it, the keys only operators and the
pipeline's own checks and sensors read. The API (`recordings_api/archives/services.py`, through
`recordings_instance`) reads the evidence back with `ArchiveEvidence.from_metadata()`. The two
apps never import each other, and this module imports neither framework, so both import it.

A key that is missing or holds the wrong type raises `EvidenceError` naming the key: an archive
is never described with a made-up empty object key or a zero size.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

# What the API reads and hands out (ArchiveEvidence).
OBJECT_KEY = "object_key"
SIZE_BYTES = "size_bytes"
SHA256 = "sha256"
RECORDING_COUNT = "recording_count"
CONVERSATION_COUNT = "conversation_count"
FAILED_RECORDING_COUNT = "failed_recording_count"

# What only operators (the Dagster UI) and the pipeline's checks and sensors read.
BUCKET = "bucket"
ETAG = "etag"
TRUNCATED_RECORDING_COUNT = "truncated_recording_count"
SOURCE_CHANGED_RECORDING_COUNT = "source_changed_recording_count"
AUDIO_SECONDS = "audio_seconds"
TENANT_ID = "tenant_id"
HOUR_START = "hour_start"
GENERATED_AT = "generated_at"  # when the hour's recordings were selected (ISO 8601)
FAILURE_REASONS = "failure_reasons"  # {reason: count} of the recordings not archived
FAILED_RECORDINGS = "failed_recordings"  # Markdown table of them, for the UI
REPLACES_SHA256 = "replaces_sha256"  # set when the hour's earlier archive was replaced

T = TypeVar("T")


class EvidenceError(ValueError):
    """A materialization's metadata lacks an evidence key, or holds a value of the wrong type."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"archive evidence {key!r} {problem}")
        self.key = key


def optional_value(metadata: Mapping[str, object], key: str, kind: type[T]) -> T | None:
    """`metadata[key]` if present, None if absent; a value of another type raises.

    For keys whose absence means something to the reader (an hour with no earlier SHA-256 to
    replace); everything the API hands out is read with `required_value`.
    """
    if key not in metadata:
        return None
    value = metadata[key]
    # bool is an int subclass; a True count is a bug, not a count of one.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise EvidenceError(
            key, f"is {value!r} ({type(value).__name__}), expected a {kind.__name__}"
        )
    return value


def required_value(metadata: Mapping[str, object], key: str, kind: type[T]) -> T:
    """`metadata[key]`, which must be present and of type `kind`."""
    value = optional_value(metadata, key, kind)
    if value is None:
        raise EvidenceError(key, "is missing")
    return value


@dataclass(frozen=True, slots=True)
class ArchiveEvidence:
    """What an hour's materialization says about its archive, as the API hands it out."""

    object_key: str
    size_bytes: int
    sha256: str
    recording_count: int
    conversation_count: int
    failed_recording_count: int

    def to_metadata(self) -> dict[str, str | int]:
        """The plain values the pipeline records (Dagster stores them as text and int)."""
        return {
            OBJECT_KEY: self.object_key,
            SIZE_BYTES: self.size_bytes,
            SHA256: self.sha256,
            RECORDING_COUNT: self.recording_count,
            CONVERSATION_COUNT: self.conversation_count,
            FAILED_RECORDING_COUNT: self.failed_recording_count,
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> "ArchiveEvidence":
        """The evidence in a materialization's plain metadata values; other keys are ignored.

        Raises `EvidenceError` naming the first key that is missing or of the wrong type.
        """
        return cls(
            object_key=required_value(metadata, OBJECT_KEY, str),
            size_bytes=required_value(metadata, SIZE_BYTES, int),
            sha256=required_value(metadata, SHA256, str),
            recording_count=required_value(metadata, RECORDING_COUNT, int),
            conversation_count=required_value(metadata, CONVERSATION_COUNT, int),
            failed_recording_count=required_value(metadata, FAILED_RECORDING_COUNT, int),
        )
