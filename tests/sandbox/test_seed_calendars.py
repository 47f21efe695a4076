"""The demo meetings `make run`'s sandbox books at its first start (`seed.seed_demo_calendars`): read back through
Graph, each demo room shows its meetings as accepted room copies of its organizers' events, the mix holds
what the initial sync has to show (a series with a moved and a cancelled occurrence, off-grid times, a private
meeting, an overnight one, the combined board room booked with one of its halves), and it happens once, on a
fresh tenant only. Seeded on a Friday a week before the spring DST change, so the two weeks cross it.
"""

from __future__ import annotations

import ast
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from webapp.sandbox import calendar
from webapp.sandbox.seed import DEMO_DOMAIN, DEMO_MEETINGS, seed_demo_calendars, user_id_for

SEED_NOW = "2026-03-20T08:00:00Z"  # a Friday; British Summer Time starts on Sunday 29 March
LONDON = ZoneInfo("Europe/London")
ROOMS = ["board-room-a", "board-room-b", "board-room-a-b", "focus-room-1", "focus-room-2", "atrium", "studio",
         "library"]


@pytest.fixture
def seeded(sandbox_app, request):
    """The tenant with its demo meetings, and the authenticated `graph` client, at frozen time."""
    with freeze_time(SEED_NOW):
        booked = seed_demo_calendars(sandbox_app)
        assert booked == len(DEMO_MEETINGS)
        yield request.getfixturevalue("graph")


def view(graph, mailbox: str, days: int = 15) -> list[dict]:
    start = datetime.fromisoformat(SEED_NOW)
    end = start + timedelta(days=days)
    url = (f"/v1.0/users/{mailbox}/calendarView?startDateTime={start.isoformat()}&endDateTime={end.isoformat()}"
           f"&$top=200")
    response = graph.get(url.replace("+00:00", "Z"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert "@odata.nextLink" not in body
    return body["value"]


def local(dtz: dict) -> datetime:
    assert dtz["timeZone"] == "UTC"  # no Prefer header: Graph answers in UTC
    return datetime.fromisoformat(dtz["dateTime"][:19]).replace(tzinfo=timezone.utc).astimezone(LONDON)


def room_view(graph, slug: str, days: int = 15) -> list[dict]:
    return view(graph, user_id_for(f"{slug}@{DEMO_DOMAIN}"), days)


def test_every_demo_room_shows_its_meetings_as_accepted_room_copies(seeded):
    graph = seeded
    for slug in ROOMS:
        meetings = room_view(graph, slug)
        assert 3 <= len(meetings) <= 6, (slug, [m["subject"] for m in meetings])
        for copy in meetings:
            assert copy["isOrganizer"] is False and copy["responseStatus"]["response"] == "accepted", copy
            organizer = copy["organizer"]["emailAddress"]
            assert copy["subject"] == organizer["name"]  # Exchange's room copy: the organizer's name, no body
            assert copy["body"]["content"] == ""
            originals = [e for e in view(graph, organizer["address"]) if e["iCalUId"] == copy["iCalUId"]]
            assert len(originals) == 1, (slug, copy["iCalUId"])
            [room] = [a for a in originals[0]["attendees"]
                      if a["emailAddress"]["address"] == f"{slug}@{DEMO_DOMAIN}"]
            assert room["type"] == "resource" and room["status"]["response"] == "accepted"
            assert originals[0]["subject"] != organizer["name"]  # the organizer keeps the real subject
            assert (copy["start"], copy["end"]) == (originals[0]["start"], originals[0]["end"])


def test_all_meetings_lie_in_the_two_weeks_after_the_seed_day_on_working_days(seeded):
    graph = seeded
    seed_day = datetime.fromisoformat(SEED_NOW).astimezone(LONDON).date()
    starts = [local(m["start"]) for slug in ROOMS for m in room_view(graph, slug, days=15)]
    assert len(starts) >= 25
    assert all(seed_day < s.date() <= seed_day + timedelta(days=14) and s.weekday() < 5 for s in starts)
    assert min(s.date() for s in starts) == seed_day + timedelta(days=3)  # Monday: the first working day
    assert not room_view(graph, "garden-room")  # the spare rooms stay free


def test_the_mix_the_initial_sync_has_to_show(seeded):
    graph = seeded
    by_room = {slug: room_view(graph, slug, days=35) for slug in ROOMS}

    # Off the 15-minute grid: the guide's examples and two more.
    off_grid = {(local(m["start"]).strftime("%H:%M"), local(m["end"]).strftime("%H:%M"))
                for meetings in by_room.values() for m in meetings
                if local(m["start"]).minute % 15 or local(m["end"]).minute % 15}
    assert off_grid == {("10:05", "10:50"), ("13:53", "14:07"), ("14:02", "14:18"), ("15:10", "15:40")}

    # Overnight: one meeting ends on the day after it starts.
    overnight = [m for meetings in by_room.values() for m in meetings
                 if local(m["end"]).date() != local(m["start"]).date()]
    assert [(m["subject"], local(m["start"]).strftime("%H:%M")) for m in overnight] == [("Kofi Mensah", "20:00")]

    # Board room A+B booked together with Board room A: one meeting, in both rooms.
    shared = {m["iCalUId"] for m in by_room["board-room-a"]} & {m["iCalUId"] for m in by_room["board-room-a-b"]}
    assert len(shared) == 1

    # The weekly series of Board room B: 4 occurrences, the 2nd moved an hour later, the 3rd cancelled.
    series = [m for m in by_room["board-room-b"] if m["type"] in ("occurrence", "exception")]
    assert [(m["type"], local(m["start"]).strftime("%a %H:%M")) for m in series] == [
        ("occurrence", "Mon 15:00"), ("exception", "Mon 16:00"), ("occurrence", "Mon 15:00")]
    assert (local(series[2]["start"]) - local(series[0]["start"])).days == 21  # week 3 is missing
    assert len({m["seriesMasterId"] for m in series}) == 1
    # …and the Studio's weekly design crit, six Tuesdays at 11:00 across the DST change.
    crit = [m for m in by_room["studio"] if m["type"] == "occurrence"]
    assert [local(m["start"]).strftime("%a %H:%M") for m in crit] == ["Tue 11:00"] * 5  # the 6th is past 35 days

    # One private meeting: private on the organizer's calendar, normal on the room's (RemovePrivateProperty).
    organizer_copies = [e for e in view(graph, f"marcus.reid@{DEMO_DOMAIN}") if e["sensitivity"] == "private"]
    assert [e["subject"] for e in organizer_copies] == ["Salary negotiation: regional lead"]
    room_copy = next(m for m in by_room["board-room-b"] if m["iCalUId"] == organizer_copies[0]["iCalUId"])
    assert room_copy["sensitivity"] == "normal" and room_copy["subject"] == "Marcus Reid"

    # An organizer who is in the directory but not one of Roomsync's demo users.
    assert any(m["organizer"]["emailAddress"]["address"] == f"ben.carter@{DEMO_DOMAIN}" for m in by_room["atrium"])

    # Organizers are spread over the team, not one person.
    organizers = Counter(m["organizer"]["emailAddress"]["address"] for ms in by_room.values() for m in ms)
    assert len(organizers) >= 15


def test_meetings_are_booked_once_and_only_on_a_fresh_tenant(sandbox_app, sandbox_state):
    with freeze_time(SEED_NOW):
        assert seed_demo_calendars(sandbox_app) == len(DEMO_MEETINGS)
        events = len(sandbox_state.store.ids("event"))
        assert events > 2 * len(DEMO_MEETINGS)  # organizers' events and the rooms' copies

        assert seed_demo_calendars(sandbox_app) == 0  # a restart books nothing more
        assert len(sandbox_state.store.ids("event")) == events


def test_a_tenant_that_has_events_already_is_left_as_it_is(sandbox_app, sandbox_state):
    with freeze_time(SEED_NOW), sandbox_app.app_context():
        from webapp.sandbox.directory import find_user

        organizer = find_user(f"priya.shah@{DEMO_DOMAIN}")
        calendar.create_event(sandbox_state, organizer, {
            "subject": "Mine", "start": {"dateTime": "2026-03-24T10:00:00", "timeZone": "Europe/London"},
            "end": {"dateTime": "2026-03-24T11:00:00", "timeZone": "Europe/London"}})

        assert seed_demo_calendars(sandbox_app) == 0
        assert len(sandbox_state.store.ids("event")) == 1
        assert seed_demo_calendars(sandbox_app) == 0  # and it does not look again


def test_the_sandbox_imports_nothing_of_roomsync():
    package = Path(calendar.__file__).parent
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith("webapp") or name.startswith("webapp.sandbox"), (source.name, name)
