"""A tenant's day-ready webhook: its own token (the webhook permission), or the host's on its
behalf. The tenant is the token's, or the host's path parameter; never a field of a body."""

from typing import Annotated

from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from recordings_api.archives.services import BASE
from recordings_api.auth import provide_token_tenant_id, requires_host, requires_tenant_webhooks
from recordings_api.errors import error_responses
from recordings_api.webhooks.schemas import (
    Webhook,
    WebhookDeliveryPage,
    WebhookRegistration,
    WebhookTestQueued,
)
from recordings_api.webhooks.services import (
    MAX_PAGE,
    WebhookService,
    provide_host_webhooks,
    provide_tenant_webhooks,
)

TENANT = "Needs a bearer token with the tenant claim and the webhook permission."
HOST = "Needs a bearer token with the host permission; acts on the tenant's behalf."
REGISTER = (
    "The url must be https and its name must resolve to public addresses only (not loopback, "
    "private, link-local or the cloud metadata address; checked again at every delivery). "
    "The first registration answers 201 with the signing secret, shown this once; changing "
    "the url later answers 200 and keeps the secret. The tenant's feature must be enabled."
)
ROTATE = (
    "A new signing secret, shown this once. For 24 hours events carry a second signature "
    "by the previous secret, so the receiver can switch without missing one."
)
TEST = (
    "Queues a webhook.test event, delivered like any other; follow it in the deliveries. "
    "One at a time: refused (409) while the previous test event is pending and not attempted "
    "yet; once an attempt of it has failed, asking again makes it due at once (202, its id)."
)
REMOVE = "Pending events are cancelled; the deliveries stay readable."
DELIVERIES = "Each event with its delivery state and every attempt: when, where, the answer."
CREATED = {201: ResponseSpec(Webhook, description="Registered: `secret` is shown once")}

TenantId = Annotated[str, PathParameter(description="The tenant's id", max_length=63)]
Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_PAGE, description=f"Events per page (1-{MAX_PAGE})")
]
Cursor = Annotated[
    str | None, QueryParameter(description="The previous page's nextCursor", max_length=40)
]


def _registered(result: tuple[Webhook, bool]) -> Response[Webhook]:
    body, created = result
    return Response(body, status_code=201 if created else 200)


class TenantWebhookController(Controller):
    path = f"{BASE}/webhook"
    tags = ("tenant",)
    guards = [requires_tenant_webhooks]  # noqa: RUF012 (Litestar's declared attribute type)
    dependencies = {  # noqa: RUF012 (Litestar's declared attribute type)
        "webhooks": Provide(provide_tenant_webhooks, sync_to_thread=False),
        "token_tenant_id": Provide(provide_token_tenant_id, sync_to_thread=False),
    }
    security = [{"BearerToken": []}]  # noqa: RUF012 (Litestar's declared attribute type)

    @put(
        operation_id="registerMyWebhook",
        summary="Register the day-ready webhook, or change its url",
        description=f"{TENANT} {REGISTER}",
        responses={**CREATED, **error_responses(400, 401, 403, 422)},
        sync_to_thread=True,
    )
    def register(
        self,
        webhooks: NamedDependency[WebhookService],
        token_tenant_id: NamedDependency[str],
        data: JSONBody[WebhookRegistration],
    ) -> Response[Webhook]:
        return _registered(webhooks.register(token_tenant_id, data.url))

    @get(
        operation_id="getMyWebhook",
        summary="The day-ready webhook (never its secret)",
        description=TENANT,
        responses=error_responses(401, 403, 404),
        sync_to_thread=True,
    )
    def read(
        self, webhooks: NamedDependency[WebhookService], token_tenant_id: NamedDependency[str]
    ) -> Webhook:
        return webhooks.read(token_tenant_id)

    @delete(
        operation_id="removeMyWebhook",
        summary="Remove the day-ready webhook",
        description=f"{TENANT} {REMOVE}",
        responses=error_responses(401, 403, 404),
        sync_to_thread=True,
    )
    def remove(
        self, webhooks: NamedDependency[WebhookService], token_tenant_id: NamedDependency[str]
    ) -> None:
        webhooks.remove(token_tenant_id)

    @post(
        "/secret",
        operation_id="rotateMyWebhookSecret",
        summary="Rotate the webhook's signing secret",
        description=f"{TENANT} {ROTATE}",
        status_code=200,
        responses=error_responses(401, 403, 404),
        sync_to_thread=True,
    )
    def rotate(
        self, webhooks: NamedDependency[WebhookService], token_tenant_id: NamedDependency[str]
    ) -> Webhook:
        return webhooks.rotate(token_tenant_id)

    @post(
        "/test",
        operation_id="testMyWebhook",
        summary="Send a test event to the webhook",
        description=f"{TENANT} {TEST}",
        status_code=202,
        responses=error_responses(401, 403, 404, 409),
        sync_to_thread=True,
    )
    def send_test(
        self, webhooks: NamedDependency[WebhookService], token_tenant_id: NamedDependency[str]
    ) -> WebhookTestQueued:
        return webhooks.queue_test(token_tenant_id)

    @get(
        "/deliveries",
        operation_id="listMyWebhookDeliveries",
        summary="The webhook's events and delivery attempts, newest first",
        description=f"{TENANT} {DELIVERIES}",
        responses=error_responses(400, 401, 403),
        sync_to_thread=True,
    )
    def deliveries(
        self,
        webhooks: NamedDependency[WebhookService],
        token_tenant_id: NamedDependency[str],
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> WebhookDeliveryPage:
        return webhooks.deliveries(token_tenant_id, limit, cursor)


class HostWebhookController(Controller):
    path = "/api/v1/host/tenants/{tenant_id:str}/daily-conversation-audio-recordings/webhook"
    tags = ("host",)
    guards = [requires_host]  # noqa: RUF012 (Litestar's declared attribute type)
    dependencies = {"webhooks": Provide(provide_host_webhooks, sync_to_thread=False)}  # noqa: RUF012
    security = [{"BearerToken": []}]  # noqa: RUF012 (Litestar's declared attribute type)

    @put(
        operation_id="registerTenantWebhook",
        summary="Register a tenant's day-ready webhook, or change its url",
        description=f"{HOST} {REGISTER}",
        responses={**CREATED, **error_responses(400, 401, 403, 404, 422)},
        sync_to_thread=True,
    )
    def register(
        self,
        webhooks: NamedDependency[WebhookService],
        tenant_id: TenantId,
        data: JSONBody[WebhookRegistration],
    ) -> Response[Webhook]:
        return _registered(webhooks.register(tenant_id, data.url))

    @get(
        operation_id="getTenantWebhook",
        summary="A tenant's day-ready webhook (never its secret)",
        description=HOST,
        responses=error_responses(400, 401, 403, 404),
        sync_to_thread=True,
    )
    def read(self, webhooks: NamedDependency[WebhookService], tenant_id: TenantId) -> Webhook:
        return webhooks.read(tenant_id)

    @delete(
        operation_id="removeTenantWebhook",
        summary="Remove a tenant's day-ready webhook",
        description=f"{HOST} {REMOVE}",
        responses=error_responses(400, 401, 403, 404),
        sync_to_thread=True,
    )
    def remove(self, webhooks: NamedDependency[WebhookService], tenant_id: TenantId) -> None:
        webhooks.remove(tenant_id)

    @post(
        "/secret",
        operation_id="rotateTenantWebhookSecret",
        summary="Rotate a tenant's webhook signing secret",
        description=f"{HOST} {ROTATE} The new secret is for the tenant: hand it over securely.",
        status_code=200,
        responses=error_responses(400, 401, 403, 404),
        sync_to_thread=True,
    )
    def rotate(self, webhooks: NamedDependency[WebhookService], tenant_id: TenantId) -> Webhook:
        return webhooks.rotate(tenant_id)

    @post(
        "/test",
        operation_id="testTenantWebhook",
        summary="Send a test event to a tenant's webhook",
        description=f"{HOST} {TEST}",
        status_code=202,
        responses=error_responses(400, 401, 403, 404, 409),
        sync_to_thread=True,
    )
    def send_test(
        self, webhooks: NamedDependency[WebhookService], tenant_id: TenantId
    ) -> WebhookTestQueued:
        return webhooks.queue_test(tenant_id)

    @get(
        "/deliveries",
        operation_id="listTenantWebhookDeliveries",
        summary="A tenant's webhook events and delivery attempts, newest first",
        description=f"{HOST} {DELIVERIES}",
        responses=error_responses(400, 401, 403, 404),
        sync_to_thread=True,
    )
    def deliveries(
        self,
        webhooks: NamedDependency[WebhookService],
        tenant_id: TenantId,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> WebhookDeliveryPage:
        return webhooks.deliveries(tenant_id, limit, cursor)
