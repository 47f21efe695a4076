"""Forms of the admin area: they parse what was typed; the rules live in `admin.operations`.

Public API: `VenueForm` (with one `<day>_open` / `<day>_opens` / `<day>_closes` trio per weekday, the
tablets' settings, and `settings()`), `SpaceForm` (`space_input()`; its photo: a file field, read whole — the
request's size is capped by the view — and judged by `admin.operations`), `UserForm` (`user_input()`), `CustomFieldForm`
(`field_input()`), `ActiveForm` (the target state of an activate/deactivate toggle), `DeleteForm`,
`show_errors(form, fields)`, `StorableForm` (the base: no NUL characters reach the database).
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, InputRequired, Length, NumberRange, Optional

from ..auth.models import ROLES
from ..booking.forms import MultiCheckboxField
from ..booking.models import GRANULARITIES, PHOTO_MAX_BYTES, SPACE_KINDS, WEEKDAYS
from ..booking.rules import WEEKDAYS_LONG
from .operations import (
    FIELD_KINDS,
    MAX_WINDOW_DAYS,
    CustomFieldInput,
    SpaceInput,
    UserInput,
    VenueSettings,
    normalise_tags,
    parse_choices,
)


class StorableForm(FlaskForm):
    """Refuses text that PostgreSQL cannot store (NUL characters) with a field error instead of a 500."""

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if isinstance(field.data, str) and "\x00" in field.data:
                field.errors = [*field.errors, "Must not contain NUL characters."]
                valid = False
        return valid


def show_errors(form: FlaskForm, fields: dict[str, str]) -> None:
    """Put an operation's messages next to the fields they name; the rest above the form."""
    for name, message in fields.items():
        if name in form._fields:
            form[name].errors = [*form[name].errors, message]
        else:
            form.form_errors.append(message)


class VenueForm(StorableForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=120)])
    timezone = StringField(
        "Time zone", validators=[InputRequired()], description="An IANA name such as Europe/London."
    )
    granularity_minutes = SelectField(
        "Time grid", coerce=int, choices=[SelectChoice(g, f"{g} minutes") for g in GRANULARITIES],
        description="Bookings start and end on this grid.",
    )
    booking_window_days = IntegerField(
        "Booking window (days)", validators=[InputRequired(), NumberRange(1, MAX_WINDOW_DAYS)],
        description=f"How far ahead people can book, 1 to {MAX_WINDOW_DAYS} days.",
    )
    max_duration_minutes = IntegerField(
        "Maximum duration (minutes)", validators=[InputRequired()],
        description="A whole number of grid steps; at most 24 hours unless overnight bookings are allowed.",
    )
    allow_overnight = BooleanField("Allow overnight bookings")
    admins_see_private = BooleanField("Admins see the titles of private bookings")
    has_pricing_rules = BooleanField(
        "Pricing rules are in use", description="Two-way calendar sync needs this off: Microsoft 365 has no paid bookings."
    )
    online_payments_enabled = BooleanField(
        "Online payments are enabled", description="Two-way calendar sync needs this off too."
    )
    # Tablets (webapp/kiosk); an empty number keeps the current value.
    kiosk_soon_minutes = IntegerField(
        "“Starting soon” (minutes)", validators=[Optional()], default=10,
        description="A room's tablet turns amber this many minutes before its next booking.",
    )
    kiosk_poll_seconds = IntegerField(
        "Refresh every (seconds)", validators=[Optional()], default=10,
        description="How often a tablet asks for its room's status (2 to 300 seconds).",
    )
    kiosk_identify = SelectField(
        "Walk-in bookings are held by",
        choices=[SelectChoice("device", "The room's tablet (an internal booking)"),
                 SelectChoice("email", "The person, who types their email"),
                 SelectChoice("badge", "The person, who scans or types their badge number")],
        default="device",
    )
    kiosk_pin = PasswordField(
        "New PIN for tablet actions", validators=[Optional(), Length(max=8)],
        description="4 to 8 digits asked before booking, extending, ending or checking in. Leave empty to keep "
                    "the current one.",
    )
    kiosk_pin_clear = BooleanField("No PIN: anyone at a tablet can act")
    checkin_required = BooleanField(
        "Check-in is required", description="Bookings of rooms with a tablet that nobody checks in to are released.",
    )
    checkin_opens_minutes = IntegerField(
        "Check-in opens (minutes before the start)", validators=[Optional()], default=10,
    )
    checkin_release_minutes = IntegerField(
        "Released when not checked in (minutes after the start)", validators=[Optional()], default=10,
    )

    day_labels = dict(zip(WEEKDAYS, WEEKDAYS_LONG))

    def day_fields(self):
        """(label, open, opens, closes) per weekday, for the template's opening-hours table."""
        return [
            (self.day_labels[day], self[f"{day}_open"], self[f"{day}_opens"], self[f"{day}_closes"])
            for day in WEEKDAYS
        ]

    def load(self, venue) -> None:
        """Fill an unsubmitted form from the venue's settings."""
        for day in WEEKDAYS:
            entry = (venue.opening_hours or {}).get(day)
            self[f"{day}_open"].data = bool(entry)
            self[f"{day}_opens"].data, self[f"{day}_closes"].data = entry or ("", "")

    def settings(self) -> VenueSettings:
        return VenueSettings(
            name=self.name.data,
            timezone=self.timezone.data,
            granularity_minutes=self.granularity_minutes.data,
            booking_window_days=self.booking_window_days.data,
            max_duration_minutes=self.max_duration_minutes.data,
            opening_hours={
                day: (self[f"{day}_opens"].data, self[f"{day}_closes"].data) if self[f"{day}_open"].data else None
                for day in WEEKDAYS
            },
            allow_overnight=self.allow_overnight.data,
            admins_see_private=self.admins_see_private.data,
            has_pricing_rules=self.has_pricing_rules.data,
            online_payments_enabled=self.online_payments_enabled.data,
            kiosk_soon_minutes=self.kiosk_soon_minutes.data,
            kiosk_poll_seconds=self.kiosk_poll_seconds.data,
            kiosk_identify=self.kiosk_identify.data,
            kiosk_pin=(self.kiosk_pin.data or "").strip() or None,
            kiosk_pin_clear=bool(self.kiosk_pin_clear.data),
            checkin_required=self.checkin_required.data,
            checkin_opens_minutes=self.checkin_opens_minutes.data,
            checkin_release_minutes=self.checkin_release_minutes.data,
        )


for _day, _label in zip(WEEKDAYS, WEEKDAYS_LONG):
    setattr(VenueForm, f"{_day}_open", BooleanField(f"Open on {_label}"))
    setattr(VenueForm, f"{_day}_opens", StringField(f"{_label} opens", filters=[lambda v: (v or "").strip()]))
    setattr(VenueForm, f"{_day}_closes", StringField(f"{_label} closes", filters=[lambda v: (v or "").strip()]))


class SpaceForm(StorableForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=120)])
    kind = SelectField("Kind", choices=[SelectChoice(k, k.capitalize()) for k in SPACE_KINDS])
    capacity = IntegerField("Capacity", validators=[InputRequired(), NumberRange(min=1, max=10_000)], default=1)
    tags = StringField("Tags", description="Comma-separated, e.g. screen, whiteboard.")
    description = TextAreaField("Description", validators=[Length(max=5000)])
    position = IntegerField("Position", validators=[Optional(), NumberRange(-100_000, 100_000)], default=0,
                            description="Lower comes first in lists.")
    active = BooleanField("Active (takes bookings)", default=True)
    depends_on = MultiCheckboxField(
        "Depends on", coerce=int,
        description="A booking of this space also blocks these (e.g. “Board A+B” depends on A and B).",
    )
    # Not restricted by file name or the browser's type: the operation reads what the bytes are.
    photo = FileField(
        "Photo", render_kw={"accept": "image/jpeg,image/png,image/webp"},
        description=f"JPEG, PNG or WebP, at most {PHOTO_MAX_BYTES // 1_000_000} MB. Shown on the room's tablet and "
                    "on its week page.",
    )
    remove_photo = BooleanField("Remove the photo")
    use_room_photo = BooleanField(
        "Use the Microsoft 365 room's photo",
        description="Shows the paired room's photo from Microsoft 365 instead (refreshed daily), when it has one.",
    )

    def set_space_choices(self, spaces, editing=None) -> None:
        self.depends_on.choices = [SelectChoice(s.id, s.name) for s in spaces if editing is None or s.id != editing.id]

    def space_input(self) -> SpaceInput:
        return SpaceInput(
            name=self.name.data,
            kind=self.kind.data,
            capacity=self.capacity.data,
            tags=normalise_tags(self.tags.data),
            description=self.description.data or "",
            position=self.position.data or 0,
            active=self.active.data,
            depends_on_ids=list(self.depends_on.data or []),
            photo=self.photo.data.read() if self.photo.data else None,  # a FileStorage with a file name, or None
            remove_photo=bool(self.remove_photo.data),
            use_room_photo=bool(self.use_room_photo.data),
        )


class UserForm(StorableForm):
    email = StringField("Email", validators=[InputRequired(), Length(max=254)])
    first_name = StringField("First name", validators=[Length(max=100)])
    last_name = StringField("Last name", validators=[Length(max=100)])
    role = SelectField("Role", choices=[SelectChoice(r, r.capitalize()) for r in ROLES], default="member")
    active = BooleanField("Active (can sign in)", default=True)
    password = PasswordField("Password", validators=[Optional(), Length(max=200)])
    badge_number = StringField(
        "Badge number", validators=[Optional(), Length(max=64)],
        description="Identifies them at the room tablets when the venue asks for badges.",
    )

    def user_input(self) -> UserInput:
        return UserInput(
            email=self.email.data,
            first_name=self.first_name.data or "",
            last_name=self.last_name.data or "",
            role=self.role.data,
            active=self.active.data,
            password=self.password.data or "",
            badge_number=(self.badge_number.data or "").strip(),
        )


class CustomFieldForm(StorableForm):
    key = StringField("Key", description="Lower-case letters, digits and _; cannot change later.")
    label = StringField("Label", validators=[InputRequired(), Length(max=120)])
    kind = SelectField("Kind", choices=[SelectChoice(k, k.capitalize()) for k in FIELD_KINDS])
    choices = TextAreaField("Choices", description="For a choice field: one a line.")
    required = BooleanField("Required")
    position = IntegerField("Position", validators=[Optional(), NumberRange(-100_000, 100_000)], default=0)

    def field_input(self) -> CustomFieldInput:
        return CustomFieldInput(
            key=self.key.data or "",
            label=self.label.data,
            kind=self.kind.data,
            choices=parse_choices(self.choices.data),
            required=self.required.data,
            position=self.position.data or 0,
        )


class ActiveForm(StorableForm):
    active = HiddenField(validators=[AnyOf(["0", "1"])])

    @property
    def target(self) -> bool:
        return self.active.data == "1"


class DeleteForm(StorableForm):
    """Only the CSRF token: deleting takes no input."""
