"""The one place that turns a stored event (a `calendar` view) into Graph's event JSON.

Public API:
- `PROPERTIES` — the event properties we serve, in the order Graph writes them (the `$select` vocabulary).
- `render(view, tz_name=None, *, with_type=False)` → the event as documented: `@odata.etag` = `W/"<changeKey>"`,
  `start`/`end` as dateTimeTimeZone with 7 fractional digits in UTC, or in `tz_name` (a
  `Prefer: outlook.timezone` value, Windows or IANA) when given and known; the full `recurrence` echo on a
  series master, null elsewhere; `originalStart` on occurrences and exceptions only; `onlineMeetingUrl` null
  (deprecated; `onlineMeeting.joinUrl` carries the Teams link). `with_type=True` puts
  `"@odata.type": "#microsoft.graph.event"` first, as delta items carry it.
- `remove_marker(event_id)` → the delta `@removed` item.
- `resolved_zone_name(tz_name)` → the zone name responses are written in ("UTC" for none or unknown).

Sources: [D:api-reference/v1.0/api/user-post-events.md] (key order and values of a created event),
[D:api-reference/v1.0/resources/event.md], [D:concepts/delta-query-events.md] (delta items, `@removed`),
graph-facts §3.1 and §3.5; examples kept under tests/data/graph/events/.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from .clock import graph_datetime, zone

PROPERTIES = [
    "createdDateTime", "lastModifiedDateTime", "changeKey", "categories", "transactionId",
    "originalStartTimeZone", "originalEndTimeZone", "iCalUId", "uid", "reminderMinutesBeforeStart",
    "isReminderOn", "hasAttachments", "subject", "bodyPreview", "importance", "sensitivity", "isAllDay",
    "isCancelled", "isOrganizer", "responseRequested", "seriesMasterId", "showAs", "type", "webLink",
    "onlineMeetingUrl", "isOnlineMeeting", "onlineMeetingProvider", "allowNewTimeProposals", "isDraft",
    "hideAttendees", "responseStatus", "body", "start", "end", "originalStart", "location", "locations",
    "recurrence", "attendees", "organizer", "onlineMeeting", "id",
]
_COPIED = ["categories", "transactionId", "originalStartTimeZone", "originalEndTimeZone", "iCalUId", "uid",
           "reminderMinutesBeforeStart", "isReminderOn", "hasAttachments", "subject", "bodyPreview",
           "importance", "sensitivity", "isAllDay", "isCancelled", "isOrganizer", "responseRequested",
           "seriesMasterId", "showAs", "type"]


def resolved_zone_name(tz_name: str | None) -> str:
    if tz_name:
        try:
            zone(tz_name)
            return tz_name
        except KeyError:
            pass  # an unknown preference is ignored: times come back in UTC
    return "UTC"


def _date_time_time_zone(iso_utc: str, zone_name: str) -> dict:
    return {"dateTime": graph_datetime(datetime.fromisoformat(iso_utc), zone(zone_name)), "timeZone": zone_name}


def render(view: dict, tz_name: str | None = None, *, with_type: bool = False) -> dict:
    zone_name = resolved_zone_name(tz_name)
    body: dict = {"@odata.type": "#microsoft.graph.event"} if with_type else {}
    body["@odata.etag"] = f'W/"{view["changeKey"]}"'
    body["id"] = view["id"]
    body["createdDateTime"] = view["createdDateTime"]
    body["lastModifiedDateTime"] = view["lastModifiedDateTime"]
    body["changeKey"] = view["changeKey"]
    for name in _COPIED:
        body[name] = view.get(name)
    body["webLink"] = f"https://outlook.office365.com/owa/?itemid={quote(view['id'], safe='')}&exvsurl=1&path=/calendar/item"
    body["onlineMeetingUrl"] = None
    body["isOnlineMeeting"] = view["isOnlineMeeting"]
    body["onlineMeetingProvider"] = view["onlineMeetingProvider"]
    body["allowNewTimeProposals"] = view["allowNewTimeProposals"]
    body["isDraft"] = view["isDraft"]
    body["hideAttendees"] = view["hideAttendees"]
    body["responseStatus"] = view["responseStatus"]
    body["body"] = view["body"]
    body["start"] = _date_time_time_zone(view["_start"], zone_name)
    body["end"] = _date_time_time_zone(view["_end"], zone_name)
    if view.get("originalStart"):
        body["originalStart"] = view["originalStart"]
    body["location"] = view["location"]
    body["locations"] = view["locations"]
    body["recurrence"] = view.get("recurrence")
    body["attendees"] = view["attendees"]
    body["organizer"] = view["organizer"]
    body["onlineMeeting"] = view.get("onlineMeeting")
    return body


def remove_marker(event_id: str) -> dict:
    return {"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": "deleted"}}
