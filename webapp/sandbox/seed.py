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
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import uuid
import zlib

from .clock import iso_z, now

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
