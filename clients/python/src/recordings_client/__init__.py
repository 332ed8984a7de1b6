"""The tenant's client for daily conversation audio archives: fetch days within the download
limit, verify every ZIP, resume where it stopped, keep a manifest of what was fetched; and
verify the day-ready webhook events the service posts."""

from recordings_client.api import ApiError, ArchivesApi, DayLinks, HourLink, NetworkError
from recordings_client.fetch import (
    FetchReport,
    FolderBusy,
    HourOutcome,
    Manifest,
    VerificationError,
    VerifiedArchive,
    fetch_days,
    verify_archive,
)
from recordings_client.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "ApiError",
    "ArchivesApi",
    "DayLinks",
    "FetchReport",
    "FolderBusy",
    "HourLink",
    "HourOutcome",
    "Manifest",
    "NetworkError",
    "VerificationError",
    "VerifiedArchive",
    "WebhookVerificationError",
    "fetch_days",
    "verify_archive",
    "verify_webhook",
]
