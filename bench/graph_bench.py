"""Graph client benchmark: `.venv/bin/python bench/graph_bench.py [--rooms 500] [--users 5000] [--repeat 3]`.

Starts the sandbox tenant in-process over real HTTPS on a free port, with `--rooms` extra rooms and `--users`
extra directory users written into its store before it serves (documents shaped as webapp/sandbox/seed.py
writes them), then measures Roomsync's real `GraphClient` (MSAL token, shared session, TLS with the
sandbox CA):

- listing every room (`/places/microsoft.graph.room`) at the documented default page size (100) and at 999;
- listing every user (`/users`, `$select`, pages of 999 — the documented maximum for users);
- fetching 20 users one request at a time vs one 20-request `$batch`.

Each row shows the Graph HTTP requests made (every attempt counts; the one token request is not), the items
returned and the best and median wall time of `--repeat` runs. Prints a Markdown table; nothing is written.
Latency per request is the loopback sandbox's: against Microsoft each request costs tens of milliseconds
more, which is what the request counts are for.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webapp.graph import GraphClient  # noqa: E402
from webapp.graph.auth import TokenProvider, new_session  # noqa: E402
from webapp.graph.settings import read_env_file, settings_from_values  # noqa: E402
from webapp.sandbox import sandbox_state  # noqa: E402
from webapp.sandbox.serve import make_sandbox_server  # noqa: E402

DOMAIN = "bench.roomsync.test"


def _user_doc(index: int) -> dict:
    email = f"user{index:05d}@{DOMAIN}"
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, email)), "businessPhones": [], "displayName": f"Bench User {index:05d}",
        "givenName": "Bench", "jobTitle": None, "mail": email, "mobilePhone": None, "officeLocation": None,
        "preferredLanguage": "en-GB", "surname": f"User{index:05d}", "userPrincipalName": email,
        "accountEnabled": True, "assignedLicenses": [], "department": None, "companyName": "Bench",
        "mailNickname": email.split("@")[0], "usageLocation": "GB", "userType": "Member", "mailboxEnabled": True,
        "isRoom": False,
    }


def _room_doc(index: int) -> dict:
    email = f"room{index:04d}@{DOMAIN}"
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, email)), "displayName": f"Bench room {index:04d}", "address": None,
        "geoCoordinates": None, "phone": "", "nickname": f"Bench room {index:04d}", "emailAddress": email,
        "building": f"B{index % 5}", "floorNumber": index % 10, "floorLabel": str(index % 10), "label": None,
        "capacity": 2 + index % 20, "bookingType": "standard", "audioDeviceName": None, "videoDeviceName": None,
        "displayDeviceName": None, "isWheelChairAccessible": True, "tags": [], "roomListEmail": None,
        "calendarProcessing": {},
    }


def _measure(label: str, client: GraphClient, repeat: int, run) -> dict:
    times, calls, items = [], 0, 0
    for _ in range(repeat):
        before = client.calls
        began = time.perf_counter()
        items = run()
        times.append(time.perf_counter() - began)
        calls = client.calls - before
    return {"label": label, "calls": calls, "items": items, "best": min(times), "median": statistics.median(times)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as instance:
        server = make_sandbox_server("127.0.0.1", 0, instance, config={"SANDBOX_DB": ":memory:"})
        store = sandbox_state(server.app).store
        with store.lock:
            for index in range(args.users):
                doc = _user_doc(index)
                store.put("user", doc["id"], doc)
            for index in range(args.rooms):
                doc = _room_doc(index)
                store.put("room", doc["id"], doc)
        total_users, total_rooms = len(store.ids("user")), len(store.ids("room"))
        server.start()
        try:
            settings = settings_from_values(read_env_file(Path(instance) / "sandbox.env"), "sandbox")
            session = new_session(settings)
            client = GraphClient(settings, tokens=TokenProvider(settings, session), session=session)
            client.tokens.token()  # the token request is not what we measure
            users = client.list_users()
            twenty = [u.id for u in users[:20]]
            rows = [
                _measure(f"list {total_rooms} rooms, pages of 100", client, args.repeat,
                         lambda: len(client.list_rooms(page_size=100))),
                _measure(f"list {total_rooms} rooms, pages of 999", client, args.repeat,
                         lambda: len(client.list_rooms(page_size=999))),
                _measure(f"list {total_users} users, pages of 999", client, args.repeat,
                         lambda: len(client.list_users())),
                _measure("20 users, one request each", client, args.repeat,
                         lambda: len([client.get_user(key) for key in twenty])),
                _measure("20 users, one $batch", client, args.repeat,
                         lambda: len([r for r in client.batch([client.get_user_request(str(i), key)
                                                               for i, key in enumerate(twenty)]) if r.ok])),
            ]
        finally:
            server.shutdown()

    print(f"Graph client against the sandbox (HTTPS on loopback), best and median of {args.repeat} runs; "
          f"token requests: {client.tokens.requests}\n")
    print("| operation | Graph requests | items | best (s) | median (s) |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['label']} | {row['calls']} | {row['items']} | {row['best']:.3f} | {row['median']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
