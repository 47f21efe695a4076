"""The booking form of the staff pages: field definitions, and translation to and from `BookingInput`.

Public API:
- `booking_form(venue, user, *, formdata=None, initial=None, scope=False, keep_space_ids=())` → a `BookingForm` for the venue
  (its spaces, grid times, custom fields; `kind` and `holder` only for admins; `scope` for series edits).
- `BookingForm.to_input(venue, default_kind, keep_rrule=None)` → `BookingInput` (call after `validate()`).
- `BookingForm.add_errors(fields)`: place a `ValidationError.fields` dict next to the matching fields.
- `initial_from_input(data, venue, holder_email)` → the form's initial values for an edit.
- `initial_for_slot(venue, space_id, start)` → initial values of a new booking on a clicked slot.

Times: the form speaks venue wall-clock (a date and two `HH:MM` choices on the venue grid, `24:00` meaning
midnight at the end of the day); `to_input` turns them into aware UTC with `timeutil.localize`. The repeat
section builds an RRULE from the subset `booking.recurrence` supports.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    SelectChoice,
    DateField,
    EmailField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from ..auth.models import User, normalise_email
from ..extensions import db
from ..timeutil import localize, to_local
from .models import Venue
from .operations import MAX_TITLE, BookingInput
from .recurrence import DAY_CODES, Recurrence, RecurrenceError

FALLBACK_HOURS = (7 * 60, 20 * 60)  # minutes; the grid shown when the venue sets no opening hours
# Days the pages accept: wide enough for any booking, narrow enough that a day ± a week never overflows.
EARLIEST_DAY, LATEST_DAY = date(1971, 1, 1), date(9998, 12, 31)
DEFAULT_MINUTES = 60


def options(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


REPEATS = options([("none", "Does not repeat"), ("DAILY", "Daily"), ("WEEKLY", "Weekly"), ("MONTHLY", "Monthly"), ("YEARLY", "Yearly")])
MONTHLY_BY = options(
    [
        ("monthday", "On the same day of the month"),
        ("weekday", "On the same weekday (e.g. the 2nd Tuesday)"),
        ("last", "On the last such weekday of the month"),
    ]
)
SCOPES = options([("this", "This occurrence only"), ("following", "This and the following ones"), ("all", "The whole series")])
KINDS = options([("regular", "Regular booking"), ("internal", "Internal (no holder's calendar)"), ("unavailable", "Unavailable (blocked)")])
ENDS = options([("count", "After a number of times"), ("until", "On a date")])
WEEKDAYS = options(zip(DAY_CODES, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")))

# Where each `ValidationError.fields` key of the operations is shown on this form.
FIELD_FOR_ERROR = {
    "space_ids": "spaces",
    "start": "start_time",
    "end": "end_time",
    "title": "title",
    "description": "description",
    "attendees": "attendees",
    "kind": "kind",
    "holder_id": "holder",
    "rrule": "repeat",
    "scope": "scope",
    "private": "private",
    "online_meeting": "online_meeting",
}
_ATTENDEE_SEPARATORS = re.compile(r"[,;\s]+")


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def minutes_label(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_minutes(text: str) -> int:
    hours, mins = text.split(":")
    return int(hours) * 60 + int(mins)


def venue_minutes(venue: Venue) -> tuple[int, int]:
    """The widest opening hours of the week in minutes after midnight (end may be 1440)."""
    spans = [venue.hours_for(day) for day in range(7)]
    spans = [s for s in spans if s]
    if not spans:
        return FALLBACK_HOURS
    opens = min(o.hour * 60 + o.minute for o, _ in spans)
    closes = max(1440 if c == time.max else c.hour * 60 + c.minute for _, c in spans)
    return opens, closes


def time_choices(venue: Venue, extra: tuple[str, ...] = ()) -> tuple[list[SelectChoice], list[SelectChoice]]:
    """Start and end choices on the grid within the widest opening hours (plus values an edit brings)."""
    grid = venue.granularity_minutes
    opens, closes = venue_minutes(venue)
    first = opens - opens % grid
    last = closes + (-closes % grid)
    starts = {minutes_label(m) for m in range(first, min(last, 1440), grid)}
    ends = {minutes_label(m) for m in range(first + grid, min(last, 1440) + 1, grid)}
    for value in extra:
        if value:
            starts.add(value)
            ends.add(value)
    starts.discard("24:00")
    return [SelectChoice(v) for v in sorted(starts)], [SelectChoice(v) for v in sorted(ends)]


class BookingForm(FlaskForm):
    class Meta:
        csrf = False  # CSRFProtect checks every POST, from the form field or htmx's X-CSRFToken header

    scope = RadioField("Change", choices=SCOPES, default="this")
    occurrence = HiddenField()
    title = StringField("Title", validators=[Length(max=MAX_TITLE)], render_kw={"maxlength": MAX_TITLE})
    spaces = SelectMultipleField("Spaces", coerce=int, validators=[InputRequired("Choose at least one space.")])
    date = DateField("Date", validators=[InputRequired("Enter a date.")])
    start_time = SelectField("Start", validators=[InputRequired("Choose a start time.")])
    end_time = SelectField("End", validators=[InputRequired("Choose an end time.")])
    description = TextAreaField("Description", validators=[Length(max=10_000)], render_kw={"rows": 3})
    private = BooleanField("Private (others see “Private booking”)")
    online_meeting = BooleanField(
        "Online meeting (Teams)",
        description="For spaces linked to Microsoft 365 rooms: Outlook adds a Teams link to the event, shown here once made.",
    )
    attendees = TextAreaField(
        "Attendees", description="Email addresses, separated by commas or new lines.", render_kw={"rows": 2}
    )
    kind = SelectField("Kind", choices=KINDS, default="regular")
    holder = EmailField("Holder", description="Email of the person the booking is for; empty: you.")
    repeat = SelectField("Repeat", choices=REPEATS, default="none")
    interval = IntegerField("Every", default=1, validators=[Optional(), NumberRange(1, 99, "Between 1 and 99.")])
    weekdays = MultiCheckboxField("On", choices=WEEKDAYS)
    monthly_by = RadioField("Monthly", choices=MONTHLY_BY, default="monthday")
    ends = RadioField("Ends", choices=ENDS, default="count")
    count = IntegerField("Times", default=10, validators=[Optional(), NumberRange(1, 1500, "Between 1 and 1500.")])
    until = DateField("Until", validators=[Optional()])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.general_errors: list[str] = []
        self.holder_user: User | None = None

    @property
    def custom_field_names(self) -> list[str]:
        return [name for name in self._fields if name.startswith("cf_")]

    def validate_holder(self, field) -> None:
        email = normalise_email(field.data or "")
        if not email:
            return
        user = self.holder_user = self._find_user(email)
        if user is None or not user.active:
            raise ValidationError("No active user has that email address.")

    @staticmethod
    def _find_user(email: str) -> User | None:
        return db.session.scalar(select(User).where(User.email == email))

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in (self.date, self.until):
            if field.data and not EARLIEST_DAY <= field.data <= LATEST_DAY:
                field.errors.append(f"Choose a date between {EARLIEST_DAY.year} and {LATEST_DAY.year}.")
                valid = False
        if self.repeat.data == "none":
            return valid
        if self.interval.data is None and not self.interval.errors:
            self.interval.errors.append("Enter how often it repeats.")
        if self.ends.data == "count" and self.count.data is None and not self.count.errors:
            self.count.errors.append("Enter how many times.")
        if self.ends.data == "until":
            if self.until.data is None and not self.until.errors:
                self.until.errors.append("Enter the last date.")
            elif self.until.data and self.date.data and self.until.data < self.date.data:
                self.until.errors.append("The last date must be on or after the first one.")
        if self.repeat.data == "MONTHLY" and self.monthly_by.data == "last" and self.date.data:
            if (self.date.data + timedelta(days=7)).month == self.date.data.month:
                self.monthly_by.errors.append(f"{self.date.data:%d %B} is not the last {self.date.data:%A} of its month.")
        return valid and not any(f.errors for f in (self.interval, self.count, self.until, self.monthly_by))

    # ------------------------------------------------------------------ form → BookingInput

    def interval_utc(self, venue: Venue) -> tuple[datetime, datetime]:
        tz = venue.tz
        midnight = datetime.combine(self.date.data, time.min)
        start = localize(midnight + timedelta(minutes=parse_minutes(self.start_time.data)), tz)
        end = localize(midnight + timedelta(minutes=parse_minutes(self.end_time.data)), tz)
        return start, end

    def repeat_values(self) -> dict:
        """The repeat section as typed, normalised so two equal rules compare equal."""
        if self.repeat.data == "none":
            return {"repeat": "none"}
        values = {"repeat": self.repeat.data, "interval": self.interval.data or 1}
        if self.repeat.data == "WEEKLY":
            values["weekdays"] = tuple(sorted(self.weekdays.data or (), key=DAY_CODES.index))
        if self.repeat.data == "MONTHLY":
            values["monthly_by"] = self.monthly_by.data
        values["ends"] = self.ends.data
        values["end"] = self.count.data if self.ends.data == "count" else self.until.data
        return values

    def rrule(self) -> str | None:
        values = self.repeat_values()
        if values["repeat"] == "none":
            return None
        parts = [f"FREQ={values['repeat']}"]
        if values["interval"] != 1:
            parts.append(f"INTERVAL={values['interval']}")
        if values.get("weekdays"):
            parts.append("BYDAY=" + ",".join(values["weekdays"]))
        day = self.date.data
        if values.get("monthly_by") == "weekday":
            parts.append(f"BYDAY={(day.day - 1) // 7 + 1}{DAY_CODES[day.weekday()]}")
        elif values.get("monthly_by") == "last":
            parts.append(f"BYDAY=-1{DAY_CODES[day.weekday()]}")
        if values["ends"] == "count":
            parts.append(f"COUNT={values['end']}")
        else:
            parts.append(f"UNTIL={values['end']:%Y%m%d}")
        return ";".join(parts)

    def to_input(self, venue: Venue, default_kind: str = "regular", keep_rrule: str | None = None) -> BookingInput:
        """`keep_rrule`: the series' current rule, kept verbatim when the repeat section is unchanged, so an
        edit of one occurrence is not mistaken for a change of the whole pattern."""
        start, end = self.interval_utc(venue)
        rrule = self.rrule()
        if keep_rrule is not None and self.repeat_values() == repeat_values_from_rule(keep_rrule):
            rrule = keep_rrule
        custom = {name[3:]: (self[name].data or "").strip() for name in self.custom_field_names}
        return BookingInput(
            space_ids=list(self.spaces.data or []),
            start=start,
            end=end,
            title=self.title.data or "",
            description=self.description.data or "",
            private=bool(self.private.data),
            online_meeting=bool(self.online_meeting.data),
            kind=self.kind.data if "kind" in self else default_kind,
            attendees=[a for a in _ATTENDEE_SEPARATORS.split(self.attendees.data or "") if a],
            custom_fields={k: v for k, v in custom.items() if v},
            rrule=rrule,
            holder_id=self.holder_user.id if "holder" in self and self.holder_user else None,
        )

    def add_errors(self, fields: dict[str, str]) -> None:
        for key, message in fields.items():
            name = FIELD_FOR_ERROR.get(key)
            if key.startswith("custom_fields."):
                name = "cf_" + key.split(".", 1)[1]
            if name and name in self:
                self[name].errors = [*self[name].errors, message]
            else:
                self.general_errors.append(message)


def repeat_values_from_rule(rrule: str) -> dict:
    """What the repeat section shows for an existing rule (see `BookingForm.repeat_values`)."""
    try:
        rule = Recurrence.parse(rrule)
    except RecurrenceError:
        return {"repeat": "none"}
    values = {"repeat": rule.freq, "interval": rule.interval}
    if rule.freq == "WEEKLY":
        values["weekdays"] = rule.weekdays
    if rule.freq == "MONTHLY":
        values["monthly_by"] = "last" if rule.nth_weekday and rule.nth_weekday[0] < 0 else "weekday" if rule.nth_weekday else "monthday"
    values["ends"] = "count" if rule.count is not None else "until"
    values["end"] = rule.count if rule.count is not None else rule.until
    return values


def initial_from_input(data: BookingInput, venue: Venue, holder_email: str = "") -> dict:
    tz = venue.tz
    start, end = to_local(data.start, tz), to_local(data.end, tz)
    end_minutes = (end.date() - start.date()).days * 1440 + end.hour * 60 + end.minute
    initial = {
        "title": data.title,
        "spaces": data.space_ids,
        "date": start.date(),
        "start_time": minutes_label(start.hour * 60 + start.minute),
        "end_time": minutes_label(min(end_minutes, 1440)),
        "description": data.description,
        "private": data.private,
        "online_meeting": data.online_meeting,
        "attendees": "\n".join(data.attendees),
        "kind": data.kind,
        "holder": holder_email,
    }
    for key, value in (data.custom_fields or {}).items():
        initial["cf_" + key] = value
    if data.rrule:
        values = repeat_values_from_rule(data.rrule)
        initial.update(repeat=values["repeat"], interval=values["interval"], ends=values["ends"])
        initial["weekdays"] = list(values.get("weekdays", ()))
        initial["monthly_by"] = values.get("monthly_by", "monthday")
        initial["count" if values["ends"] == "count" else "until"] = values["end"]
    return initial


def initial_for_slot(venue: Venue, space_id: int | None, start: datetime) -> dict:
    """A new booking on a clicked slot: one hour (or one grid step when longer), ending by closing time."""
    local = to_local(start, venue.tz)
    begin = local.hour * 60 + local.minute
    grid = venue.granularity_minutes
    length = max(grid, DEFAULT_MINUTES + (-DEFAULT_MINUTES % grid))
    hours = venue.hours_for(local.weekday())
    closes = 1440 if hours is None or hours[1] == time.max else hours[1].hour * 60 + hours[1].minute
    end = min(begin + length, max(closes, begin + grid), 1440)
    return {
        "spaces": [space_id] if space_id else [],
        "date": local.date(),
        "start_time": minutes_label(begin),
        "end_time": minutes_label(end),
    }


def _is_clock_value(text) -> bool:
    """`HH:MM` between 00:00 and 24:00: the only shapes the time choices may be widened with."""
    if not isinstance(text, str) or not re.fullmatch(r"\d\d:[0-5]\d", text):
        return False
    return parse_minutes(text) <= 1440


def booking_form(
    venue: Venue, user, *, formdata=None, initial: dict | None = None, scope: bool = False, keep_space_ids=()
) -> BookingForm:
    """`formdata` None renders `initial`; `keep_space_ids`: spaces an edited booking already has, offered
    even when no longer active so the form can show them."""

    class VenueBookingForm(BookingForm):
        pass

    for definition in venue.custom_fields:
        description = "Required." if definition.required else ""
        if definition.kind == "choice":
            field = SelectField(
                definition.label,
                choices=[SelectChoice("", "—"), *map(SelectChoice, definition.choices)],
                default="",
                description=description,
            )
        else:
            field = StringField(definition.label, validators=[Length(max=500)], description=description)
        setattr(VenueBookingForm, "cf_" + definition.key, field)

    initial = dict(initial or {})
    form = VenueBookingForm(formdata=formdata, data=initial)
    typed = (formdata.get("start_time"), formdata.get("end_time")) if formdata is not None else ()
    extra = tuple(v for v in (*typed, initial.get("start_time"), initial.get("end_time")) if _is_clock_value(v))
    form.start_time.choices, form.end_time.choices = time_choices(venue, extra)
    form.spaces.choices = [SelectChoice(s.id, s.name) for s in venue.spaces if s.active or s.id in keep_space_ids]
    if not user.is_admin:
        del form.kind
        del form.holder
    if not scope:
        del form.scope
    return form
