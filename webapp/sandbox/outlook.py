"""An Outlook-like page of the sandbox: pick a tenant user, see their week, book meetings with people and rooms.

Routes (blueprint `outlook`, under /outlook; server-rendered HTML, no scripts, no external assets):
- `GET  /outlook/` → pick a user (people and room mailboxes of the tenant's directory); `?user=<id>` opens
  their week.
- `GET  /outlook/<user_id>?week=YYYY-MM-DD&tz=<zone>` → their week (Monday first), recurrences expanded,
  each event with its time, subject, private/repeating marks and every attendee's reply (rooms accept or
  decline on their own: that is the Exchange room-mailbox behaviour of `calendar`).
- `GET|POST /outlook/<user_id>/new` → the meeting form: subject, date, start/end, people, rooms (the room
  finder shows each room's free/busy for the chosen slot; "Check rooms" refreshes it without saving),
  private, repeating (daily/weekly/monthly, until a date or a number of times), notes.
- `GET|POST /outlook/<user_id>/events/<event_id>` → the same form to edit an event (an occurrence edits that
  occurrence only; a link leads to the whole series).
- `POST /outlook/<user_id>/events/<event_id>/cancel` → the organizer cancels (attendees remove it).

Every write goes through the same calendar engine as Graph (`calendar.create_event`, `update_event`,
`cancel_event`, `delete_event`) with a Graph-shaped payload, so room processing, change notifications and
delta see a booking made here exactly as one made through the API. Times are shown and entered in the page's
zone (`tz`, default `DEFAULT_ZONE`, the demo venue's).

Not protected against CSRF and needs no sign-in: it is a local test page of a sandbox tenant (a stand-in for
Outlook on the web), never deployed facing users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask import Blueprint, abort, redirect, render_template, request, url_for

from . import calendar, sandbox_state
from .clock import now, zone
from .directory import find_user
from .errors import GraphError
from .event_json import render

bp = Blueprint("outlook", __name__, url_prefix="/outlook")

DEFAULT_ZONE = "Europe/London"
REPEATS = ("none", "daily", "weekly", "monthly")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


# ---------------------------------------------------------------- directory

def _user_or_404(user_id: str) -> dict:
    user = sandbox_state().store.get("user", user_id)
    if user is None or not user.get("mailboxEnabled", True):
        abort(404)
    return user


def _mailboxes() -> tuple[list[dict], list[dict]]:
    """(people, rooms) with a mailbox, by display name."""
    users = sorted((u for u in sandbox_state().store.all("user") if u.get("mailboxEnabled", True)),
                   key=lambda u: u["displayName"].lower())
    return [u for u in users if not u.get("isRoom")], [u for u in users if u.get("isRoom")]


def _page_zone() -> str:
    name = request.values.get("tz") or DEFAULT_ZONE
    try:
        zone(name)
    except KeyError:
        return DEFAULT_ZONE
    return name


def _local(graph_value: dict) -> datetime:
    """A rendered dateTimeTimeZone (already in the page zone) → naive local datetime."""
    return datetime.fromisoformat(graph_value["dateTime"][:19])


# ---------------------------------------------------------------- pages

@bp.get("/")
def pick_user():
    if request.args.get("user"):  # the mailbox picker's submit
        return redirect(url_for(".week", user_id=request.args["user"]))
    people, rooms = _mailboxes()
    return render_template("outlook/pick.html", people=people, rooms=rooms)


@bp.get("/<user_id>")
def week(user_id: str):
    user = _user_or_404(user_id)
    tz_name = _page_zone()
    tz = zone(tz_name)
    try:
        anchor = date.fromisoformat(request.args["week"]) if request.args.get("week") else now().astimezone(tz).date()
    except ValueError:
        anchor = now().astimezone(tz).date()
    monday = anchor - timedelta(days=anchor.weekday())
    start = datetime.combine(monday, time(0), tz)
    views = calendar.calendar_view(sandbox_state(), user["id"], start, start + timedelta(days=7))
    days = [{"date": monday + timedelta(days=i), "events": []} for i in range(7)]
    for view in views:
        event = render(view, tz_name)
        local_start = _local(event["start"])
        index = (local_start.date() - monday).days
        days[max(0, min(index, 6))]["events"].append({**event, "local_start": local_start,
                                                      "local_end": _local(event["end"])})
    people, rooms = _mailboxes()
    return render_template("outlook/week.html", user=user, days=days, tz=tz_name, monday=monday,
                           previous_week=monday - timedelta(days=7), next_week=monday + timedelta(days=7),
                           today=now().astimezone(tz).date(), people=people, rooms=rooms)


@bp.route("/<user_id>/new", methods=["GET", "POST"])
def new_event(user_id: str):
    user = _user_or_404(user_id)
    form = MeetingForm.from_request(_page_zone())
    return _form_page(user, form, event=None)


@bp.route("/<user_id>/events/<event_id>", methods=["GET", "POST"])
def edit_event(user_id: str, event_id: str):
    user = _user_or_404(user_id)
    state = sandbox_state()
    try:
        event = render(calendar.get_event(state, user, event_id), _page_zone())
    except GraphError:
        abort(404)
    if request.method == "GET":
        form = MeetingForm.from_event(event, _page_zone())
    else:
        form = MeetingForm.from_request(_page_zone())
    return _form_page(user, form, event=event)


@bp.post("/<user_id>/events/<event_id>/cancel")
def cancel(user_id: str, event_id: str):
    user = _user_or_404(user_id)
    state = sandbox_state()
    try:
        event = calendar.get_event(state, user, event_id)
        if event["isOrganizer"]:
            calendar.cancel_event(state, user, event_id, request.form.get("comment") or None)
        else:
            calendar.delete_event(state, user, event_id)
    except GraphError:
        abort(404)
    week_of = datetime.fromisoformat(event["_start"]).astimezone(zone(_page_zone())).date()
    return redirect(url_for(".week", user_id=user_id, week=week_of.isoformat(), tz=_page_zone()))


def _form_page(user: dict, form: MeetingForm, event: dict | None):
    state = sandbox_state()
    error = None
    if request.method == "POST" and request.form.get("action") == "save":
        error = form.validate()
        if error is None:
            try:
                if event is None:
                    saved, _ = calendar.create_event(state, user, form.payload(repeatable=True))
                else:
                    # An occurrence keeps its series' pattern: only a master or a single event sends one.
                    repeatable = event["type"] in ("seriesMaster", "singleInstance")
                    saved = calendar.update_event(state, user, event["id"], form.payload(repeatable=repeatable))
            except GraphError as failure:
                error = failure.message
            else:
                week_of = datetime.fromisoformat(saved["_start"]).astimezone(zone(form.tz)).date()
                return redirect(url_for(".week", user_id=user["id"], week=week_of.isoformat(), tz=form.tz))
    people, rooms = _mailboxes()
    availability = _room_availability(rooms, form, ignore_uid=(event or {}).get("uid"))
    return render_template("outlook/event_form.html", user=user, form=form, event=event, error=error,
                           rooms=availability, people=people, repeats=REPEATS), 400 if error else 200


def _room_availability(rooms: list[dict], form: MeetingForm, ignore_uid: str | None) -> list[dict]:
    """Each room with what occupies it during the form's slot (the event being edited excepted)."""
    slot = form.slot()
    result = []
    for room in rooms:
        busy = []
        if slot is not None:
            for view in calendar.calendar_view(sandbox_state(), room["id"], *slot):
                if view.get("uid") != ignore_uid and view.get("showAs") != "free" and not view.get("isCancelled"):
                    busy.append(render(view, form.tz))
        result.append({"user": room, "busy": busy, "checked": room["mail"].lower() in form.rooms})
    return result


# ---------------------------------------------------------------- the meeting form

@dataclass
class MeetingForm:
    tz: str
    subject: str = ""
    day: str = ""
    start: str = "09:00"
    end: str = "10:00"
    people: str = ""  # e-mail addresses separated by commas, semicolons or spaces
    rooms: list[str] = field(default_factory=list)  # lower-cased room addresses
    private: bool = False
    repeat: str = "none"
    until: str = ""
    count: str = ""
    notes: str = ""

    @classmethod
    def from_request(cls, tz: str) -> MeetingForm:
        values = request.values
        return cls(tz=tz, subject=values.get("subject", "").strip(),
                   day=values.get("day") or now().astimezone(zone(tz)).date().isoformat(),
                   start=values.get("start") or "09:00", end=values.get("end") or "10:00",
                   people=values.get("people", ""), rooms=[r.lower() for r in values.getlist("rooms")],
                   private=values.get("private") == "on", repeat=values.get("repeat") or "none",
                   until=values.get("until", ""), count=values.get("count", ""), notes=values.get("notes", ""))

    @classmethod
    def from_event(cls, event: dict, tz: str) -> MeetingForm:
        start, end = _local(event["start"]), _local(event["end"])
        attendees = event["attendees"]
        recurrence = event.get("recurrence") or {}
        pattern, span = recurrence.get("pattern") or {}, recurrence.get("range") or {}
        repeat = {"daily": "daily", "weekly": "weekly", "absoluteMonthly": "monthly"}.get(pattern.get("type"), "none")
        return cls(
            tz=tz, subject=event.get("subject") or "", day=start.date().isoformat(),
            start=start.strftime("%H:%M"), end=end.strftime("%H:%M"),
            people=", ".join(a["emailAddress"]["address"] for a in attendees if a["type"] != "resource"),
            rooms=[a["emailAddress"]["address"].lower() for a in attendees if a["type"] == "resource"],
            private=event.get("sensitivity") == "private", repeat=repeat,
            until=span.get("endDate", "") if span.get("type") == "endDate" else "",
            count=str(span.get("numberOfOccurrences") or "") if span.get("type") == "numbered" else "",
            notes=(event.get("bodyPreview") or ""),
        )

    def slot(self) -> tuple[datetime, datetime] | None:
        try:
            day = date.fromisoformat(self.day)
            start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        except ValueError:
            return None
        tz = zone(self.tz)
        return datetime.combine(day, start, tz), datetime.combine(day, end, tz)

    def validate(self) -> str | None:
        slot = self.slot()
        if slot is None:
            return "Give a date and start and end times."
        if slot[1] <= slot[0]:
            return "The meeting must end after it starts."
        if self.repeat not in REPEATS:
            return "Choose how the meeting repeats."
        if self.repeat != "none":
            if bool(self.until) == bool(self.count):
                return "A repeating meeting ends either on a date or after a number of times."
            if self.count and (not self.count.isdigit() or int(self.count) < 1):
                return "The number of times must be a whole number of at least 1."
            if self.until:
                try:
                    if date.fromisoformat(self.until) < date.fromisoformat(self.day):
                        return "The repetition cannot end before the first meeting."
                except ValueError:
                    return "Give the last date as YYYY-MM-DD."
        return None

    def payload(self, *, repeatable: bool) -> dict:
        """The Graph create/update body this form stands for."""
        start, end = self.slot()
        rooms = [room for room in map(find_user, self.rooms) if room and room.get("isRoom")]
        people = [address for address in self.people.replace(";", " ").replace(",", " ").split() if address]
        body = {
            "subject": self.subject,
            "body": {"contentType": "text", "content": self.notes},
            "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": self.tz},
            "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": self.tz},
            "sensitivity": "private" if self.private else "normal",
            "attendees": [{"type": "required", "emailAddress": {"address": address}} for address in people]
            + [{"type": "resource", "emailAddress": {"address": room["mail"], "name": room["displayName"]}}
               for room in rooms],
            # Outlook puts the booked rooms in the location, the first one as the location's mailbox.
            "location": ({"displayName": "; ".join(room["displayName"] for room in rooms),
                          "locationEmailAddress": rooms[0]["mail"]} if rooms else {"displayName": ""}),
        }
        if repeatable:
            body["recurrence"] = self._recurrence(start)
        return body

    def _recurrence(self, start: datetime) -> dict | None:
        if self.repeat == "none":
            return None
        pattern = {"type": {"daily": "daily", "weekly": "weekly", "monthly": "absoluteMonthly"}[self.repeat],
                   "interval": 1}
        if self.repeat == "weekly":
            pattern["daysOfWeek"] = [_WEEKDAYS[start.weekday()]]
        if self.repeat == "monthly":
            pattern["dayOfMonth"] = start.day
        span = {"startDate": start.date().isoformat(), "recurrenceTimeZone": self.tz}
        if self.until:
            span.update(type="endDate", endDate=self.until)
        else:
            span.update(type="numbered", numberOfOccurrences=int(self.count))
        return {"pattern": pattern, "range": span}
