"""/events: what happened, oldest first, for an app to catch up on what webhooks deliver."""

from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query, Router

from mailgrant.api.auth import scope
from mailgrant.api.errors import answers
from mailgrant.api.event_schemas import DateTimeText, EventOut, EventsPageOut, EventTypeName
from mailgrant.api.schemas import MAX_ID, MAX_PAGE
from mailgrant.common.events import event_body
from mailgrant.notify.selectors import event_get, events_page

router = Router(tags=["events"])

READ = scope("events", perm="common.view_event")


@router.get("", response=answers({200: EventsPageOut}), auth=READ)
def list_events(
    request: HttpRequest,
    type: Annotated[list[EventTypeName] | None, Query(description="repeatable; grant.*")] = None,
    mailbox: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    client: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    subject: Annotated[
        str,
        Query(max_length=200, description="app_label.model, or app_label.model:id"),
    ] = "",
    since: DateTimeText | None = None,
    until: DateTimeText | None = None,
    after: Annotated[
        str,
        Query(max_length=40, description="the `next` of the previous page, or an event's id"),
    ] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Any:
    """Events oldest first after the cursor `after`: poll with `after=<next>` and every event
    comes exactly once, however the polls fall between new events."""
    page = events_page(
        types=type or [],
        mailbox=mailbox,
        client=client,
        subject=subject,
        since=since,
        until=until,
        after=after,
        limit=limit,
    )
    return {
        "events": [event_body(e) for e in page.events],
        "next": page.next,
        "has_more": page.has_more,
    }


@router.get("/{uid}", response=answers({200: EventOut}, 404), auth=READ)
def get_event(request: HttpRequest, uid: Annotated[str, Path(min_length=1, max_length=40)]) -> Any:
    return event_body(event_get(uid=uid))
