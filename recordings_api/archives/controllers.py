"""The tenants' endpoints: a day's download links, and the download link itself.

Both are audited attempts (recordings_api/attempts.py): every request is recorded, whatever its
outcome. Handlers are synchronous and run in the worker thread pool: the database, S3 and the
Dagster instance are blocking clients, and running them on the event loop would make every
client wait for the slowest request.
"""

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect

from recordings_api.archives.schemas import DayLinks
from recordings_api.archives.services import (
    BASE,
    DOWNLOADS,
    DayLinksService,
    DownloadService,
    provide_day_links,
    provide_downloads,
)
from recordings_api.attempts import audited
from recordings_api.auth import requires_tenant_reader
from recordings_api.errors import error_responses


class DayLinksController(Controller):
    path = BASE
    tags = ("tenant",)
    guards = [audited("list_links"), requires_tenant_reader]  # noqa: RUF012 (Litestar's type)
    dependencies = {"links": Provide(provide_day_links, sync_to_thread=False)}  # noqa: RUF012
    security = [{"BearerToken": []}]  # noqa: RUF012 (Litestar's declared attribute type)

    @get(
        "/",
        operation_id="listDailyConversationAudioRecordings",
        summary="Download links for the 24 hourly archives of a UTC day",
        description="Needs a bearer token with the tenant claim and the read permission. "
        "Always 24 entries, hour 0 to 23; available hours carry a signed link valid 24 hours "
        "and the archive's size, SHA-256 and counts.",
        responses=error_responses(400, 401, 403),
        sync_to_thread=True,
    )
    def list_day(
        self,
        links: NamedDependency[DayLinksService],
        utc_day: Annotated[
            str | None,
            QueryParameter(
                name="utcDay",
                description="A past UTC day, YYYY-MM-DD",
                max_length=64,
            ),
        ] = None,
    ) -> DayLinks:
        return links.list_day(utc_day)


class DownloadController(Controller):
    path = DOWNLOADS
    tags = ("tenant",)
    guards = [audited("download")]  # noqa: RUF012 (Litestar's declared attribute type)
    dependencies = {"downloads": Provide(provide_downloads, sync_to_thread=False)}  # noqa: RUF012

    @get(
        "/{token:str}",
        operation_id="downloadDailyConversationAudioRecording",
        summary="Redirect to one hourly archive (signed link, counted, audited)",
        description="The `url` of an available hour. Needs no bearer token: the link itself is "
        "the credential, bound to one tenant's one archive (sent with another tenant's bearer "
        "token, it is refused). Each success counts against the "
        "tenant's downloads per rolling hour and redirects to a presigned S3 URL valid a few "
        "minutes, so the bytes come straight from the object store.",
        status_code=307,
        response_description="Redirect (`Location`) to a short-lived presigned S3 GET URL",
        responses=error_responses(400, 401, 403, 410, 429),
        sync_to_thread=True,
    )
    def download(
        self,
        downloads: NamedDependency[DownloadService],
        token: Annotated[str, PathParameter(description="The signed link token", max_length=2048)],
    ) -> Redirect:
        return Redirect(downloads.presigned_url(token), status_code=307)
