"""iCalendar feeds (issue 8): content parsed back with two independent parsers (`icalendar` + its expansion by
`recurring-ical-events`, and `vobject` with its own rule expansion), privacy, tokens, HTTP caching (versions,
the shared body cache, Last-Modified), the pages' subscribe buttons and the profile card, `GET /api/v1/feeds`,
and the demo's space feeds against its day view. ical.js and Thunderbird read them in scripts/check_feeds.py.

The frozen clock is Monday 2 March 2026 in London; the window (30 days back, 365 ahead) covers the spring and
autumn DST changes, so a weekly 09:00 series is at 09:00Z in March and at 08:00Z from 30 March.
"""

from __future__ import annotations

import gzip
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import icalendar
import pytest
import recurring_ical_events
import vobject
from sqlalchemy import select

from webapp.auth.models import issue_api_token
from webapp.booking.models import Booking, Occurrence
from webapp.booking.operations import cancel_booking, input_from_booking, update_booking
from webapp.extensions import db
from webapp.feeds import ical, tokens
from webapp.feeds.data import feed_window
from webapp.feeds.models import FeedToken

UTC = timezone.utc


# ---------------------------------------------------------------------------------------------- helpers


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path


def feed_path(user, kind, target_id) -> str:
    from flask import url_for

    token = tokens.feed_token(user, kind, target_id)
    return _path(url_for("feeds.feed", token=tokens.plaintext(token), _external=True))


def fetch(client, path, **headers):
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    return response.get_data()


def window_of(venue):
    window = feed_window(venue, 30, 365)
    return window.start, window.end


def expand_icalendar(body: bytes, start, end) -> set[tuple]:
    calendar = icalendar.Calendar.from_ical(body)
    found = set()
    for event in recurring_ical_events.of(calendar).between(start, end):
        found.add((str(event["UID"]), event.decoded("DTSTART").astimezone(UTC), event.decoded("DTEND").astimezone(UTC),
                   str(event["SUMMARY"])))
    return found


def expand_vobject(body: bytes, start, end) -> set[tuple]:
    """A second, independent reading: vobject parses (with its own unfolding, unescaping and VTIMEZONE
    handling) and expands each master's RRULE/EXDATE; overrides (RECURRENCE-ID) replace their instance."""
    calendar = vobject.readOne(body.decode("utf-8"))
    masters, overrides = {}, {}
    for event in calendar.vevent_list:
        uid = event.uid.value
        if hasattr(event, "recurrence_id"):
            overrides.setdefault(uid, []).append(event)
        else:
            masters[uid] = event
    found = set()
    for uid, event in masters.items():
        duration = event.dtend.value - event.dtstart.value
        moved = {o.recurrence_id.value.astimezone(UTC) for o in overrides.get(uid, [])}
        if hasattr(event, "rrule"):
            starts = list(event.getrruleset(addRDate=True).between(start - timedelta(days=14), end, inc=True))
        else:
            starts = [event.dtstart.value]
        for s in starts:
            if hasattr(s.tzinfo, "localize"):  # vobject names the zone through pytz: wall clock, then its offset
                s = s.tzinfo.localize(s.replace(tzinfo=None))
            s_utc = s.astimezone(UTC)
            if s_utc in moved:
                continue
            e_utc = (s + duration).astimezone(UTC)
            if s_utc < end and e_utc > start:
                found.add((uid, s_utc, e_utc, event.summary.value))
        for o in overrides.get(uid, []):
            s_utc, e_utc = o.dtstart.value.astimezone(UTC), o.dtend.value.astimezone(UTC)
            if s_utc < end and e_utc > start:
                found.add((uid, s_utc, e_utc, o.summary.value))
    return found


def expected_occurrences(space_ids, start, end, *, title_for) -> set[tuple]:
    rows = db.session.execute(
        select(Occurrence, Booking)
        .join(Booking, Booking.id == Occurrence.booking_id)
        .where(Occurrence.space_id.in_(space_ids), Occurrence.start_utc < end, Occurrence.end_utc > start)
    ).all()
    result = set()
    for occ, booking in rows:
        override = next((e.title for e in booking.exceptions if e.original_start_utc == occ.original_start_utc), None)
        result.add((booking.uid, occ.start_utc, occ.end_utc, title_for(booking, override)))
    return result


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def world(clock, make_venue, make_space, make_user, make_booking, london_time):
    """Two rooms and a combined one, three people, and bookings of every shape in and around the window."""
    venue = make_venue()
    a = make_space(venue, "Board room A")
    b = make_space(venue, "Salle de réunion « Été »")
    priya = make_user("priya@roomsync.test", first_name="Priya", last_name="Shah")
    jose = make_user("jose@roomsync.test", first_name="José", last_name="Núñez, Jr.")
    admin = make_user("admin@roomsync.test", first_name="Ada", last_name="Admin", role="admin")

    made = {}
    # Past bookings (inside and outside the window) are made with the clock moved back.
    clock.move_to(datetime(2025, 12, 1, 9, 0, tzinfo=UTC))
    made["too_old"] = make_booking(venue, a, london_time(2025, 12, 15, 10, 0), holder=priya, title="Too old")
    made["recent_past"] = make_booking(venue, a, london_time(2026, 2, 10, 10, 0), holder=priya, title="Last month")
    # A weekly series that started before the window and runs across the spring DST change.
    made["weekly"] = make_booking(
        venue, a, london_time(2026, 1, 5, 9, 0), 60, holder=jose, title="Weekly stand-up; team, all",
        rrule="FREQ=WEEKLY;BYDAY=MO;UNTIL=20260615", attendees=["priya@roomsync.test", "guest@example.org"],
        description="Agenda:\n1. Wins, blockers; asks\n2. Café ☕ — 日本語 notes \\ backslash " + "long text " * 12,
    )
    clock.move_to(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    weekly = made["weekly"]
    # Cancel one occurrence, move another (across the DST change), retitle a third.
    cancel_booking(weekly, actor=jose, scope="this", occurrence_start=london_time(2026, 3, 16, 9, 0))
    moved_from = london_time(2026, 3, 30, 9, 0)
    data = input_from_booking(weekly, moved_from)
    data.start, data.end = london_time(2026, 3, 31, 14, 0), london_time(2026, 3, 31, 15, 30)
    update_booking(weekly, data, actor=jose, scope="this", occurrence_start=moved_from)
    retitled_from = london_time(2026, 4, 6, 9, 0)
    data = input_from_booking(weekly, retitled_from)
    data.title = "Stand-up (Easter Monday)"
    update_booking(weekly, data, actor=jose, scope="this", occurrence_start=retitled_from)

    made["daily"] = make_booking(venue, b, london_time(2026, 10, 20, 8, 0), 30, holder=priya, title="Daily check",
                                 rrule="FREQ=DAILY;COUNT=10")  # across the autumn DST change (25 October)
    made["monthly"] = make_booking(venue, b, london_time(2026, 3, 10, 13, 0), 45, holder=jose, title="Monthly review",
                                   rrule="FREQ=MONTHLY;BYDAY=2TU;COUNT=18", origin="microsoft",
                                   bypass_rules=True)  # runs past the window's end (an Outlook series)
    made["both"] = make_booking(venue, [a, b], london_time(2026, 3, 4, 11, 0), 90, holder=priya, title="Offsite prep")
    made["private"] = make_booking(venue, a, london_time(2026, 3, 5, 15, 0), holder=priya, title="Doctor visit",
                                   private=True, description="secret notes", attendees=["jose@roomsync.test"])
    made["internal"] = make_booking(venue, b, london_time(2026, 3, 6, 7, 0), 120, holder=admin, title="",
                                    kind="internal")
    made["cancelled"] = make_booking(venue, a, london_time(2026, 3, 9, 10, 0), holder=priya, title="Cancelled one")
    cancel_booking(made["cancelled"], actor=priya)
    made["following"] = make_booking(venue, b, london_time(2026, 3, 3, 16, 0), holder=jose, title="Cut short",
                                     rrule="FREQ=WEEKLY;COUNT=8")
    cancel_booking(made["following"], actor=jose, scope="following", occurrence_start=london_time(2026, 3, 24, 16, 0))
    made["far"] = make_booking(venue, a, london_time(2026, 9, 1, 10, 0), holder=priya, title="September")
    return {"venue": venue, "a": a, "b": b, "priya": priya, "jose": jose, "admin": admin, **made}


def _public_title(booking, override):
    if booking.private:
        return "Private booking"
    return override or booking.title or {"internal": "Internal booking", "unavailable": "Unavailable"}.get(booking.kind, "Booking")


# ---------------------------------------------------------------------------------------------- content


@pytest.mark.parametrize("space_key", ["a", "b"])
def test_space_feed_expands_to_exactly_the_bookings_in_the_window(client, world, space_key):
    space = world[space_key]
    body = fetch(client, feed_path(world["jose"], "space", space.id))
    start, end = window_of(world["venue"])
    expected = expected_occurrences([space.id], start, end, title_for=_public_title)
    assert len(expected) > 10
    assert expand_icalendar(body, start, end) == expected
    assert expand_vobject(body, start, end) == expected


def test_series_are_rules_with_exceptions_not_copies(client, world, london_time):
    body = fetch(client, feed_path(world["jose"], "space", world["a"].id))
    calendar = icalendar.Calendar.from_ical(body)
    weekly = [e for e in calendar.walk("VEVENT") if str(e["UID"]) == world["weekly"].uid]
    master = [e for e in weekly if "RECURRENCE-ID" not in e]
    overrides = [e for e in weekly if "RECURRENCE-ID" in e]
    assert len(master) == 1 and len(overrides) == 2
    rule = master[0]["RRULE"]
    assert rule["FREQ"] == ["WEEKLY"] and rule["UNTIL"][0] == datetime(2026, 6, 15, 22, 59, 59, tzinfo=UTC)
    exdates = [d.dt for ex in ([master[0]["EXDATE"]] if not isinstance(master[0]["EXDATE"], list) else master[0]["EXDATE"]) for d in ex.dts]
    assert [d.astimezone(UTC) for d in exdates] == [london_time(2026, 3, 16, 9, 0)]
    assert master[0].decoded("DTSTART").tzinfo is not None and str(master[0]["DTSTART"].params["TZID"]) == "Europe/London"
    moved = next(e for e in overrides if e.decoded("RECURRENCE-ID").astimezone(UTC) == london_time(2026, 3, 30, 9, 0))
    assert moved.decoded("DTSTART").astimezone(UTC) == london_time(2026, 3, 31, 14, 0)
    retitled = next(e for e in overrides if e is not moved)
    assert str(retitled["SUMMARY"]) == "Stand-up (Easter Monday)"
    # The cut-short series ends where it was cut; the cancelled single booking is gone; the old one too.
    uids = {str(e["UID"]) for e in calendar.walk("VEVENT")}
    assert world["cancelled"].uid not in uids and world["too_old"].uid not in uids
    assert world["recent_past"].uid in uids and world["far"].uid in uids


def test_dst_days_keep_wall_clock_times(client, world, london_time):
    body = fetch(client, feed_path(world["jose"], "space", world["b"].id))
    start, end = window_of(world["venue"])
    daily = sorted(s for uid, s, e, t in expand_icalendar(body, start, end) if uid == world["daily"].uid)
    assert len(daily) == 10
    assert daily[0] == datetime(2026, 10, 20, 7, 0, tzinfo=UTC)  # 08:00 BST
    assert daily[-1] == datetime(2026, 10, 29, 8, 0, tzinfo=UTC)  # 08:00 GMT
    calendar = icalendar.Calendar.from_ical(body)
    [vtimezone] = calendar.walk("VTIMEZONE")
    assert str(vtimezone["TZID"]) == "Europe/London"


def test_calendar_properties_and_event_fields(client, world):
    body = fetch(client, feed_path(world["jose"], "space", world["a"].id))
    calendar = icalendar.Calendar.from_ical(body)
    for name, value in [("VERSION", "2.0"), ("CALSCALE", "GREGORIAN"), ("METHOD", "PUBLISH"),
                        ("X-PUBLISHED-TTL", "PT15M")]:
        assert str(calendar[name]) == value
    assert str(calendar["PRODID"]).startswith("-//Roomsync//")
    assert str(calendar["X-WR-CALNAME"]) == "Board room A (HQ)"
    assert calendar["REFRESH-INTERVAL"].dt == timedelta(minutes=15)
    weekly = next(e for e in calendar.walk("VEVENT") if str(e["UID"]) == world["weekly"].uid and "RECURRENCE-ID" not in e)
    db.session.refresh(world["weekly"])
    assert int(weekly["SEQUENCE"]) == world["weekly"].sequence >= 3
    assert weekly.decoded("LAST-MODIFIED") == world["weekly"].updated_at.replace(microsecond=0)
    assert str(weekly["SUMMARY"]) == "Weekly stand-up; team, all"
    assert str(weekly["DESCRIPTION"]).startswith("Agenda:\n1. Wins, blockers; asks\n2. Café ☕ — 日本語 notes \\ backslash")
    assert str(weekly["LOCATION"]) == "Board room A"
    assert str(weekly["ORGANIZER"]) == "mailto:jose@roomsync.test"
    assert weekly["ORGANIZER"].params["CN"] == "José Núñez, Jr."
    attendees = sorted(str(a) for a in weekly["ATTENDEE"])
    assert attendees == ["mailto:guest@example.org", "mailto:priya@roomsync.test"]
    assert str(weekly["URL"]).endswith(f"/bookings/{world['weekly'].id}")
    assert "DTSTAMP" in weekly and str(weekly["CLASS"]) == "PUBLIC"
    # The combined booking is one event on each space's feed, with every space in LOCATION.
    both = next(e for e in calendar.walk("VEVENT") if str(e["UID"]) == world["both"].uid)
    assert str(both["LOCATION"]) == "Board room A, Salle de réunion « Été »"


def test_lines_are_folded_crlf_and_at_most_75_octets(client, world):
    body = fetch(client, feed_path(world["jose"], "space", world["a"].id))
    assert body.endswith(b"END:VCALENDAR\r\n")
    lines = body.split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert max(len(line) for line in lines) <= 75
    assert any(line.startswith(b" ") for line in lines)  # the long description was folded
    for line in lines:
        line.decode("utf-8")  # no character split across a fold


def test_fold_and_escape_units():
    text = "é" * 100 + "x"
    folded = ical.fold("SUMMARY:" + text)
    parts = folded[:-2].split("\r\n")
    assert all(len(p.encode()) <= 75 for p in parts) and all(p.startswith(" ") for p in parts[1:])
    assert "".join([parts[0]] + [p[1:] for p in parts[1:]]) == "SUMMARY:" + text
    assert ical.escape_text('a,b;c\\d\r\ne\x07"') == 'a\\,b\\;c\\\\d\\ne"'
    assert ical.param_value('Ann "The" Boss\n') == "\"Ann 'The' Boss \""


def test_venue_feed_has_each_booking_once(client, world):
    venue = world["venue"]
    body = fetch(client, feed_path(world["priya"], "venue", venue.id))
    calendar = icalendar.Calendar.from_ical(body)
    masters = [str(e["UID"]) for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e]
    assert len(masters) == len(set(masters)) and world["both"].uid in masters
    start, end = window_of(venue)
    expected = {t for t in expected_occurrences([world["a"].id, world["b"].id], start, end, title_for=_public_title)}
    assert expand_icalendar(body, start, end) == expected == expand_vobject(body, start, end)
    assert str(calendar["X-WR-CALNAME"]) == "HQ (all spaces)"


def test_personal_feed_holds_what_the_user_holds_or_attends(client, world):
    priya = world["priya"]
    body = fetch(client, feed_path(priya, "personal", priya.id))
    calendar = icalendar.Calendar.from_ical(body)
    uids = {str(e["UID"]) for e in calendar.walk("VEVENT")}
    mine = {world[k].uid for k in ("recent_past", "weekly", "daily", "both", "private", "far")}
    assert uids == mine  # weekly: as an attendee; not jose's monthly or the admin's internal block
    private = next(e for e in calendar.walk("VEVENT") if str(e["UID"]) == world["private"].uid)
    assert str(private["SUMMARY"]) == "Doctor visit" and str(private["CLASS"]) == "PRIVATE"
    assert str(private["DESCRIPTION"]) == "secret notes"
    start, end = window_of(world["venue"])

    def title(booking, override):
        return override or booking.title

    rows = expected_occurrences([world["a"].id, world["b"].id], start, end, title_for=title)
    expected = {r for r in rows if r[0] in mine}
    assert expand_icalendar(body, start, end) == expected == expand_vobject(body, start, end)


def test_private_titles_stay_out_of_everyone_elses_feeds(client, world):
    priya, jose, admin = world["priya"], world["jose"], world["admin"]
    world["venue"].admins_see_private = True
    db.session.commit()
    feeds = [
        feed_path(jose, "space", world["a"].id),
        feed_path(admin, "space", world["a"].id),
        feed_path(admin, "venue", world["venue"].id),
        feed_path(jose, "personal", jose.id),  # jose attends it
        feed_path(priya, "space", world["a"].id),  # a space feed: its URL gets shared, so masked even for her
    ]
    for path in feeds:
        body = fetch(client, path)
        assert b"Doctor visit" not in body and b"secret notes" not in body
        calendar = icalendar.Calendar.from_ical(body)
        private = next(e for e in calendar.walk("VEVENT") if str(e["UID"]) == world["private"].uid)
        assert str(private["SUMMARY"]) == "Private booking" and str(private["CLASS"]) == "PRIVATE"
        assert "DESCRIPTION" not in private and "ATTENDEE" not in private


def test_internal_blocks_show_as_busy_with_their_kind(client, world):
    body = fetch(client, feed_path(world["jose"], "space", world["b"].id))
    calendar = icalendar.Calendar.from_ical(body)
    block = next(e for e in calendar.walk("VEVENT") if str(e["UID"]) == world["internal"].uid)
    assert str(block["SUMMARY"]) == "Internal booking" and str(block["TRANSP"]) == "OPAQUE"


def test_join_link_is_in_the_description(client, world):
    booking = world["far"]
    booking.join_url = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%7d"
    db.session.commit()
    body = fetch(client, feed_path(world["jose"], "space", world["a"].id))
    event = next(e for e in icalendar.Calendar.from_ical(body).walk("VEVENT") if str(e["UID"]) == booking.uid)
    assert booking.join_url in str(event["DESCRIPTION"])


# ---------------------------------------------------------------------------------------------- HTTP


def test_etag_last_modified_304_and_gzip(client, world, clock, london_time):
    path = feed_path(world["jose"], "space", world["a"].id)
    first = client.get(path)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag.startswith('"') and first.headers["Cache-Control"] == "private, no-cache"
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200

    zipped = client.get(path, headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.get_data()) == first.get_data()
    assert zipped.headers["ETag"] != etag
    assert client.get(path, headers={"If-None-Match": zipped.headers["ETag"], "Accept-Encoding": "gzip"}).status_code == 304

    # Any change to a booking of the feed changes its version; so does a new day (the window moves).
    update = input_from_booking(world["far"])
    update.title = "September (moved)"
    update_booking(world["far"], update, actor=world["priya"])
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag and b"September (moved)" in changed.get_data()
    etag = changed.headers["ETag"]
    cancel_booking(world["far"], actor=world["priya"])
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 200
    etag = client.get(path).headers["ETag"]
    clock.move_to(datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 200


def test_the_etag_changes_when_a_booking_leaves_the_space(client, world, make_booking, london_time):
    path = feed_path(world["jose"], "space", world["b"].id)
    etag = client.get(path).headers["ETag"]
    booking = world["both"]
    data = input_from_booking(booking)
    data.space_ids = [world["a"].id]
    update_booking(booking, data, actor=world["priya"])
    response = client.get(path, headers={"If-None-Match": etag})
    assert response.status_code == 200 and booking.uid.encode() not in response.get_data()


def test_sequence_grows_on_every_change(client, world):
    path = feed_path(world["jose"], "space", world["a"].id)

    def sequence():
        calendar = icalendar.Calendar.from_ical(fetch(client, path))
        return int(next(e for e in calendar.walk("VEVENT") if str(e["UID"]) == world["far"].uid)["SEQUENCE"])

    before = sequence()
    data = input_from_booking(world["far"])
    data.description = "now with an agenda"
    update_booking(world["far"], data, actor=world["priya"])
    assert sequence() == before + 1


# ---------------------------------------------------------------------------------------------- tokens


def test_unknown_revoked_and_regenerated_tokens_answer_404(client, world):
    jose = world["jose"]
    path = feed_path(jose, "space", world["a"].id)
    def page(response):
        return re.sub(rb'[\w-]*csrf[\w-]*"? ?[:=] ?"[^"]*"', b"", response.get_data())

    not_found = client.get("/no-such-page")
    assert client.get(path).status_code == 200
    token = tokens.existing_token(jose, "space", world["a"].id)
    forged = path[: -len(".ics") - 1] + ("A" if path[-len(".ics") - 1] != "A" else "B") + ".ics"
    for bad in (forged, "/feeds/x.ics", "/feeds/" + "a" * 43 + ".ics", "/feeds/" + token.selector + ".ics"):
        response = client.get(bad)
        assert response.status_code == 404
        assert page(response).replace(bad.encode(), b"PATH") == page(not_found).replace(b"/no-such-page", b"PATH")
    tokens.regenerate(token)
    assert client.get(path).status_code == 404
    new_path = feed_path(jose, "space", world["a"].id)
    assert new_path != path and client.get(new_path).status_code == 200
    tokens.revoke(tokens.existing_token(jose, "space", world["a"].id))
    assert client.get(new_path).status_code == 404


def test_tokens_of_inactive_users_and_gone_spaces_answer_404(client, world):
    jose = world["jose"]
    personal = feed_path(jose, "personal", jose.id)
    space = feed_path(world["priya"], "space", world["b"].id)
    jose.active = False
    db.session.delete(world["b"])
    db.session.commit()
    assert client.get(personal).status_code == 404
    assert client.get(space).status_code == 404


def test_tokens_are_per_user_and_feed_and_not_stored_whole(client, world, app):
    a = tokens.feed_token(world["jose"], "space", world["a"].id)
    assert tokens.feed_token(world["jose"], "space", world["a"].id).id == a.id
    b = tokens.feed_token(world["priya"], "space", world["a"].id)
    assert a.id != b.id and tokens.plaintext(a) != tokens.plaintext(b)
    secret = tokens.plaintext(a)
    for row in db.session.execute(select(FeedToken.__table__)).all():
        assert all(not (isinstance(v, str) and secret in v) for v in row)


def test_last_fetch_is_recorded_at_most_hourly(client, world, clock):
    path = feed_path(world["jose"], "venue", world["venue"].id)
    client.get(path)
    token = tokens.existing_token(world["jose"], "venue", world["venue"].id)
    first = token.last_used_at
    assert first is not None
    clock.tick(timedelta(minutes=20))
    client.get(path)
    db.session.refresh(token)
    assert token.last_used_at == first
    clock.tick(timedelta(minutes=50))
    client.get(path)
    db.session.refresh(token)
    assert token.last_used_at > first


# ---------------------------------------------------------------------------------------------- pages and API


def test_subscribe_buttons_on_the_day_and_space_pages(client, login, world):
    login(world["jose"])
    day = client.get("/?date=2026-03-04").get_data(as_text=True)
    assert f'/feeds/subscribe/venue/{world["venue"].id}' in day
    week = client.get(f'/spaces/{world["a"].id}/week').get_data(as_text=True)
    assert f'/feeds/subscribe/space/{world["a"].id}' in week
    answer = client.post(f'/feeds/subscribe/space/{world["a"].id}', headers={"HX-Request": "true"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "<html" not in html
    token = tokens.existing_token(world["jose"], "space", world["a"].id)
    secret = tokens.plaintext(token)
    assert f"webcal://roomsync.localhost/feeds/{secret}.ics" in html
    assert f"http://roomsync.localhost/feeds/{secret}.ics" in html and "data-copy" in html
    # Without htmx the same answer comes as a page.
    page = client.post(f'/feeds/subscribe/venue/{world["venue"].id}').get_data(as_text=True)
    assert "<html" in page and "webcal://" in page
    # Unknown kinds or targets: 404.
    assert client.post("/feeds/subscribe/space/999999").status_code == 404
    assert client.post("/feeds/subscribe/planet/1").status_code == 404
    assert client.post(f'/feeds/subscribe/personal/{world["priya"].id}').status_code == 404


def test_subscribing_needs_a_signed_in_user(client, world):
    response = client.post(f'/feeds/subscribe/space/{world["a"].id}')
    assert response.status_code in (302, 401)
    assert FeedToken.query.count() == 0


def test_profile_card_creates_regenerates_and_revokes(client, login, world):
    jose = world["jose"]
    login(jose)
    assert 'hx-get="/feeds/panel"' in client.get("/profile/").get_data(as_text=True)
    card = client.get("/feeds/panel", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "My bookings" in card and "HQ: all spaces" in card and "No address yet" in card
    hx = {"HX-Request": "true"}
    card = client.post(f"/feeds/panel/create/personal/{jose.id}", headers=hx).get_data(as_text=True)
    token = tokens.existing_token(jose, "personal", jose.id)
    old = tokens.plaintext(token)
    assert old in card
    card = client.post(f"/feeds/panel/{token.id}/regenerate", headers=hx).get_data(as_text=True)
    db.session.refresh(token)
    new = tokens.plaintext(token)
    assert new != old and new in card and old not in card
    assert client.get(f"/feeds/{old}.ics").status_code == 404 and client.get(f"/feeds/{new}.ics").status_code == 200
    response = client.post(f"/feeds/panel/{token.id}/revoke")
    assert response.status_code in (302, 303) and "/profile/" in response.headers["Location"]
    assert client.get(f"/feeds/{new}.ics").status_code == 404
    # Someone else's token cannot be touched.
    other = tokens.feed_token(world["priya"], "personal", world["priya"].id)
    assert client.post(f"/feeds/panel/{other.id}/revoke", headers=hx).status_code == 404
    assert client.post(f"/feeds/panel/{other.id}/regenerate", headers=hx).status_code == 404
    assert tokens.existing_token(world["priya"], "personal", world["priya"].id) is not None


def test_api_lists_the_callers_feeds(client, world):
    _, secret = issue_api_token(world["jose"], "tests")
    db.session.commit()
    response = client.get("/api/v1/feeds", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    items = response.get_json()
    assert [i["kind"] for i in items] == ["personal", "venue", "space", "space"]
    assert [i["space_id"] for i in items[2:]] == [world["a"].id, world["b"].id]
    for item in items:
        assert item["webcal"] == "webcal://" + item["url"].split("://", 1)[1]
        body = fetch(client, _path(item["url"]))
        assert body.startswith(b"BEGIN:VCALENDAR\r\n")
    again = client.get("/api/v1/feeds", headers={"Authorization": f"Bearer {secret}"}).get_json()
    assert again == items  # the same tokens, not new ones
    assert client.get("/api/v1/feeds").status_code == 401
    assert client.get("/api/v1/feeds?x=1", headers={"Authorization": f"Bearer {secret}"}).status_code == 422


def test_the_vtimezone_alone_gives_the_right_offsets(client, world, london_time):
    """Parsers know "Europe/London" by name; renamed, the zone can only come from our VTIMEZONE."""
    body = fetch(client, feed_path(world["jose"], "space", world["a"].id))
    renamed = body.replace(b"Europe/London", b"Roomsync-Test-Zone")
    assert renamed.count(b"TZID=Roomsync-Test-Zone") > 10

    def instants(data):
        found = []
        for event in icalendar.Calendar.from_ical(data).walk("VEVENT"):
            for name in ("DTSTART", "DTEND", "RECURRENCE-ID"):
                if name in event:
                    found.append((str(event["UID"]), name, event.decoded(name).astimezone(UTC)))
            exdates = event.get("EXDATE", [])
            for exdate in exdates if isinstance(exdates, list) else [exdates]:
                found += [(str(event["UID"]), "EXDATE", d.dt.astimezone(UTC)) for d in exdate.dts]
        return sorted(found)

    assert instants(renamed) == instants(body)
    # Summer time is in there: 10:00 in London on 1 September is 09:00Z, read through our VTIMEZONE alone.
    assert (world["far"].uid, "DTSTART", london_time(2026, 9, 1, 10, 0)) in instants(renamed)
    assert london_time(2026, 9, 1, 10, 0) == datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata"])
def test_ambiguous_and_dst_instants_round_trip(zone):
    """Every hour across both DST changes of a year, the repeated hour included, survives build → parse."""
    tz_changes = {"Europe/London": (datetime(2026, 3, 29), datetime(2026, 10, 25)),
                  "America/New_York": (datetime(2026, 3, 8), datetime(2026, 11, 1)),
                  "Australia/Sydney": (datetime(2026, 4, 5), datetime(2026, 10, 4)),
                  "Asia/Kolkata": (datetime(2026, 3, 29), datetime(2026, 10, 25))}[zone]
    events = []
    for day in tz_changes:
        for hour in range(-6, 30):
            start = (day.replace(tzinfo=UTC) + timedelta(hours=hour))
            events.append(ical.FeedEvent(uid=f"{day:%m}-{hour}", start=start, end=start + timedelta(minutes=30), summary="x"))
    body = ical.build_calendar(ical.FeedCalendar("t", zone, events, dtstamp=datetime(2026, 1, 1, tzinfo=UTC)))
    # (icalendar caches zones read from a VTIMEZONE by their TZID: one new name per zone)
    for renamed in (body, body.replace(zone.encode(), b"Renamed-" + zone.replace("/", "-").encode())):
        parsed = {str(e["UID"]): (e.decoded("DTSTART").astimezone(UTC), e.decoded("DTEND").astimezone(UTC))
                  for e in icalendar.Calendar.from_ical(renamed).walk("VEVENT")}
        assert parsed == {e.uid: (e.start, e.end) for e in events}


# ---------------------------------------------------------------------------------------------- demo, cache, versions


DAY_VIEW_BLOCK = re.compile(r'<a class="b [^"]*" href="/bookings/(\d+)\?occurrence=([^"]+)" style="[^"]*"><strong>'
                            r'(?:<small.*?</small> )?([^<]*)</strong> <span class="when">([^<]*)</span>')


def test_demo_space_feeds_match_the_day_view(client, clock):
    """Done when: the demo's space feeds, expanded, show exactly the blocks of Priya's day view, day by day."""
    import html

    from webapp.auth.models import User
    from webapp.booking.models import Space, Venue
    from webapp.demo import DEMO_MEMBER_EMAIL, seed_demo

    seed_demo()
    venue = db.session.scalar(select(Venue))
    priya = db.session.scalar(select(User).where(User.email == DEMO_MEMBER_EMAIL))
    with client.session_transaction() as session:
        session["_user_id"], session["_fresh"] = str(priya.id), True
    spaces = list(db.session.scalars(select(Space).where(Space.active).order_by(Space.position, Space.id)))
    ids = dict(db.session.execute(select(Booking.uid, Booking.id)).all())
    tz = venue.tz
    start, end = window_of(venue)
    feed_days: dict = {}
    for space in spaces:
        calendar = icalendar.Calendar.from_ical(fetch(client, feed_path(priya, "space", space.id)))
        for event in recurring_ical_events.of(calendar).between(start, end):
            begin, finish = event.decoded("DTSTART").astimezone(tz), event.decoded("DTEND").astimezone(tz)
            original = (event.decoded("RECURRENCE-ID") if "RECURRENCE-ID" in event else event.decoded("DTSTART")).astimezone(UTC)
            feed_days.setdefault((space.name, begin.date()), set()).add(
                (ids[str(event["UID"])], f"{original:%Y-%m-%dT%H:%M:%SZ}", str(event["SUMMARY"]), f"{begin:%H:%M}–{finish:%H:%M}"))
    days = sorted({day for _, day in feed_days})
    assert len(days) >= 10 and sum(len(v) for v in feed_days.values()) > 40
    for day in days:
        page = client.get("/", query_string={"date": day.isoformat()}).get_data(as_text=True)
        columns = re.split(r'<div class="col(?: closed)?(?: today)?">', page.split('<div class="grid-body">', 1)[1])[1:]
        assert len(columns) == len(spaces)
        for space, column in zip(spaces, columns):
            shown = {(int(b), o, html.unescape(t), w) for b, o, t, w in DAY_VIEW_BLOCK.findall(column)}
            assert feed_days.get((space.name, day), set()) == shown, (space.name, day)


def test_subscribers_of_a_space_share_one_version_and_body(client, world, app):
    from webapp.feeds.views import body_cache

    jose, priya = world["jose"], world["priya"]
    first = client.get(feed_path(jose, "space", world["a"].id))
    second = client.get(feed_path(priya, "space", world["a"].id))
    assert first.headers["ETag"] == second.headers["ETag"] and first.get_data() == second.get_data()
    # A personal feed is its owner's alone.
    assert client.get(feed_path(jose, "personal", jose.id)).headers["ETag"] != \
        client.get(feed_path(priya, "personal", priya.id)).headers["ETag"]
    # With the cache off the body is built each time, the same.
    cache = body_cache(app)
    size, cache.max_bytes = cache.max_bytes, 0
    try:
        assert client.get(feed_path(jose, "space", world["a"].id)).get_data() == first.get_data()
    finally:
        cache.max_bytes = size


def test_a_space_taken_out_of_a_booking_without_a_write_changes_the_version(client, world):
    """The initial sync clears a space with plain DELETEs (no booking write): LOCATION changes in the venue feed."""
    from webapp.booking.models import booking_spaces

    path = feed_path(world["jose"], "venue", world["venue"].id)
    first = client.get(path)
    booking = world["both"]
    db.session.execute(booking_spaces.delete().where(booking_spaces.c.booking_id == booking.id,
                                                     booking_spaces.c.space_id == world["b"].id))
    db.session.execute(Occurrence.__table__.delete().where(Occurrence.booking_id == booking.id,
                                                           Occurrence.space_id == world["b"].id))
    db.session.commit()
    again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200
    event = next(e for e in icalendar.Calendar.from_ical(again.get_data()).walk("VEVENT") if str(e["UID"]) == booking.uid)
    assert str(event["LOCATION"]) == "Board room A"


def test_an_exception_the_rule_no_longer_makes_is_left_out(client, world):
    from webapp.booking.models import OccurrenceException

    weekly = world["weekly"]
    stray = datetime(2026, 3, 18, 9, 0, tzinfo=UTC)  # a Wednesday: never an occurrence of the Monday rule
    db.session.add(OccurrenceException(booking_id=weekly.id, original_start_utc=stray, cancelled=False,
                                       start_utc=stray, end_utc=stray + timedelta(hours=1), title="Ghost"))
    db.session.commit()
    body = fetch(client, feed_path(world["jose"], "space", world["a"].id))
    assert b"Ghost" not in body
    start, end = window_of(world["venue"])
    assert expand_icalendar(body, start, end) == expected_occurrences([world["a"].id], start, end, title_for=_public_title)


def test_last_modified_is_never_in_the_future(client, clock, make_venue, make_space, make_user):
    """East of UTC the venue's day starts before UTC midnight: the window moves then, not later."""
    venue = make_venue(timezone="Asia/Kolkata")
    space = make_space(venue, "Room")
    user = make_user("kolkata@roomsync.test")
    clock.move_to(datetime(2026, 3, 2, 20, 0, tzinfo=UTC))  # 01:30 on 3 March in Kolkata
    response = client.get(feed_path(user, "space", space.id))
    modified = datetime.strptime(response.headers["Last-Modified"], "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert modified == datetime(2026, 3, 2, 18, 30, tzinfo=UTC)  # local midnight
    assert client.get(feed_path(user, "space", space.id), headers={"If-Modified-Since": response.headers["Last-Modified"]}).status_code == 304


@pytest.fixture(autouse=True)
def _fresh_body_cache(app):
    """Each test's world reuses ids and the frozen clock's timestamps, so two tests' feeds can have the same
    version (in production, writes never repeat a timestamp); the process's body cache must not carry one
    test's body into the next."""
    from webapp.feeds.views import body_cache

    body_cache(app).clear()
