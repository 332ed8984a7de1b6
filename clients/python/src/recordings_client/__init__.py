"""The tenant's client for daily conversation audio archives: fetch days within the download
limit, verify every ZIP, resume where it stopped, keep a manifest of what was fetched."""

from recordings_client.api import ApiError, ArchivesApi, DayLinks, HourLink
from recordings_client.fetch import FetchReport, HourOutcome, fetch_days

__all__ = [
    "ApiError",
    "ArchivesApi",
    "DayLinks",
    "FetchReport",
    "HourLink",
    "HourOutcome",
    "fetch_days",
]
