"""The demo tenant `roomsync.test`: what `make run` and every sandbox test start from.

Public API:
- `DEMO_DOMAIN`, `DEMO_TENANT_ID`, `DEMO_CLIENT_ID`, `DEMO_CLIENT_SECRET`, `DEMO_PERMISSIONS`,
  `DEMO_BUTLER_EMAIL`: the fixed demo identity that `make run` prints and writes to instance/sandbox.env.
- `seed_tenant(store)`: writes the tenant (call on an empty store; the admin reset empties it first).
- `user_id_for(email)`: the stable object id of a seeded mailbox (uuid5 of the address), so ids survive a
  reset and tests can name users without a lookup.
- `hash_secret(secret)` / `secret_matches(app_doc, secret)`: the app's client secret is stored only hashed.
- `DEFAULT_CALENDAR_PROCESSING`: the Exchange Online defaults of `Set-CalendarProcessing` (graph-facts §6),
  copied onto every room doc as `calendarProcessing` for the room-mailbox logic to read.
- `seed_demo_calendars(app)` → how many meetings it booked: the demo meetings of `DEMO_MEETINGS` in the 8
  demo rooms, on the working days after "today" (the sandbox clock, `DEMO_TIME_ZONE`), each made through the
  calendar engine on its organizer's mailbox with its rooms as `resource` attendees, so the rooms auto-accept
  and hold their own copies, as in Exchange. Once per tenant: it books nothing (0) when it ran before (a
  `seed` document remembers it) or when the tenant has events already. `make run`'s sandbox calls it at
  start; tests and benchmarks start from empty calendars.

Documents written (kind → shape):
- tenant: {id, displayName, domains, defaultDomain}.
- app: {appId, tenantId, displayName, secretHash, permissions, enabled}.
- user: the Graph user properties ([D:api-reference/v1.0/resources/user.md]) plus two sandbox-only flags
  that are never rendered: `mailboxEnabled` (false → mailbox resources answer MailboxNotEnabledForRESTAPI)
  and `isRoom` (room mailboxes are directory users too, as "Conf Room Adams" in the user-list example).
- photo (id = user id): {id "64x64"…, width, height, contentType, etag, data (base64)}.
- contact (owner = user id): the contact resource ([D:api-reference/v1.0/api/contact-get.md] example).
- person (owner = user id): the person resource ([D:api-reference/v1.0/api/user-list-people.md]) plus
  `rank` (relevance order; not rendered).
- room (id = the room mailbox's user id): the room resource ([D:api-reference/v1.0/resources/room.md],
  fields as the real-tenant example of place-list.md) plus `roomListEmail` and `calendarProcessing`.
- roomList: the roomList resource ([D:api-reference/v1.0/resources/roomlist.md]).

The 20 people and 8 rooms mirror Roomsync's demo venue (webapp/demo.py: same emails, same room names) so
the demo pairs them without typing; they are copied here because the sandbox never imports Roomsync.

The demo meetings are what a newcomer's first sync should show: ordinary meetings, a weekly series with one
occurrence moved and one cancelled, meetings off the 15-minute grid (adjusted on import: 10:05–10:50 →
10:00–10:45, 13:53–14:07 → 13:45–14:00, 14:02–14:18 → 14:00–14:30, 15:10–15:40 → 15:15–15:45), a private
meeting, an overnight one (refused: it spans midnight), one that books "Board room A+B" together with "Board
room A" (refused: the combined room depends on A), and an organizer who is in the directory but not among
Roomsync's users. They ignore Roomsync's own demo bookings: the clashes are the bookings the initial sync
cannot restore, and its report lists them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import uuid
import zlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from .clock import iso_z, now, zone

DEMO_DOMAIN = "roomsync.test"
DEMO_TENANT_ID = "7d3c5a1e-2b4f-4c8e-9a61-0f5b8d2e4c17"
DEMO_CLIENT_ID = "3f9b2c6d-8e1a-4d7f-b5c0-6a2e9d4f1b83"
DEMO_CLIENT_SECRET = "sandbox-demo-secret-8Qp~Zt3v"
DEMO_PERMISSIONS = ["Calendars.ReadWrite", "Place.Read.All", "User.Read.All", "Contacts.Read", "People.Read.All"]
DEMO_BUTLER_EMAIL = f"roomsync.butler@{DEMO_DOMAIN}"

# Set-CalendarProcessing defaults in Exchange Online (graph-facts §5.4, §6).
DEFAULT_CALENDAR_PROCESSING = {
    "automateProcessing": "AutoAccept",
    "allowConflicts": False,
    "allowRecurringMeetings": True,
    "bookingWindowInDays": 180,
    "enforceSchedulingHorizon": True,
    "maximumDurationInMinutes": 1440,
    "conflictPercentageAllowed": 0,
    "maximumConflictInstances": 0,
    "addOrganizerToSubject": True,
    "deleteSubject": True,
    "deleteComments": True,
    "deleteAttachments": True,
    "removePrivateProperty": True,
    "processExternalMeetingMessages": False,
}

_ID_NAMESPACE = uuid.UUID("5b0e3f0c-8d2a-4f61-9c37-2a7d8e1b4c90")

# Copied from webapp/demo.py (ADMIN, MEMBERS, ROOMS): the demo venue's people and rooms.
_DEMO_ADMIN = ("Alex", "Morgan", "admin")
_DEMO_MEMBERS = [
    ("Priya", "Shah"), ("Tom", "Baker"), ("Chloe", "Evans"), ("Daniel", "Okafor"), ("Emma", "Wilson"),
    ("George", "Hughes"), ("Hannah", "Clarke"), ("Isaac", "Lewis"), ("Jasmine", "Patel"), ("Kofi", "Mensah"),
    ("Laura", "Bennett"), ("Marcus", "Reid"), ("Nadia", "Rahman"), ("Oliver", "Price"), ("Rosa", "Martinez"),
    ("Samuel", "Wright"), ("Sophie", "Turner"), ("Tariq", "Hussain"), ("Zoe", "Campbell"),
]
# (name, capacity, floor, devices, tags)
_DEMO_ROOMS = [
    ("Board room A", 10, 2, ("Ceiling microphones", "Conference camera", "75in screen"), ["video", "whiteboard"]),
    ("Board room B", 8, 2, ("Speakerphone", None, "65in screen"), ["video"]),
    ("Board room A+B", 20, 2, ("Ceiling microphones", "Conference camera", "75in screen"), ["video", "whiteboard"]),
    ("Focus room 1", 2, 1, (None, None, None), ["phone"]),
    ("Focus room 2", 2, 1, (None, None, None), ["phone"]),
    ("Atrium", 60, 1, ("PA system", None, "Projector"), ["projector", "catering"]),
    ("Studio", 8, 1, ("Speakerphone", "Conference camera", "55in screen"), ["video", "whiteboard"]),
    ("Library", 6, 2, (None, None, None), ["quiet"]),
]
_SPARE_ROOMS = [
    ("Garden room", 12, 0, (None, None, "Projector"), ["daylight"]),
    ("Quiet pod", 1, 2, (None, None, None), ["phone"]),
    ("Training room", 24, 3, ("PA system", "Conference camera", "Projector"), ["video"]),
]
# Extra directory users: (given, surname, job title, department, has mailbox, account enabled).
_EXTRA_USERS = [
    ("Ben", "Carter", "Facilities Manager", "Operations", True, True),
    ("Fatima", "Ali", "Receptionist", "Operations", True, True),
    ("Grace", "Kim", "Finance Analyst", "Finance", True, True),
    ("Henry", "Osei", "IT Support", "Operations", True, True),
    ("Ivy", "Chen", "Contractor", "Engineering", False, True),  # no Exchange Online licence
    ("Jack", "Nolan", "Contractor", "Marketing", False, True),
    ("Lena", "Fischer", "Auditor (external)", "Finance", False, True),
    ("Mohammed", "Aziz", "Sales Executive", "Sales", True, True),
    ("Noah", "Brooks", "Former employee", "Sales", True, False),  # disabled account, mailbox kept
]
_DEPARTMENTS = ["Engineering", "Sales", "Marketing", "Operations", "People"]
_ROOM_LISTS = [("HQ Floor 1", "hq-floor1-rooms", 1), ("HQ Floor 2", "hq-floor2-rooms", 2)]
_ADDRESS = {"street": "1 Sandbox Street", "city": "London", "state": "", "postalCode": "EC1A 1AA",
            "countryOrRegion": "United Kingdom"}
_PHOTO_COLOURS = [(0x2B, 0x57, 0x9A), (0xC2, 0x3B, 0x22), (0x21, 0x86, 0x5B), (0x8E, 0x44, 0xAD)]


def user_id_for(email: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, email.lower()))


def hash_secret(secret: str) -> str:
    salt = hashlib.sha256(DEMO_TENANT_ID.encode()).hexdigest()[:16]
    return "pbkdf2-sha256$" + hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), 10_000).hex()


def secret_matches(app_doc: dict, secret: str) -> bool:
    return hmac.compare_digest(app_doc.get("secretHash", ""), hash_secret(secret))


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _png(width: int, colour: tuple[int, int, int]) -> bytes:
    """A valid single-colour RGB PNG, so clients can decode a real image without the sandbox needing Pillow."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\x00" + bytes(colour) * width
    header = struct.pack(">IIBBBBB", width, width, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * width))
            + chunk(b"IEND", b""))


def _user(given: str | None, surname: str | None, display: str, email: str, **extra) -> dict:
    doc = {
        "id": user_id_for(email),
        "businessPhones": [],
        "displayName": display,
        "givenName": given,
        "jobTitle": None,
        "mail": email,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-GB",
        "surname": surname,
        "userPrincipalName": email,
        "accountEnabled": True,
        "assignedLicenses": [{"disabledPlans": [], "skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900"}],  # E3
        "department": None,
        "companyName": "Roomsync Demo",
        "mailNickname": email.split("@")[0],
        "usageLocation": "GB",
        "userType": "Member",
        "mailboxEnabled": True,
        "isRoom": False,
    }
    doc.update(extra)
    return doc


def _people_users() -> list[dict]:
    users = []
    admin_given, admin_surname, admin_alias = _DEMO_ADMIN
    users.append(_user(admin_given, admin_surname, f"{admin_given} {admin_surname}", f"{admin_alias}@{DEMO_DOMAIN}",
                       jobTitle="Office Manager", department="Operations", officeLocation="HQ / 2"))
    for index, (given, surname) in enumerate(_DEMO_MEMBERS):
        users.append(_user(given, surname, f"{given} {surname}", f"{given.lower()}.{surname.lower()}@{DEMO_DOMAIN}",
                           department=_DEPARTMENTS[index % len(_DEPARTMENTS)],
                           officeLocation=f"HQ / {1 + index % 2}",
                           businessPhones=[f"+44 20 7946 {index:04d}"] if index % 3 == 0 else []))
    for given, surname, title, department, has_mailbox, enabled in _EXTRA_USERS:
        extra = dict(jobTitle=title, department=department, mailboxEnabled=has_mailbox, accountEnabled=enabled)
        if not has_mailbox:
            extra["assignedLicenses"] = []  # no Exchange Online licence is why the mailbox is missing
        users.append(_user(given, surname, f"{given} {surname}", f"{given.lower()}.{surname.lower()}@{DEMO_DOMAIN}",
                           **extra))
    users.append(_user("Roomsync", "Butler", "Roomsync Butler", DEMO_BUTLER_EMAIL, jobTitle="Booking service",
                       department="Operations"))
    return users


def _rooms() -> tuple[list[dict], list[dict], list[dict]]:
    """(room mailbox users, room docs, room list docs)."""
    room_users, rooms, lists = [], [], []
    list_email_by_floor = {floor: f"{alias}@{DEMO_DOMAIN}" for _, alias, floor in _ROOM_LISTS}
    for name, capacity, floor, (audio, video, display), tags in _DEMO_ROOMS + _SPARE_ROOMS:
        email = f"{_slug(name)}@{DEMO_DOMAIN}"
        user = _user(None, None, name, email, isRoom=True, preferredLanguage=None, assignedLicenses=[],
                     accountEnabled=False, userType="Member")  # room accounts are disabled sign-ins in Exchange
        room_users.append(user)
        rooms.append({
            "id": user["id"],
            "displayName": name,
            "address": dict(_ADDRESS),
            "geoCoordinates": None,
            "phone": "",
            "nickname": name,
            "emailAddress": email,
            "building": "HQ",
            "floorNumber": floor,
            "floorLabel": "G" if floor == 0 else str(floor),
            "label": None,
            "capacity": capacity,
            "bookingType": "standard",
            "audioDeviceName": audio,
            "videoDeviceName": video,
            "displayDeviceName": display,
            "isWheelChairAccessible": floor <= 1,
            "tags": tags,
            "roomListEmail": list_email_by_floor.get(floor),
            "calendarProcessing": dict(DEFAULT_CALENDAR_PROCESSING),
        })
    for display, alias, _floor in _ROOM_LISTS:
        email = f"{alias}@{DEMO_DOMAIN}"
        lists.append({"id": user_id_for(email), "displayName": display, "address": dict(_ADDRESS),
                      "geoCoordinates": None, "phone": None, "emailAddress": email})
    return room_users, rooms, lists


def _contacts(owner: dict, index: int, stamp: str) -> list[dict]:
    companies = [("Northwind Traders", "northwind.example"), ("Fabrikam", "fabrikam.example"),
                 ("Tailspin Toys", "tailspin.example")]
    names = [("Ana", "Silva"), ("Piotr", "Nowak"), ("Mei", "Tanaka"), ("Luca", "Rossi"), ("Sara", "Lind")]
    contacts = []
    for n in range(1 + index % 3):
        given, surname = names[(index + n) % len(names)]
        company, domain = companies[(index + n) % len(companies)]
        contact_id = "AAMkAD" + base64.urlsafe_b64encode(f"{owner['id']}/contact/{n}".encode()).decode().rstrip("=")
        change_key = base64.b64encode(hashlib.sha1(contact_id.encode()).digest()[:12]).decode()
        contacts.append({
            "@odata.etag": f'W/"{change_key}"',
            "id": contact_id,
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "changeKey": change_key,
            "categories": [],
            "parentFolderId": "AAMkAD" + base64.urlsafe_b64encode(f"{owner['id']}/contacts".encode()).decode().rstrip("="),
            "birthday": None,
            "fileAs": f"{surname}, {given}",
            "displayName": f"{given} {surname}",
            "givenName": given,
            "initials": f"{given[0]}.{surname[0]}.",
            "middleName": None,
            "nickName": None,
            "surname": surname,
            "title": None,
            "yomiGivenName": None,
            "yomiSurname": None,
            "yomiCompanyName": None,
            "generation": None,
            "imAddresses": [],
            "jobTitle": "Account Manager",
            "companyName": company,
            "department": None,
            "officeLocation": None,
            "profession": None,
            "businessHomePage": f"https://www.{domain}",
            "assistantName": None,
            "manager": None,
            "homePhones": [],
            "mobilePhone": None,
            "businessPhones": [f"+44 161 496 0{index:02d}{n}"],
            "spouseName": None,
            "personalNotes": "",
            "children": [],
            "emailAddresses": [{"name": f"{given} {surname}", "address": f"{given.lower()}.{surname.lower()}@{domain}"}],
            "homeAddress": {},
            "businessAddress": {},
            "otherAddress": {},
        })
    return contacts


def _person(colleague: dict, rank: int) -> dict:
    email = colleague["mail"]
    return {
        "id": colleague["id"],
        "displayName": colleague["displayName"],
        "givenName": colleague["givenName"],
        "surname": colleague["surname"],
        "birthday": "",
        "personNotes": "",
        "isFavorite": False,
        "jobTitle": colleague["jobTitle"],
        "companyName": colleague["companyName"],
        "yomiCompany": "",
        "department": colleague["department"],
        "officeLocation": colleague["officeLocation"],
        "profession": "",
        "userPrincipalName": colleague["userPrincipalName"],
        "imAddress": f"sip:{email}",
        "scoredEmailAddresses": [{"address": email, "relevanceScore": float(20 - 2 * rank)}],
        "phones": [{"type": "business", "number": number} for number in colleague["businessPhones"]],
        "postalAddresses": [],
        "websites": [],
        "personType": {"class": "Person", "subclass": "OrganizationUser"},
        "rank": rank,
    }


def seed_tenant(store) -> None:
    stamp = iso_z(now().replace(microsecond=0))
    with store.lock:
        store.put("tenant", DEMO_TENANT_ID, {"id": DEMO_TENANT_ID, "displayName": "Roomsync Demo",
                                             "domains": [DEMO_DOMAIN], "defaultDomain": DEMO_DOMAIN})
        store.put("app", DEMO_CLIENT_ID, {"appId": DEMO_CLIENT_ID, "tenantId": DEMO_TENANT_ID,
                                          "displayName": "Roomsync", "secretHash": hash_secret(DEMO_CLIENT_SECRET),
                                          "permissions": list(DEMO_PERMISSIONS), "enabled": True})
        people = _people_users()
        room_users, rooms, room_lists = _rooms()
        for user in people + room_users:
            store.put("user", user["id"], user)
        for room in rooms:
            store.put("room", room["id"], room)
        for room_list in room_lists:
            store.put("roomList", room_list["id"], room_list)
        with_mailbox = [u for u in people if u["mailboxEnabled"]]
        for index, user in enumerate(people):
            if index % 3 != 2:  # two users in three have a photo
                size = (48, 64, 96)[index % 3]
                data = _png(size, _PHOTO_COLOURS[index % len(_PHOTO_COLOURS)])
                store.put("photo", user["id"], {
                    "id": f"{size}x{size}", "width": size, "height": size, "contentType": "image/png",
                    "etag": '"' + hashlib.sha1(data).hexdigest()[:8].upper() + '"',
                    "data": base64.b64encode(data).decode(),
                })
            if not user["mailboxEnabled"]:
                continue  # contacts and people live in the mailbox
            if index % 2 == 1:  # every other person keeps external contacts
                for contact in _contacts(user, index, stamp):
                    store.put("contact", contact["id"], contact, owner=user["id"])
            position = with_mailbox.index(user)
            colleagues = [with_mailbox[(position + step) % len(with_mailbox)] for step in range(1, 6)]
            for rank, colleague in enumerate(colleagues):
                person = _person(colleague, rank)
                store.put("person", f"{user['id']}/{colleague['id']}", person, owner=user["id"])


# ---------------------------------------------------------------- demo meetings in the rooms' calendars

DEMO_TIME_ZONE = "Europe/London"
_SEED_MARK = "demoCalendars"  # id of the `seed` document that says the meetings were booked


@dataclass(frozen=True)
class DemoMeeting:
    """A meeting booked in Outlook. `workday` 1 is the first working day after the seed day; times are local
    (`DEMO_TIME_ZONE`) and an `end` before `start` ends the next day. A weekly series has `weekly`
    occurrences; `moved` = (occurrence number from 1, new start, new end) on the same day; `cancelled` = the
    number of an occurrence the organizer cancelled."""

    organizer: str  # the alias before @
    rooms: tuple[str, ...]  # names of `_DEMO_ROOMS`
    workday: int
    start: str
    end: str
    subject: str
    attendees: tuple[str, ...] = ()
    private: bool = False
    weekly: int = 0
    moved: tuple[int, str, str] | None = None
    cancelled: int | None = None
    body: str = ""


DEMO_MEETINGS = [
    # Board room A
    DemoMeeting("george.hughes", ("Board room A",), 1, "10:05", "10:50", "Budget check-in",
                ("emma.wilson", "laura.bennett")),  # off the grid → 10:00–10:45
    DemoMeeting("nadia.rahman", ("Board room A",), 3, "09:00", "10:00", "Hiring panel prep",
                ("daniel.okafor", "chloe.evans")),
    DemoMeeting("chloe.evans", ("Board room A",), 6, "14:00", "15:00", "Roadmap review",
                ("hannah.clarke", "priya.shah", "daniel.okafor")),
    DemoMeeting("marcus.reid", ("Board room A",), 8, "11:00", "12:00", "Vendor demo: Northwind", ("emma.wilson",),
                body="Northwind show their new booking panels."),
    # Board room A and Board room A+B at once: the combined room depends on A (refused on import).
    DemoMeeting("laura.bennett", ("Board room A+B", "Board room A"), 4, "13:00", "15:00", "All-hands rehearsal",
                ("admin", "sophie.turner")),
    # Board room B: a weekly series, its 2nd occurrence moved an hour later, its 3rd cancelled.
    DemoMeeting("emma.wilson", ("Board room B",), 1, "15:00", "16:00", "Sales pipeline review",
                ("marcus.reid", "george.hughes"), weekly=4, moved=(2, "16:00", "17:00"), cancelled=3),
    DemoMeeting("marcus.reid", ("Board room B",), 2, "13:53", "14:07", "Quick sync: Fabrikam contract",
                ("emma.wilson",)),  # off the grid → 13:45–14:00
    DemoMeeting("marcus.reid", ("Board room B",), 5, "09:30", "10:30", "Salary negotiation: regional lead",
                private=True, body="Offer letter draft attached."),
    DemoMeeting("emma.wilson", ("Board room B",), 7, "11:00", "11:45", "Customer onboarding: Tailspin Toys"),
    # Board room A+B
    DemoMeeting("laura.bennett", ("Board room A+B",), 2, "09:00", "12:00", "Strategy day",
                ("admin", "daniel.okafor", "emma.wilson", "nadia.rahman")),
    DemoMeeting("admin", ("Board room A+B",), 9, "10:00", "12:00", "Partner summit prep",
                ("laura.bennett", "oliver.price")),
    # Focus room 1
    DemoMeeting("priya.shah", ("Focus room 1",), 1, "14:02", "14:18", "Call with Fabrikam"),  # → 14:00–14:30
    DemoMeeting("zoe.campbell", ("Focus room 1",), 2, "11:00", "11:30", "1:1 Zoe / Kofi", ("kofi.mensah",)),
    DemoMeeting("tariq.hussain", ("Focus room 1",), 5, "16:00", "16:30", "Reference call"),
    # Focus room 2
    DemoMeeting("isaac.lewis", ("Focus room 2",), 1, "09:00", "09:30", "Phone screen: backend engineer"),
    DemoMeeting("oliver.price", ("Focus room 2",), 3, "15:10", "15:40", "Call with Tailspin"),  # → 15:15–15:45
    DemoMeeting("samuel.wright", ("Focus room 2",), 6, "12:00", "12:30", "Pension advice call"),
    # Atrium; the fire drill's organizer is in the directory only (Roomsync creates the user on import).
    DemoMeeting("sophie.turner", ("Atrium",), 3, "12:30", "13:30", "Lunch & learn: Outlook and Roomsync",
                body="Bring your lunch; we bring the cake."),
    DemoMeeting("oliver.price", ("Atrium",), 5, "17:00", "19:00", "Summer party planning", ("sophie.turner",)),
    DemoMeeting("ben.carter", ("Atrium",), 7, "08:30", "09:30", "Fire drill briefing",
                body="Wardens only: routes, roll call and the new assembly point."),
    # Studio: a weekly series without exceptions, and an overnight event (refused: it spans midnight).
    DemoMeeting("hannah.clarke", ("Studio",), 2, "11:00", "12:00", "Design crit", ("chloe.evans", "priya.shah"),
                weekly=6),
    DemoMeeting("daniel.okafor", ("Studio",), 2, "13:00", "14:00", "Sprint planning",
                ("isaac.lewis", "kofi.mensah", "tariq.hussain", "zoe.campbell")),
    DemoMeeting("kofi.mensah", ("Studio",), 4, "20:00", "02:00", "Hack night", ("isaac.lewis", "zoe.campbell")),
    # Library
    DemoMeeting("samuel.wright", ("Library",), 2, "10:00", "11:00", "Reading group"),
    DemoMeeting("rosa.martinez", ("Library",), 4, "14:00", "15:30", "Writing session: case studies"),
    DemoMeeting("zoe.campbell", ("Library",), 9, "16:00", "17:00", "Mentoring", ("kofi.mensah",)),
]


def _workday(today: date, number: int) -> date:
    day = today
    while number:
        day += timedelta(days=1)
        if day.weekday() < 5:
            number -= 1
    return day


def _local(day: date, clock: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=zone(DEMO_TIME_ZONE))


def _when(day: date, start: str, end: str) -> tuple[datetime, datetime]:
    first, last = _local(day, start), _local(day, end)
    return first, last if last > first else _local(day + timedelta(days=1), end)


def _occurrence_start(meeting: DemoMeeting, first_day: date, number: int) -> datetime:
    return _local(first_day + timedelta(weeks=number - 1), meeting.start)


def _graph_time(moment: datetime) -> dict:
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": DEMO_TIME_ZONE}


def _meeting_payload(meeting: DemoMeeting, day: date, find_user) -> dict:
    start, end = _when(day, meeting.start, meeting.end)
    rooms = [find_user(f"{_slug(name)}@{DEMO_DOMAIN}") for name in meeting.rooms]
    people = [find_user(f"{alias}@{DEMO_DOMAIN}") for alias in meeting.attendees]
    attendees = [{"emailAddress": {"address": u["mail"], "name": u["displayName"]}, "type": "required"}
                 for u in people]
    attendees += [{"emailAddress": {"address": r["mail"], "name": r["displayName"]}, "type": "resource"}
                  for r in rooms]
    payload = {
        "subject": meeting.subject,
        "body": {"contentType": "text", "content": meeting.body},
        "start": _graph_time(start),
        "end": _graph_time(end),
        "location": {"displayName": rooms[0]["displayName"], "locationEmailAddress": rooms[0]["mail"]},
        "locations": [{"displayName": r["displayName"], "locationEmailAddress": r["mail"]} for r in rooms],
        "attendees": attendees,
        "sensitivity": "private" if meeting.private else "normal",
    }
    if meeting.weekly:
        payload["recurrence"] = {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [start.strftime("%A").lower()]},
            "range": {"type": "numbered", "startDate": day.isoformat(), "numberOfOccurrences": meeting.weekly,
                      "recurrenceTimeZone": DEMO_TIME_ZONE},
        }
    return payload


def seed_demo_calendars(app) -> int:
    from . import calendar as engine  # late: the calendar engine is not needed to seed the directory
    from .directory import find_user

    state = app.extensions["sandbox"]
    store = state.store
    with app.app_context(), store.lock:  # one writer: requests wait until every meeting is booked
        if store.get("seed", _SEED_MARK) is not None:
            return 0
        booked = 0
        if not store.ids("event"):  # a tenant someone has used keeps its calendars as they are
            today = now().astimezone(zone(DEMO_TIME_ZONE)).date()
            for meeting in DEMO_MEETINGS:
                day = _workday(today, meeting.workday)
                organizer = find_user(f"{meeting.organizer}@{DEMO_DOMAIN}")
                created, _ = engine.create_event(state, organizer, _meeting_payload(meeting, day, find_user))
                if meeting.moved:
                    number, start, end = meeting.moved
                    occurrence = engine.occurrence_id(created["id"], _occurrence_start(meeting, day, number))
                    new_start, new_end = _when(day + timedelta(weeks=number - 1), start, end)
                    engine.update_event(state, organizer, occurrence,
                                        {"start": _graph_time(new_start), "end": _graph_time(new_end)})
                if meeting.cancelled:
                    cancelled = _occurrence_start(meeting, day, meeting.cancelled)
                    engine.cancel_event(state, organizer, engine.occurrence_id(created["id"], cancelled))
                booked += 1
        store.put("seed", _SEED_MARK, {"id": _SEED_MARK, "seededAt": iso_z(now()), "meetings": booked})
    return booked
