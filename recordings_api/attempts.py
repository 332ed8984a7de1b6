"""Audited attempts: every links request and download attempt is recorded once, whatever its
outcome, including the ones that prove no tenant (a missing token, a tampered link): those are
recorded without a tenant and only the host can read them.

The controller's first guard, `audited(action)`, opens the request's attempt before anything can
refuse it. What the request proves on its way (the token's tenant and subject, the day asked
for, the link's hour and object) is added to the attempt as it is learnt. A success is recorded
by the service that decided it; a refusal, an `ApiError` raised by a guard, a service or a
handler, is recorded by `audit_refusal`, the app's exception hook, so nothing else records one.
Litestar runs synchronous guards and hooks in the worker thread pool, as it runs the handlers:
they verify tokens and write to the database, which must not stall the event loop.
"""

from dataclasses import dataclass, replace
from datetime import date, datetime

import sqlalchemy as sa
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard, Scope

from recordings.downloads import AttemptContext, record_attempt
from recordings_api.errors import ApiError
from recordings_api.state import api_state
from recordings_api.wire import client_of

ATTEMPT = "audited_attempt"  # the key of the open Attempt in the request's state


@dataclass
class Attempt:
    """One audited request: its action ("list_links" or "download") and what is known of it."""

    engine: sa.Engine
    action: str
    context: AttemptContext
    recorded: bool = False  # its audit entry is written: nothing more to record

    def asked_by(self, tenant_id: str | None, subject: str | None) -> None:
        """Who is asking, once the request proves it (a token's, or the link's issuee)."""
        self.context = replace(self.context, tenant_id=tenant_id or "", client_subject=subject)

    def for_day(self, day: date) -> None:
        self.context = replace(self.context, utc_day=day)

    def for_archive(self, hour: datetime, object_key: str) -> None:
        self.context = replace(self.context, hour=hour, object_key=object_key)

    def record(self, outcome: str, status: int) -> None:
        context, action = self.context, self.action
        record_attempt(self.engine, context, action=action, outcome=outcome, status=status)
        self.recorded = True


def audited(action: str) -> Guard:
    """A guard that opens the request's attempt; first among its controller's guards, so that
    every later refusal, authentication included, is recorded."""

    async def open_attempt(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        address, agent = client_of(connection)
        context = AttemptContext("", client_address=address, user_agent=agent)
        connection.state[ATTEMPT] = Attempt(api_state(connection).engine, action, context)

    return open_attempt


def attempt_of(connection: ASGIConnection) -> Attempt:
    """The request's attempt, opened by `audited`."""
    return connection.state[ATTEMPT]


def audit_refusal(error: Exception, scope: Scope) -> None:
    """Record an audited attempt's refusal: the app's `after_exception` hook, which sees every
    exception before the exception handlers turn it into a response. A refusal its service
    recorded already (a download over the limit) is not recorded twice, and a failure that is
    not a refusal (an outage, a bug) is not recorded at all, as before."""
    attempt = scope["state"].get(ATTEMPT)
    if not isinstance(error, ApiError) or not isinstance(attempt, Attempt) or attempt.recorded:
        return
    try:
        attempt.record(error.code, error.status)
    except Exception as failure:  # answered by the exception handler instead of the refusal
        error.audit_failure = failure
