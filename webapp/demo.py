"""Demo data: a realistic office to click through after `make run`.

Public API:
- `seed_demo()` → True if it seeded, False if a venue exists already (then it changes nothing). Runs in an
  app context (`flask --app app seed-demo`).
- `DEMO_PASSWORD`, `DEMO_ADMIN_EMAIL`, `DEMO_MEMBER_EMAIL`: the sign-ins `scripts/run.py` prints; `ROOMS`:
  the demo rooms as (name, capacity, tags, description).
- `connect_demo_to_sandbox()` → `DemoConnection(connected, message, pairs, unpaired)`: connects the demo venue
  to the Microsoft 365 sandbox tenant and pairs its 8 rooms (`flask --app app connect-demo`, which `make run`
  runs once the sandbox and the web server are up). Only when there is something to do: the demo venue (and
  its admin) exists, the venue has no integration settings yet, and the Graph settings name the sandbox's
  tenant (`instance/sandbox.env`, see webapp/graph/settings.py); otherwise it changes nothing and
  `connected` is False, with the reason in `message`. It saves the integration settings through
  `integration.operations.save_settings` (butler: the sandbox's; webhooks at `PUBLIC_BASE_URL`; directory
  search and photos on), so the 8 live checks run, then pairs every active room of the venue with the
  sandbox room of the same name through `sync.pairs.create_pair` (the demo admin as actor; each pair queues
  its initial sync). Desks stay unpaired. Raises `DemoConnectError` (nothing paired; a failed check saves
  nothing either) when the settings are unusable or a check fails, e.g. because the sandbox is not up.

What it makes: the venue "HQ" (Europe/London, 15-minute grid, open Mon–Fri 07:00–21:00 and Sat 09:00–17:00),
8 rooms (one of them, "Board room A+B", depends on A and B) and 12 desks with tags, an optional "Cost centre"
choice field, 20 users sharing `DEMO_PASSWORD`, and this week's and next week's bookings: stand-up series,
weekly meetings, one-off meetings, desk bookings, private bookings and an internal block.

Every booking goes through `booking.operations.create_booking`, so venue rules and the overlap check hold.
Bookings that start in the past (this week's history, series that began on Monday) skip the venue rules,
which would refuse them as past (the plan keeps to the rules otherwise), but never the overlap check; a
booking that the rules or a conflict refuse is left out and logged.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import select

from .auth.models import User
from .booking.errors import ConflictError, ValidationError
from .booking.models import CustomField, Space, Venue
from .booking.operations import BookingInput, create_booking
from .extensions import db
from .timeutil import localize, now_utc, to_local

DEMO_PASSWORD = "roomsync"
DEMO_ADMIN_EMAIL = "admin@roomsync.test"
DEMO_MEMBER_EMAIL = "priya.shah@roomsync.test"

OPENING_HOURS = {
    "mon": ["07:00", "21:00"],
    "tue": ["07:00", "21:00"],
    "wed": ["07:00", "21:00"],
    "thu": ["07:00", "21:00"],
    "fri": ["07:00", "21:00"],
    "sat": ["09:00", "17:00"],
    "sun": None,
}

# (name, capacity, tags, description); "Board room A+B" is the two board rooms with the wall folded away.
ROOMS = [
    ("Board room A", 10, ["video", "whiteboard", "floor-2"], "Screen, ceiling microphones, folding wall to B."),
    ("Board room B", 8, ["video", "floor-2"], "Screen and speakerphone, folding wall to A."),
    ("Board room A+B", 20, ["video", "whiteboard", "floor-2"], "Both board rooms with the folding wall open."),
    ("Focus room 1", 2, ["phone", "floor-1"], "Soundproofed booth for calls."),
    ("Focus room 2", 2, ["phone", "floor-1"], "Soundproofed booth for calls."),
    ("Atrium", 60, ["projector", "catering", "floor-1"], "Town halls, talks and socials."),
    ("Studio", 8, ["video", "whiteboard", "floor-1"], "Writable walls, standing table."),
    ("Library", 6, ["quiet", "floor-2"], "Armchairs and a long table; no calls."),
]
COMBINED_ROOM = ("Board room A+B", ("Board room A", "Board room B"))
DESK_COUNT = 12

COST_CENTRES = ["Engineering", "Sales", "Marketing", "Operations", "People"]

ADMIN = (DEMO_ADMIN_EMAIL, "Alex", "Morgan")
MEMBERS = [
    ("Priya", "Shah"), ("Tom", "Baker"), ("Chloe", "Evans"), ("Daniel", "Okafor"), ("Emma", "Wilson"),
    ("George", "Hughes"), ("Hannah", "Clarke"), ("Isaac", "Lewis"), ("Jasmine", "Patel"), ("Kofi", "Mensah"),
    ("Laura", "Bennett"), ("Marcus", "Reid"), ("Nadia", "Rahman"), ("Oliver", "Price"), ("Rosa", "Martinez"),
    ("Samuel", "Wright"), ("Sophie", "Turner"), ("Tariq", "Hussain"), ("Zoe", "Campbell"),
]
WEEKDAYS_RULE = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"


@dataclass(frozen=True)
class PlannedBooking:
    """A booking relative to this week's Monday: `day` 0 is Monday, 7 next Monday; times are venue-local."""

    holder: str  # the part of the email before @
    spaces: tuple[str, ...]
    day: int
    start: str
    end: str
    title: str
    rrule: str | None = None
    private: bool = False
    kind: str = "regular"
    attendees: tuple[str, ...] = ()
    cost_centre: str | None = None
    description: str = ""


MEETINGS = [
    # Series
    PlannedBooking("daniel.okafor", ("Studio",), 0, "09:30", "09:45", "Engineering stand-up",
                   f"{WEEKDAYS_RULE};COUNT=10", cost_centre="Engineering",
                   attendees=("isaac.lewis", "kofi.mensah", "tariq.hussain", "zoe.campbell")),
    PlannedBooking("emma.wilson", ("Board room B",), 0, "09:00", "09:15", "Sales huddle", f"{WEEKDAYS_RULE};COUNT=10",
                   attendees=("marcus.reid", "george.hughes"), cost_centre="Sales"),
    PlannedBooking("chloe.evans", ("Board room A",), 1, "14:00", "15:00", "Product team weekly", "FREQ=WEEKLY;COUNT=8",
                   attendees=("hannah.clarke", "daniel.okafor", "priya.shah"), cost_centre="Engineering"),
    PlannedBooking("laura.bennett", ("Board room A+B",), 3, "10:00", "11:00", "Leadership sync", "FREQ=WEEKLY;COUNT=8",
                   attendees=("admin", "daniel.okafor", "emma.wilson", "nadia.rahman"), cost_centre="Operations"),
    PlannedBooking("tom.baker", ("Desk 3",), 0, "09:00", "17:00", "Desk", "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4"),
    # This week
    PlannedBooking("emma.wilson", ("Board room B",), 0, "11:00", "12:00", "Client call — Northwind",
                   attendees=("marcus.reid",), cost_centre="Sales"),
    PlannedBooking("priya.shah", ("Focus room 1",), 0, "13:00", "13:30", "1:1 Priya / Daniel",
                   attendees=("daniel.okafor",)),
    PlannedBooking("hannah.clarke", ("Studio",), 1, "10:00", "11:30", "Design review: booking flow",
                   attendees=("chloe.evans", "priya.shah"), cost_centre="Engineering"),
    PlannedBooking("sophie.turner", ("Atrium",), 1, "12:30", "13:30", "Lunch & learn: accessible forms",
                   cost_centre="People", description="Sandwiches from 12:15."),
    PlannedBooking("admin", ("Atrium",), 2, "07:00", "09:00", "AV maintenance", kind="internal",
                   description="Projector lamp and microphone batteries."),
    PlannedBooking("jasmine.patel", ("Focus room 2",), 2, "14:00", "14:30", "Doctor's appointment (call)",
                   private=True),
    PlannedBooking("daniel.okafor", ("Board room A",), 2, "15:00", "16:30", "Interview: backend engineer",
                   attendees=("isaac.lewis",), cost_centre="People"),
    PlannedBooking("laura.bennett", ("Board room A+B",), 3, "13:00", "16:00", "Quarterly planning",
                   attendees=("admin", "chloe.evans", "emma.wilson"), cost_centre="Operations"),
    PlannedBooking("samuel.wright", ("Library",), 4, "10:00", "11:00", "Book club"),
    PlannedBooking("oliver.price", ("Atrium",), 4, "16:00", "18:00", "Friday drinks", cost_centre="People"),
    PlannedBooking("rosa.martinez", ("Studio",), 5, "10:00", "13:00", "Saturday workshop: customer journeys",
                   cost_centre="Marketing"),
    # Next week
    PlannedBooking("marcus.reid", ("Board room B",), 7, "10:00", "11:00", "Supplier negotiation", private=True,
                   cost_centre="Sales"),
    PlannedBooking("nadia.rahman", ("Atrium",), 8, "09:00", "12:00", "New starter induction",
                   cost_centre="People", description="Welcome, IT set-up and a tour of the building."),
    PlannedBooking("george.hughes", ("Board room A",), 8, "15:30", "16:30", "Pricing review", cost_centre="Sales"),
    PlannedBooking("chloe.evans", ("Focus room 1",), 9, "11:00", "12:00", "Interview: product designer",
                   cost_centre="People"),
    PlannedBooking("daniel.okafor", ("Studio",), 9, "13:00", "14:00", "Sprint demo",
                   attendees=("chloe.evans", "hannah.clarke", "isaac.lewis", "kofi.mensah")),
    PlannedBooking("zoe.campbell", ("Library",), 10, "14:00", "15:00", "Mentoring", attendees=("kofi.mensah",)),
    PlannedBooking("admin", ("Board room A+B",), 11, "09:30", "17:00", "Customer advisory board",
                   attendees=("laura.bennett", "emma.wilson"), cost_centre="Sales"),
]

# Desk days: each weekday of both weeks, a few people take a desk for the day.
DESK_SHIFTS = [("09:00", "17:00"), ("09:00", "17:00"), ("08:00", "16:00"), ("10:00", "18:00")]


def seed_demo() -> bool:
    if db.session.scalar(select(Venue.id).limit(1)) is not None:
        return False
    venue = _venue()
    spaces = _spaces(venue)
    users = _users()
    db.session.commit()

    tz = venue.tz
    today = to_local(now_utc(), tz).date()
    monday = today - timedelta(days=today.weekday())
    plans = MEETINGS + _desk_days(monday, users)
    created = sum(_book(venue, spaces, users, monday, plan) for plan in plans)
    current_app.logger.info("Demo: %d of %d bookings created.", created, len(plans))
    return True


def _venue() -> Venue:
    venue = Venue(
        name="HQ",
        timezone="Europe/London",
        granularity_minutes=15,
        booking_window_days=180,
        max_duration_minutes=8 * 60,
        opening_hours=OPENING_HOURS,
    )
    venue.custom_fields.append(
        CustomField(key="cost_centre", label="Cost centre", kind="choice", choices=COST_CENTRES, required=False)
    )
    db.session.add(venue)
    return venue


def _spaces(venue: Venue) -> dict[str, Space]:
    spaces: dict[str, Space] = {}
    for position, (name, capacity, tags, description) in enumerate(ROOMS):
        spaces[name] = Space(venue=venue, name=name, kind="room", capacity=capacity, tags=tags,
                             description=description, position=position)
    for number in range(1, DESK_COUNT + 1):
        zone = "zone-north" if number <= DESK_COUNT // 2 else "zone-south"
        tags = ["desk", zone, "dual-monitor" if number % 2 else "single-monitor"]
        if number in (6, 12):
            tags.append("standing")
        spaces[f"Desk {number}"] = Space(venue=venue, name=f"Desk {number}", kind="desk", capacity=1, tags=tags,
                                         position=len(ROOMS) + number)
    combined, parts = COMBINED_ROOM
    spaces[combined].depends_on = [spaces[name] for name in parts]
    db.session.add_all(spaces.values())
    return spaces


def _users() -> dict[str, User]:
    """Every demo user by the part of the email before @; users that exist already are kept as they are."""
    people = [ADMIN] + [(f"{first.lower()}.{last.lower()}@roomsync.test", first, last) for first, last in MEMBERS]
    users: dict[str, User] = {}
    for email, first, last in people:
        user = db.session.scalar(select(User).where(User.email == email))
        if user is None:
            user = User(email=email, first_name=first, last_name=last,
                        role="admin" if email == DEMO_ADMIN_EMAIL else "member")
            user.set_password(DEMO_PASSWORD)
            db.session.add(user)
        users[email.split("@")[0]] = user
    return users


def _desk_days(monday: date, users: dict[str, User]) -> list[PlannedBooking]:
    # Seeded by the date, so a re-seed on the same day gives the same office.
    rng = random.Random(monday.toordinal())
    regular_desks = {name for plan in MEETINGS if plan.rrule for name in plan.spaces}  # someone's fixed days
    desk_names = [f"Desk {n}" for n in range(1, DESK_COUNT + 1) if f"Desk {n}" not in regular_desks]
    people = [key for key, user in users.items() if not user.is_admin and key != "tom.baker"]
    plans = []
    for day in (0, 1, 2, 3, 4, 7, 8, 9, 10, 11):
        for holder, desk in zip(rng.sample(people, rng.randint(4, 7)), rng.sample(desk_names, 7)):
            start, end = rng.choice(DESK_SHIFTS)
            plans.append(PlannedBooking(holder, (desk,), day, start, end, "Desk"))
    return plans


def _book(venue: Venue, spaces: dict[str, Space], users: dict[str, User], monday: date, plan: PlannedBooking) -> bool:
    tz = venue.tz
    day = monday + timedelta(days=plan.day)
    start = localize(datetime.combine(day, time.fromisoformat(plan.start)), tz)
    end = localize(datetime.combine(day, time.fromisoformat(plan.end)), tz)
    holder = users[plan.holder]
    data = BookingInput(
        space_ids=[spaces[name].id for name in plan.spaces],
        start=start,
        end=end,
        title=plan.title,
        description=plan.description,
        private=plan.private,
        kind=plan.kind,
        attendees=[users[key].email for key in plan.attendees],
        custom_fields={"cost_centre": plan.cost_centre} if plan.cost_centre else {},
        rrule=plan.rrule,
    )
    try:
        create_booking(venue, data, actor=holder, bypass_rules=start < now_utc())
    except (ValidationError, ConflictError) as exc:
        current_app.logger.info("Demo: left out %r on %s: %s", plan.title, day, exc.message)
        return False
    return True


# ---------------------------------------------------------------------------------------------- the sandbox


class DemoConnectError(Exception):
    """The demo could not be connected to the sandbox tenant; nothing was paired."""


@dataclass
class DemoConnection:
    connected: bool  # True: the settings were saved and the rooms paired by this call
    message: str
    pairs: list = field(default_factory=list)  # the new `sync.models.Pair`s
    unpaired: dict[str, str] = field(default_factory=dict)  # room name → why it was not paired


def connect_demo_to_sandbox() -> DemoConnection:
    from .graph.errors import GraphError
    from .graph.settings import load_settings
    from .integration.operations import SettingsInput, save_settings, settings_for
    from .sandbox.seed import DEMO_BUTLER_EMAIL, DEMO_TENANT_ID
    from .sync.pairs import create_pair
    from .sync.rooms import provider_rooms

    venue = db.session.scalar(select(Venue).order_by(Venue.id).limit(1))
    admin = db.session.scalar(select(User).where(User.email == DEMO_ADMIN_EMAIL))
    if venue is None or admin is None:
        return DemoConnection(False, "No demo venue (`flask --app app seed-demo` makes it): nothing to connect.")
    if settings_for(venue) is not None:
        return DemoConnection(False, f"{venue.name} has its integration settings already: nothing changed.")
    try:
        graph = load_settings()
    except GraphError as error:
        raise DemoConnectError(f"The Microsoft 365 settings are unusable: {error}") from None
    if not graph.configured():
        return DemoConnection(False, "No sandbox tenant is configured (the sandbox writes instance/sandbox.env "
                                     "when it starts): nothing to connect.")
    if graph.tenant_id != DEMO_TENANT_ID:
        return DemoConnection(False, "GRAPH_TENANT_ID names a tenant other than the sandbox's: the demo stays "
                                     "unconnected (connect it on the integration page).")

    data = SettingsInput(butler_email=DEMO_BUTLER_EMAIL, allow_directory_search=True, sync_photos=True)
    try:
        outcome = save_settings(venue, data)
    except ValidationError as error:
        raise DemoConnectError(f"The integration settings were refused: {error.message}") from None
    if not outcome.saved:
        problems = [f"- {p.label}: {p.message}" for p in outcome.prerequisites if not p.ok]
        problems += [f"- {r.label}: {r.error or 'failed'}" + (f" ({r.hint})" if r.hint else "")
                     for r in outcome.results if r.ok is False]
        raise DemoConnectError("The sandbox tenant did not pass the integration checks, so nothing was saved "
                               "or paired:\n" + "\n".join(problems))

    try:
        rooms = {room.display_name.casefold(): room for room in provider_rooms()}
    except GraphError as error:
        raise DemoConnectError(f"The integration is saved but the sandbox's rooms could not be listed ({error}): "
                               "pair the rooms on the Synced rooms page.") from None
    spaces = db.session.scalars(select(Space).where(Space.venue_id == venue.id, Space.kind == "room",
                                                    Space.active.is_(True)).order_by(Space.position)).all()
    connection = DemoConnection(True, "")
    for space in spaces:
        room = rooms.get(space.name.casefold())
        if room is None:
            connection.unpaired[space.name] = "the sandbox has no room of that name"
            continue
        try:
            connection.pairs.append(create_pair(venue, space, room, admin))
        except ValidationError as error:
            connection.unpaired[space.name] = error.message
    connection.message = (f"Connected {venue.name} to the Microsoft 365 sandbox tenant and paired "
                          f"{len(connection.pairs)} rooms with the sandbox's rooms: their initial syncs are "
                          "running (Admin → Synced rooms, /admin/sync/).")
    if connection.unpaired:
        connection.message += " Not paired: " + "; ".join(f"{name} ({why})"
                                                          for name, why in connection.unpaired.items()) + "."
    current_app.logger.info("Demo: %s", connection.message)
    return connection
