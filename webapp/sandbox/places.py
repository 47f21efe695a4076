"""Graph Places routes: rooms and room lists ([D:api-reference/v1.0/api/place-list.md], graph-facts §2.1).

Routes (on `graph.bp`, Place.Read.All):
- `GET /places/microsoft.graph.room` — every room of the tenant.
- `GET /places/microsoft.graph.roomlist` — every room list.
- `GET /places/{room-list-emailAddress}/microsoft.graph.roomlist/rooms` — the rooms of one list, addressed
  by its email address (not its id, as the docs insist); an unknown list → 404 `ErrorItemNotFound`.
The type segment is matched case-insensitively (the docs write `roomlist`, the context says `roomList`).

Query options: `$top` (default page size 100), `$skip` (the nextLink carries `$skip`), `$select`,
`$count=true`. Rooms come in display-name order.

Rendering: the room resource's properties in the order of the docs' real-tenant example (unset ones as
null); the sandbox-only `roomListEmail` and `calendarProcessing` of the stored room doc are never shown.
A room deleted through the admin API disappears from these lists.

Public helper: `render_room(doc)` → the Graph JSON of a stored room doc.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import request

from . import sandbox_state
from .auth import require
from .errors import GraphError
from .graph import bp
from .paging import collection, selected_fields

ROOM_PROPERTIES = ["id", "displayName", "address", "geoCoordinates", "phone", "nickname", "emailAddress",
                   "building", "floorNumber", "floorLabel", "label", "capacity", "bookingType", "audioDeviceName",
                   "videoDeviceName", "displayDeviceName", "isWheelChairAccessible", "tags"]
ROOM_LIST_PROPERTIES = ["id", "displayName", "address", "geoCoordinates", "phone", "emailAddress"]


def render_room(doc: dict) -> dict:
    return {name: doc.get(name) for name in ROOM_PROPERTIES}


def _render_room_list(doc: dict) -> dict:
    return {name: doc.get(name) for name in ROOM_LIST_PROPERTIES}


def _by_name(docs: list[dict]) -> list[dict]:
    return sorted(docs, key=lambda doc: (doc["displayName"].lower(), doc["id"]))


def _wants_count() -> bool:
    return request.args.get("$count", "").lower() == "true"


def _place_type(segment: str, expected: str) -> None:
    if segment.lower() != expected:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


@bp.get("/places/<type_segment>")
@require("Place.Read.All")
def list_places(type_segment: str):
    store = sandbox_state().store
    kind = type_segment.lower()
    if kind == "microsoft.graph.room":
        fields = selected_fields(ROOM_PROPERTIES, "room")
        return collection(_by_name(store.all("room")), context="places/microsoft.graph.room", default_top=100,
                          max_top=999, render=render_room, fields=fields, count=_wants_count())
    if kind == "microsoft.graph.roomlist":
        fields = selected_fields(ROOM_LIST_PROPERTIES, "roomList")
        return collection(_by_name(store.all("roomList")), context="places/microsoft.graph.roomList",
                          default_top=100, max_top=999, render=_render_room_list, fields=fields,
                          count=_wants_count())
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{type_segment}'.")


@bp.get("/places/<list_email>/<type_segment>/rooms")
@require("Place.Read.All")
def list_rooms_of_list(list_email: str, type_segment: str):
    _place_type(type_segment, "microsoft.graph.roomlist")
    store = sandbox_state().store
    room_list = next((doc for doc in store.all("roomList") if doc["emailAddress"].lower() == list_email.lower()), None)
    if room_list is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    rooms = [room for room in store.all("room") if (room.get("roomListEmail") or "").lower() == list_email.lower()]
    fields = selected_fields(ROOM_PROPERTIES, "room")
    context = f"places('{quote(room_list['emailAddress'], safe='')}')/microsoft.graph.roomList/rooms"
    return collection(_by_name(rooms), context=context, default_top=100, max_top=999, render=render_room,
                      fields=fields, count=_wants_count())
