"""/webhooks: the endpoints events are POSTed to, their secret, a test, their deliveries."""

from typing import Any, Literal

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Router, Status
from ninja.pagination import paginate

from mailgrant.api.auth import scope
from mailgrant.api.errors import answers
from mailgrant.api.event_schemas import (
    DeliveryOut,
    RedeliverIn,
    RedeliverOut,
    SecretOut,
    WebhookCreate,
    WebhookCreatedOut,
    WebhookOut,
    WebhookPatch,
)
from mailgrant.api.inputs import request_actor
from mailgrant.api.schemas import ObjectId, Pagination
from mailgrant.notify.models import Delivery
from mailgrant.notify.selectors import (
    delivery_get,
    delivery_list,
    delivery_public,
    webhook_endpoint_get,
    webhook_endpoint_list,
    webhook_endpoint_public,
)
from mailgrant.notify.services.deliveries import deliveries_redeliver_since, delivery_redeliver
from mailgrant.notify.services.endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_test,
    webhook_endpoint_update,
)

router = Router(tags=["webhooks"])

DeliveryState = Literal["pending", "delivered", "failed", "cancelled"]


class PublicDeliveries:
    """A page of deliveries read from the database only as far as the page goes."""

    def __init__(self, deliveries: QuerySet[Delivery]) -> None:
        self.deliveries = deliveries

    def __len__(self) -> int:
        return self.deliveries.count()

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        return [delivery_public(delivery=d) for d in self.deliveries[window]]


@router.get(
    "",
    response=answers({200: list[WebhookOut]}),
    auth=scope("read", perm="notify.view_webhookendpoint"),
)
@paginate(Pagination)
def list_webhooks(request: HttpRequest) -> Any:
    return [webhook_endpoint_public(endpoint=e) for e in webhook_endpoint_list()]


@router.post(
    "",
    response=answers({201: WebhookCreatedOut}, 409),
    auth=scope("write", perm="notify.add_webhookendpoint"),
)
def create_webhook(request: HttpRequest, body: WebhookCreate) -> Any:
    """Create an endpoint; the answer carries its signing secret, this once and never again."""
    endpoint, secret = webhook_endpoint_create(
        values=body.model_dump(exclude_none=True), actor=request_actor(request)
    )
    return Status(201, {**webhook_endpoint_public(endpoint=endpoint), "secret": secret})


@router.get(
    "/{webhook_id}",
    response=answers({200: WebhookOut}, 404),
    auth=scope("read", perm="notify.view_webhookendpoint"),
)
def get_webhook(request: HttpRequest, webhook_id: ObjectId) -> Any:
    return webhook_endpoint_public(endpoint=webhook_endpoint_get(endpoint_id=webhook_id))


@router.patch(
    "/{webhook_id}",
    response=answers({200: WebhookOut}, 404, 409),
    auth=scope("write", perm="notify.change_webhookendpoint"),
)
def update_webhook(request: HttpRequest, webhook_id: ObjectId, body: WebhookPatch) -> Any:
    """Change the fields sent (null: the field's default); the secret stays."""
    endpoint = webhook_endpoint_get(endpoint_id=webhook_id)
    values = body.model_dump(exclude_unset=True)
    if values.get("name", "") is None:
        values.pop("name")
    defaults = {"enabled": True, "include_raw": False, "raw_max_bytes": 1_000_000, "url": ""}
    values = {k: defaults.get(k) if v is None else v for k, v in values.items()}
    webhook_endpoint_update(endpoint=endpoint, values=values, actor=request_actor(request))
    return webhook_endpoint_public(endpoint=endpoint)


@router.delete(
    "/{webhook_id}",
    response=answers({204: None}, 404),
    auth=scope("write", perm="notify.delete_webhookendpoint"),
)
def delete_webhook(request: HttpRequest, webhook_id: ObjectId) -> Any:
    endpoint = webhook_endpoint_get(endpoint_id=webhook_id)
    webhook_endpoint_delete(endpoint=endpoint, actor=request_actor(request))
    return Status(204, None)


@router.post(
    "/{webhook_id}/rotate-secret",
    response=answers({200: SecretOut}, 404),
    auth=scope("write", perm="notify.change_webhookendpoint"),
)
def rotate_secret(request: HttpRequest, webhook_id: ObjectId) -> Any:
    """A new signing secret, in this answer only; the old one stops signing at once."""
    endpoint = webhook_endpoint_get(endpoint_id=webhook_id)
    _, secret = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=request_actor(request))
    return {"secret": secret}


@router.post(
    "/{webhook_id}/test",
    response=answers({201: DeliveryOut}, 404),
    auth=scope("write", perm="notify.change_webhookendpoint"),
)
def test_webhook(request: HttpRequest, webhook_id: ObjectId) -> Any:
    """Send a webhook.test event to this endpoint alone; its delivery, due at once."""
    endpoint = webhook_endpoint_get(endpoint_id=webhook_id)
    delivery = webhook_endpoint_test(endpoint=endpoint, actor=request_actor(request))
    return Status(201, delivery_public(delivery=delivery))


@router.get(
    "/{webhook_id}/deliveries",
    response=answers({200: list[DeliveryOut]}, 404),
    auth=scope("read", perm="notify.view_delivery"),
)
@paginate(Pagination)
def list_deliveries(
    request: HttpRequest,
    webhook_id: ObjectId,
    state: DeliveryState | None = None,
) -> Any:
    """The endpoint's deliveries, newest first, each with its latest attempts."""
    endpoint = webhook_endpoint_get(endpoint_id=webhook_id)
    return PublicDeliveries(delivery_list(endpoint=endpoint, state=state))


@router.post(
    "/{webhook_id}/redeliver",
    response=answers({200: RedeliverOut}, 404),
    auth=scope("write", perm="notify.change_delivery"),
)
def redeliver(request: HttpRequest, webhook_id: ObjectId, body: RedeliverIn) -> Any:
    """Deliver again, with the same webhook-id: one delivery (`delivery`), or every delivery
    of events since a time (`since`)."""
    endpoint = webhook_endpoint_get(endpoint_id=webhook_id)
    actor = request_actor(request)
    if body.delivery is not None:
        delivery = delivery_get(endpoint=endpoint, delivery_id=body.delivery)
        delivery_redeliver(delivery=delivery, actor=actor)
        return {"redelivered": 1}
    assert body.since is not None  # RedeliverIn: one of the two
    return {
        "redelivered": deliveries_redeliver_since(endpoint=endpoint, since=body.since, actor=actor)
    }
