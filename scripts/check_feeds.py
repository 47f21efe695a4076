"""Check the iCalendar feeds with independent readers and against the day view: `python scripts/check_feeds.py`.

Not a test (it needs Node.js, and Thunderbird for `--thunderbird`); run it when the feeds change. It makes a
scratch instance in a temporary folder (SQLite, the real migrations), seeds the demo (`webapp.demo.seed_demo`)
and adds the cases a calendar client gets wrong most easily, through the booking operations: a weekly series
across both DST changes with a cancelled, a moved and a retitled occurrence, a daily series across the spring
change, a monthly Outlook series running past the window, a series cut short ("this and following"), a
private booking with attendees, a booking of two spaces, a cancelled booking, non-ASCII text, a long
description with a Teams link. It serves the app over real HTTP (werkzeug, a free port) and, for Priya
(`webapp.demo.DEMO_MEMBER_EMAIL`), takes the personal feed, the venue feed and every space feed, plus the
personal feed of the holder of a private booking, and checks:

1. each feed, expanded over the feed window by every reader, equals the occurrence rows of the database it
   should show (uid, start, end, title as the feed must show it: "Private booking" where it is masked):
   - `icalendar` + `recurring-ical-events` (Python);
   - ical.js (Mozilla's parser, the one Thunderbird uses; `scripts/feeds_check/expand.mjs`, installed by
     `npm ci` from `scripts/feeds_check/package-lock.json` on first use);
   - with `--thunderbird`: Thunderbird itself (Debian's `thunderbird`, run headless with a new profile and
     driven over Marionette, with a small client below): each feed is subscribed to as a network calendar
     (the "ics" provider, as File → New → Calendar → On the Network does) and its occurrences read back
     through `calICalendar.getItemsAsArray` with occurrences expanded;
2. every space feed, day by day over the days that have bookings, equals the blocks Priya's day view shows in
   that space's column (booking, occurrence, title, times).

Prints a Markdown table and exits 1 on any difference. `--keep` keeps the temporary folder.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CHECKER = REPO / "scripts" / "feeds_check"
UTC = timezone.utc

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import select  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from webapp import create_app  # noqa: E402
from webapp.auth.models import User  # noqa: E402
from webapp.booking.models import Booking, Occurrence, OccurrenceException, Venue  # noqa: E402
from webapp.booking.operations import BookingInput, cancel_booking, create_booking, input_from_booking, update_booking  # noqa: E402
from webapp.booking.privacy import PRIVATE_TITLE  # noqa: E402
from webapp.demo import DEMO_MEMBER_EMAIL, seed_demo  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.feeds import tokens  # noqa: E402
from webapp.feeds.data import KIND_TITLES, feed_window  # noqa: E402
from webapp.timeutil import localize, to_local  # noqa: E402


# ---------------------------------------------------------------------------------------------- data


def _at(day: date, hour: int, minute: int, tz) -> datetime:
    return localize(datetime.combine(day, datetime.min.time()) + timedelta(hours=hour, minutes=minute), tz)


def _next(weekday: int, after: date) -> date:
    return after + timedelta(days=(weekday - after.weekday()) % 7 or 7)


def _spring_change(year: int) -> date:
    """Last Sunday of March (the EU's change to summer time)."""
    last = date(year, 3, 31)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def add_hard_cases(venue: Venue) -> dict[str, Booking]:
    """Bookings that test a client's reading of RRULE, EXDATE, RECURRENCE-ID, DST and escaping. Early-morning
    slots (before the demo's opening hours, so `bypass_rules`) keep them clear of the demo's bookings."""
    tz = venue.tz
    spaces = {s.name: s for s in venue.spaces}
    people = {u.email: u for u in db.session.scalars(select(User))}
    priya, jasmine = people[DEMO_MEMBER_EMAIL], people["jasmine.patel@roomsync.test"]
    marcus = people["marcus.reid@roomsync.test"]
    today = to_local(datetime.now(UTC), tz).date()
    spring = _spring_change(today.year + (1 if today >= _spring_change(today.year) else 0))
    made = {}

    def book(key, space_names, start, minutes, holder, title, origin="roomsync", **fields):
        data = BookingInput(space_ids=[spaces[n].id for n in space_names], start=start, end=start + timedelta(minutes=minutes),
                            title=title, holder_id=holder.id, **fields)
        made[key] = create_booking(venue, data, actor=holder, bypass_rules=True, origin=origin)
        return made[key]

    monday = _next(0, today - timedelta(days=21))
    weekly = book("weekly", ["Focus room 1"], _at(monday, 6, 0, tz), 45, priya, "Weekly review; plans, risks \\ notes",
                  rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=60", attendees=["jasmine.patel@roomsync.test", "gäst@example.org"],
                  description="Agenda:\n1. Café ☕ — 日本語\n2. " + "long text " * 20)
    times = [monday + timedelta(weeks=n) for n in range(60)]
    cancel_booking(weekly, actor=priya, scope="this", occurrence_start=_at(times[4], 6, 0, tz))
    after_spring = next(d for d in times if d > spring)
    data = input_from_booking(weekly, _at(after_spring, 6, 0, tz))
    data.start, data.end = _at(after_spring + timedelta(days=1), 5, 30, tz), _at(after_spring + timedelta(days=1), 6, 30, tz)
    update_booking(weekly, data, actor=priya, scope="this", occurrence_start=_at(after_spring, 6, 0, tz), bypass_rules=True)
    data = input_from_booking(weekly, _at(times[6], 6, 0, tz))
    data.title = "Weekly review (with guests)"
    update_booking(weekly, data, actor=priya, scope="this", occurrence_start=_at(times[6], 6, 0, tz), bypass_rules=True)
    book("daily", ["Focus room 2"], _at(spring - timedelta(days=4), 6, 0, tz), 30, jasmine, "Daily check",
         rrule="FREQ=DAILY;COUNT=10")
    book("monthly", ["Board room B"], _at(_next(1, today), 6, 0, tz), 60, marcus, "Monthly board prep",
         rrule="FREQ=MONTHLY;BYDAY=2TU;COUNT=18", origin="microsoft")
    cut = book("cut", ["Focus room 1"], _at(_next(2, today), 6, 0, tz), 30, priya, "Cut short", rrule="FREQ=WEEKLY;COUNT=10")
    cancel_booking(cut, actor=priya, scope="following", occurrence_start=_at(_next(2, today) + timedelta(weeks=4), 6, 0, tz))
    book("private", ["Focus room 2"], _at(_next(3, today), 6, 0, tz), 60, jasmine, "Doctor (private)", private=True,
         description="Secret notes", attendees=[DEMO_MEMBER_EMAIL])
    book("two_spaces", ["Focus room 1", "Focus room 2"], _at(_next(4, today), 6, 0, tz), 60, priya, "Offsite prep: «Été», 東京")
    gone = book("cancelled", ["Focus room 1"], _at(_next(4, today) + timedelta(days=7), 6, 0, tz), 30, priya, "Cancelled")
    cancel_booking(gone, actor=priya)
    made["weekly"].join_url = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_check%40thread.v2/0?context=%7b%7d"
    db.session.commit()
    return made


def _involved(booking: Booking, user: User) -> bool:
    return booking.holder_id == user.id or user.email in (booking.attendees or [])


def expected(kind: str, user: User, space_id: int | None, window) -> set[tuple]:
    """(uid, start, end, title) of every occurrence the feed must show, from the occurrence rows."""
    overrides = {(e.booking_id, e.original_start_utc): e.title for e in db.session.scalars(select(OccurrenceException))}
    query = select(Occurrence, Booking).join(Booking, Booking.id == Occurrence.booking_id).where(
        Occurrence.start_utc < window.end, Occurrence.end_utc > window.start)
    if kind == "space":
        query = query.where(Occurrence.space_id == space_id)
    found = set()
    for occurrence, booking in db.session.execute(query):
        if kind == "personal" and not _involved(booking, user):
            continue
        masked = booking.private and not (kind == "personal" and booking.holder_id == user.id)
        title = overrides.get((booking.id, occurrence.original_start_utc)) or booking.title or KIND_TITLES[booking.kind]
        found.add((booking.uid, occurrence.start_utc, occurrence.end_utc, PRIVATE_TITLE if masked else title))
    return found


# ---------------------------------------------------------------------------------------------- readers


def read_icalendar(body: bytes, window) -> set[tuple]:
    import icalendar
    import recurring_ical_events

    calendar = icalendar.Calendar.from_ical(body)
    return {
        (str(e["UID"]), e.decoded("DTSTART").astimezone(UTC), e.decoded("DTEND").astimezone(UTC), str(e["SUMMARY"]))
        for e in recurring_ical_events.of(calendar).between(window.start, window.end)
    }


def read_icaljs(files: list[Path], window) -> dict[Path, set[tuple]]:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("Node.js is needed for the ical.js check (Debian: nodejs)")
    if not (CHECKER / "node_modules" / "ical.js").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CHECKER, check=True, capture_output=True)
    done = subprocess.run(
        [node, str(CHECKER / "expand.mjs"), f"{window.start:%Y-%m-%dT%H:%M:%SZ}", f"{window.end:%Y-%m-%dT%H:%M:%SZ}",
         *map(str, files)], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"ical.js failed: {done.stderr}")
    parsed = json.loads(done.stdout)

    def instant(text):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return {Path(name): {(uid, instant(s), instant(e), title) for uid, s, e, title, _ in rows} for name, rows in parsed.items()}


class Marionette:
    """The least of a Marionette client (Firefox's remote protocol, Thunderbird speaks it too): length-prefixed
    JSON packets, `[0, id, command, parameters]` out, `[1, id, error, result]` back."""

    def __init__(self, port: int):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.next_id = 0
        self._read()  # the server's greeting

    def _read(self):
        size = b""
        while not size.endswith(b":"):
            size += self.socket.recv(1)
        length, data = int(size[:-1]), b""
        while len(data) < length:
            data += self.socket.recv(length - len(data))
        return json.loads(data)

    def call(self, command: str, parameters: dict):
        self.next_id += 1
        payload = json.dumps([0, self.next_id, command, parameters]).encode()
        self.socket.sendall(str(len(payload)).encode() + b":" + payload)
        while True:
            _, message_id, error, result = self._read()
            if message_id == self.next_id:
                break
        if error:
            raise RuntimeError(f"{command}: {error.get('error')}: {error.get('message')}")
        return result


THUNDERBIRD_LOAD = """
const [url, start, end, resolve] = arguments;
(async () => {
  const { cal } = ChromeUtils.importESModule("resource:///modules/calendar/calUtils.sys.mjs");
  const calendar = cal.manager.createCalendar("ics", Services.io.newURI(url));
  calendar.name = "Roomsync check";
  const loaded = new Promise((ok, fail) => {
    calendar.addObserver({
      QueryInterface: ChromeUtils.generateQI(["calIObserver"]),
      onStartBatch() {}, onEndBatch() {}, onAddItem() {}, onModifyItem() {}, onDeleteItem() {},
      onPropertyChanged() {}, onPropertyDeleting() {},
      onLoad() { ok(); },
      onError(c, code, message) { fail(new Error(`calendar error ${code}: ${message}`)); },
    });
  });
  cal.manager.registerCalendar(calendar);
  calendar.refresh();
  await loaded;
  const filter = Ci.calICalendar.ITEM_FILTER_TYPE_EVENT | Ci.calICalendar.ITEM_FILTER_CLASS_OCCURRENCES;
  const items = await calendar.getItemsAsArray(filter, 0, cal.createDateTime(start), cal.createDateTime(end));
  const found = items.map(item => [item.id, item.startDate.nativeTime / 1000, item.endDate.nativeTime / 1000, item.title]);
  cal.manager.unregisterCalendar(calendar);
  cal.manager.removeCalendar(calendar);
  return found;
})().then(resolve, error => resolve({ error: String(error) }));
"""


class Thunderbird:
    """Thunderbird, headless, on a new profile, with Marionette on a free port; `occurrences(url, window)`."""

    def __init__(self, folder: Path):
        binary = shutil.which("thunderbird")
        if binary is None:
            raise SystemExit("--thunderbird needs Thunderbird (Debian: apt-get install thunderbird)")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        profile = folder / "thunderbird-profile"
        profile.mkdir()
        (profile / "user.js").write_text("\n".join(f'user_pref("{k}", {json.dumps(v)});' for k, v in {
            "marionette.port": port, "mail.provider.suppress_dialog_on_startup": True, "mailnews.start_page.enabled": False,
            "mail.shell.checkDefaultClient": False, "app.update.disabledForTesting": True,
            "datareporting.policy.dataSubmissionEnabled": False, "calendar.timezone.local": "UTC",
            "calendar.timezone.useSystemTimezone": False,
        }.items()) + "\n")
        self.log = open(folder / "thunderbird.log", "w")
        self.process = subprocess.Popen(
            [binary, "--headless", "--marionette", "-remote-allow-system-access", "--no-remote", "--profile", str(profile)],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            try:
                self.client = Marionette(port)
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise SystemExit(f"Thunderbird did not start (see {folder / 'thunderbird.log'})")
                time.sleep(0.5)
        self.client.call("WebDriver:NewSession", {"capabilities": {}})
        self.client.call("Marionette:SetContext", {"value": "chrome"})
        self.client.call("WebDriver:SetTimeouts", {"script": 180_000})
        self.version = self.client.call("WebDriver:ExecuteScript", {"script": "return Services.appinfo.version;", "args": []})["value"]

    def occurrences(self, url: str, window) -> set[tuple]:
        result = self.client.call("WebDriver:ExecuteAsyncScript", {
            "script": THUNDERBIRD_LOAD, "args": [url, f"{window.start:%Y%m%dT%H%M%SZ}", f"{window.end:%Y%m%dT%H%M%SZ}"]})["value"]
        if isinstance(result, dict):
            raise RuntimeError(f"Thunderbird: {result['error']}")

        def instant(ms):
            return datetime.fromtimestamp(ms / 1000, UTC)

        return {(uid, instant(s), instant(e), title) for uid, s, e, title in result}

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


# ---------------------------------------------------------------------------------------------- day view


BLOCK = re.compile(r'<a class="b [^"]*" href="/bookings/(\d+)\?occurrence=([^"]+)" style="[^"]*"><strong>(?:<small.*?</small> )?'
                   r'([^<]*)</strong> <span class="when">([^<]*)</span>')


def day_view_blocks(client, day: date) -> dict[str, set[tuple]]:
    """Space name → (booking id, occurrence, title, "HH:MM–HH:MM") of the blocks in its column."""
    text = client.get("/", query_string={"date": day.isoformat()}).get_data(as_text=True)
    names = [html.unescape(n) for n in re.findall(r'<div class="col-head[^"]*"><a href="[^"]*" hx-boost="false">([^<]+)</a>', text)]
    columns = re.split(r'<div class="col(?: closed)?(?: today)?">', text.split('<div class="grid-body">', 1)[1])[1:]
    return {name: {(int(b), o, html.unescape(t), w) for b, o, t, w in BLOCK.findall(column)} for name, column in zip(names, columns)}


def feed_blocks(occurrences: set[tuple], ids: dict[str, int], tz) -> dict[date, set[tuple]]:
    """The same shape, day by day, from a feed's expanded occurrences (an occurrence on each day it touches)."""
    days: dict[date, set[tuple]] = defaultdict(set)
    for uid, start, end, title, original in occurrences:
        local_start, local_end = to_local(start, tz), to_local(end, tz)
        day = local_start.date()
        while day <= (local_end - timedelta(seconds=1)).date():
            days[day].add((ids[uid], f"{original:%Y-%m-%dT%H:%M:%SZ}", title, f"{local_start:%H:%M}–{local_end:%H:%M}"))
            day += timedelta(days=1)
    return days


def read_with_originals(body: bytes, window) -> set[tuple]:
    """icalendar + recurring-ical-events, with each occurrence's original start (RECURRENCE-ID or its start)."""
    import icalendar
    import recurring_ical_events

    found = set()
    for e in recurring_ical_events.of(icalendar.Calendar.from_ical(body)).between(window.start, window.end):
        original = e.decoded("RECURRENCE-ID") if "RECURRENCE-ID" in e else e.decoded("DTSTART")
        found.add((str(e["UID"]), e.decoded("DTSTART").astimezone(UTC), e.decoded("DTEND").astimezone(UTC), str(e["SUMMARY"]),
                   original.astimezone(UTC)))
    return found


# ---------------------------------------------------------------------------------------------- main


def _diff(want: set, got: set) -> str:
    if want == got:
        return "✔"
    return f"✘ {len(got - want)} extra, {len(want - got)} missing: e.g. {sorted(got - want)[:2]} / {sorted(want - got)[:2]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--thunderbird", action="store_true", help="also load every feed into headless Thunderbird")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, feeds, logs)")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request says nothing here
    folder = Path(tempfile.mkdtemp(prefix="roomsync-feeds-check-"))
    app = create_app({"INSTANCE_PATH": str(folder), "DATABASE_URL": f"sqlite:///{folder / 'check.sqlite3'}",
                      "SECRET_KEY": "roomsync-feeds-check", "SYNC_JOBS": True, "WTF_CSRF_ENABLED": False})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    thunderbird = None
    failures = 0
    try:
        with app.app_context():
            logging.disable(logging.INFO)  # the migrations' configuration would print a line per migration
            upgrade()
            logging.disable(logging.NOTSET)
            seed_demo()
            venue = db.session.scalar(select(Venue))
            add_hard_cases(venue)
            tz = venue.tz
            window = feed_window(venue, app.config["FEED_PAST_DAYS"], app.config["FEED_FUTURE_DAYS"])
            priya = db.session.scalar(select(User).where(User.email == DEMO_MEMBER_EMAIL))
            jasmine = db.session.scalar(select(User).where(User.email == "jasmine.patel@roomsync.test"))
            priya_id = priya.id
            feeds = [("personal", priya, priya.id, f"{priya.display_name}: personal"),
                     ("personal", jasmine, jasmine.id, f"{jasmine.display_name}: personal (holds a private booking)"),
                     ("venue", priya, venue.id, "venue (all spaces)")]
            feeds += [("space", priya, s.id, s.name) for s in venue.spaces if s.active]
            checks = []
            for kind, user, target, label in feeds:
                want = expected(kind, user, target if kind == "space" else None, window)
                token = tokens.feed_token(user, kind, target)
                url = f"{base}/feeds/{tokens.plaintext(token)}.ics"
                checks.append((kind, f"{kind}-{target}-{user.id}.ics", label, url, want))
            uid_to_id = dict(db.session.execute(select(Booking.uid, Booking.id)).all())
            booked_days = sorted({to_local(o.start_utc, tz).date() for o in db.session.scalars(select(Occurrence))
                                  if window.start <= o.start_utc < window.end})
        client = app.test_client()
        with client.session_transaction() as session:
            session["_user_id"], session["_fresh"] = str(priya_id), True
        view = {day: day_view_blocks(client, day) for day in booked_days}

        bodies = {}
        import requests

        for kind, file_name, label, url, _ in checks:
            response = requests.get(url, timeout=30)
            response.raise_for_status()
            bodies[url] = response.content
            (folder / file_name).write_bytes(response.content)
        icaljs = read_icaljs([folder / file_name for _, file_name, *_ in checks], window)
        if args.thunderbird:
            thunderbird = Thunderbird(folder)

        header = "| feed | occurrences | icalendar + recurring-ical-events | ical.js 2.2.1 |"
        if thunderbird:
            header += f" Thunderbird {thunderbird.version} |"
        header += " day view (days) |"
        lines = [f"Feeds of the demo plus hard cases, window {window.start:%Y-%m-%d} to {window.end:%Y-%m-%d}; "
                 f"day view checked on {len(booked_days)} days.", "", header, "|---|---:|---|---|" + ("---|" if thunderbird else "") + "---|"]
        for kind, file_name, label, url, want in checks:
            cells = [label, f"{len(want):,}", _diff(want, read_icalendar(bodies[url], window)), _diff(want, icaljs[folder / file_name])]
            if thunderbird:
                cells.append(_diff(want, thunderbird.occurrences(url, window)))
            if kind == "space":
                days = feed_blocks(read_with_originals(bodies[url], window), uid_to_id, tz)
                wrong = [d for d in booked_days if days.get(d, set()) != view[d].get(label, set())]
                cells.append("✔" if not wrong else f"✘ {len(wrong)} days differ, first {wrong[0]}: feed "
                             f"{sorted(days.get(wrong[0], set()))[:2]} / view {sorted(view[wrong[0]].get(label, set()))[:2]}")
            else:
                cells.append("—")
            failures += sum(cell.startswith("✘") for cell in cells)
            lines.append("| " + " | ".join(cells) + " |")
        print("\n".join(lines))
    finally:
        server.shutdown()
        if thunderbird:
            thunderbird.close()
        if args.keep:
            print(f"\nKept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{'All readers agree with the database and the day view.' if not failures else f'{failures} differences.'}")
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("ROOMSYNC_SANDBOX", "0")
    sys.exit(main())
