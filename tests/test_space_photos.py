"""Spaces' photos: the image checks (`webapp.images`), uploading and removing on the space's admin form (types by
content, size limits, clear form errors, admins only, never a 500), serving them (versioned URL, long cache, ETag,
304), showing them on the week page and the tablet panel (and on a tablet already showing the panel, at its next
poll), and the Microsoft 365 room's photo for a paired space (fetched in the background, never over an admin's
choice)."""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from webapp import images
from webapp.booking.models import PHOTO_MAX_BYTES, SpacePhoto
from webapp.extensions import db
from webapp.integration import jobs
from webapp.integration.models import IntegrationSettings
from webapp.kiosk import board, devices
from webapp.sandbox import sandbox_state
from webapp.sandbox.seed import DEMO_BUTLER_EMAIL, user_id_for
from webapp.sync.models import Pair
from test_admin import admin, as_admin, venue  # noqa: F401 — the admin pages' fixtures

HX = {"HX-Request": "true"}
ROOM_EMAIL = "board-room-a@roomsync.test"  # a room mailbox of the sandbox tenant (seeded without a photo)


# ---------------------------------------------------------------------------------------------- image bytes


def png(width: int = 8, height: int = 6, colour=(40, 120, 200)) -> bytes:
    """A real, decodable PNG."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = (b"\x00" + bytes(colour) * width) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def jpeg_header(width: int, height: int) -> bytes:
    """SOI, an APP0 (JFIF) segment, fill bytes, then a baseline frame header: what a JPEG's size is read from."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + b"\xff\xff" + sof0 + b"\xff\xda"


def webp(kind: bytes, width: int, height: int) -> bytes:
    if kind == b"VP8 ":
        body = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    elif kind == b"VP8L":
        body = b"\x2f" + struct.pack("<I", (width - 1) | (height - 1) << 14)
    else:
        body = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = kind + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def upload(data: bytes, filename: str = "room.png"):
    return io.BytesIO(data), filename


@pytest.mark.parametrize("data, content_type, size", [
    (png(8, 6), "image/png", (8, 6)),
    (jpeg_header(4032, 3024), "image/jpeg", (4032, 3024)),
    (webp(b"VP8 ", 1600, 1200), "image/webp", (1600, 1200)),
    (webp(b"VP8L", 640, 480), "image/webp", (640, 480)),
    (webp(b"VP8X", 3000, 2000), "image/webp", (3000, 2000)),
    (b"GIF89a" + struct.pack("<HH", 32, 16) + b"\x00" * 8, "image/gif", (32, 16)),
])
def test_types_and_sizes_are_read_from_the_bytes(data, content_type, size):
    assert images.sniff(data) == content_type
    assert images.dimensions(data, content_type) == size


@pytest.mark.parametrize("data", [
    png()[:20],  # cut inside the header
    jpeg_header(10, 10)[:12],
    b"\xff\xd8\xff\xda" + b"\x00" * 20,  # scan data before any frame header
    b"RIFF\x10\x00\x00\x00WEBPVP8 \x04\x00\x00\x00\x00\x00\x00\x00",
    b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + struct.pack(">II", 0, 10),  # zero width
])
def test_truncated_or_malformed_headers_have_no_size(data):
    assert images.dimensions(data, images.sniff(data)) is None


def test_inspect_says_what_is_wrong():
    allowed = ("image/jpeg", "image/png", "image/webp")

    def problem(data: bytes) -> str:
        with pytest.raises(images.ImageRejected) as refused:
            images.inspect(data, allowed=allowed, max_bytes=1000, max_pixels=10_000)
        return refused.value.message

    assert images.inspect(png(), allowed=allowed, max_bytes=1000, max_pixels=10_000) == images.Image("image/png", 8, 6)
    assert problem(b"") == "The file is empty."
    assert problem(b"x" * 1001).startswith("The file is 0.1 MB; at most 0.1 MB is accepted.")
    assert "not a JPEG, PNG or WebP image" in problem(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    assert "not a JPEG, PNG or WebP image" in problem(b"GIF89a" + b"\x01\x00\x01\x00" + b"\x00" * 8)
    assert "damaged or incomplete" in problem(png()[:20])
    assert "200 × 200 pixels" in problem(png()[:16] + struct.pack(">II", 200, 200) + png()[24:])


# ---------------------------------------------------------------------------------------------- the admin form


@pytest.fixture
def room(venue, make_space):
    board.clear_cache()
    return make_space(venue, "Board room A", capacity=8)


def space_form(space, **overrides) -> dict:
    data = {"name": space.name, "kind": space.kind, "capacity": str(space.capacity), "tags": "", "description": "",
            "position": "0", "active": "y"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def photo_of(space) -> SpacePhoto | None:
    db.session.expire_all()
    return db.session.get(SpacePhoto, space.id)


def post_form(client, space, **overrides):
    return client.post(f"/admin/spaces/{space.id}/edit", data=space_form(space, **overrides),
                       content_type="multipart/form-data")


def test_an_admin_uploads_a_photo_that_the_week_page_shows_with_a_versioned_url(as_admin, room):
    data = png(40, 30)
    assert "space-photo-preview" not in as_admin.get(f"/admin/spaces/{room.id}/edit").get_data(as_text=True)
    response = post_form(as_admin, room, photo=upload(data, "whatever.jpg"))  # the name's extension is not asked
    assert response.status_code == 303
    photo = photo_of(room)
    assert (photo.source, photo.content_type, photo.width, photo.height) == ("upload", "image/png", 40, 30)
    assert photo.data == data and photo.etag == images.digest(data)
    url = f"/spaces/{room.id}/photo?v={photo.etag}"
    form_page = as_admin.get(f"/admin/spaces/{room.id}/edit").get_data(as_text=True)
    assert url in form_page and "Uploaded here." in form_page and "Remove the photo" in form_page
    week = as_admin.get(f"/spaces/{room.id}/week").get_data(as_text=True)
    assert f'src="{url}"' in week and 'width="40" height="30"' in week


def test_the_photo_is_served_with_a_long_cache_when_its_url_names_the_current_version(as_admin, room):
    data = png()
    post_form(as_admin, room, photo=upload(data))
    etag = images.digest(data)
    served = as_admin.get(f"/spaces/{room.id}/photo?v={etag}")
    assert served.status_code == 200 and served.data == data
    assert served.headers["Content-Type"] == "image/png" and served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert served.headers["ETag"] == f'"{etag}"'
    again = as_admin.get(f"/spaces/{room.id}/photo?v={etag}", headers={"If-None-Match": f'"{etag}"'})
    assert again.status_code == 304 and again.data == b""
    # Any other version (an old page, or none): the current photo, revalidated on every use.
    for query in ("?v=0123", ""):
        stale = as_admin.get(f"/spaces/{room.id}/photo{query}")
        assert stale.status_code == 200 and stale.headers["Cache-Control"] == "private, no-cache"
    assert as_admin.get(f"/spaces/{room.id + 100}/photo").status_code == 404
    assert as_admin.get(f"/spaces/{2**40}/photo").status_code == 404


def as_stranger(app, request):
    """`request(client)` by a client that never signed in, in an app context of its own: requests share the
    test's app context otherwise, and Flask-Login keeps the last signed-in user on its `g`."""
    with app.app_context():
        return request(app.test_client())


def test_signed_out_visitors_get_no_photo(app, as_admin, room):
    post_form(as_admin, room, photo=upload(png()))
    response = as_stranger(app, lambda stranger: stranger.get(f"/spaces/{room.id}/photo"))
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


@pytest.mark.parametrize("data, filename, message", [
    (b"just some text", "room.jpg", "not a JPEG, PNG or WebP image"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "room.png", "not a JPEG, PNG or WebP"),
    (b"GIF89a" + struct.pack("<HH", 32, 16) + b"\x00" * 8, "room.gif", "not a JPEG, PNG or WebP image"),
    (png()[:20], "room.png", "damaged or incomplete"),
    (b"", "room.png", "The file is empty."),
    (png()[:16] + struct.pack(">II", 9000, 9000) + png()[24:], "room.png", "9,000 × 9,000 pixels"),
    (png() + b"\x00" * PHOTO_MAX_BYTES, "room.png", "at most 5 MB is accepted"),
])
def test_a_bad_file_gets_a_clear_message_next_to_the_field_and_nothing_changes(as_admin, room, data, filename, message):
    post_form(as_admin, room, photo=upload(png(), "first.png"))
    before = photo_of(room).etag
    response = post_form(as_admin, room, name="Board room Alpha", photo=upload(data, filename))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    error = re.search(r'<p class="field-error" id="photo-error">([^<]*)</p>', page)
    assert error is not None and message in error.group(1).replace("&#39;", "'"), page[:3000]
    assert 'value="Board room Alpha"' in page  # what was typed is kept
    assert photo_of(room).etag == before
    db.session.expire_all()
    assert room.name == "Board room A"  # the whole change was refused, not half of it


@pytest.fixture
def csrf_checked(app):
    """CSRF on, as in production (the suite turns it off): its check is the first to read a request's body."""
    app.config["WTF_CSRF_ENABLED"] = True
    yield
    app.config["WTF_CSRF_ENABLED"] = False


def test_an_upload_too_large_to_read_gets_the_form_back_with_why(as_admin, room, csrf_checked):
    response = post_form(as_admin, room, photo=upload(b"\xff\xd8\xff" + b"\x00" * 21_000_000, "huge.jpg"))
    page = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "larger than 20 MB, so it was not read and nothing was saved" in page
    assert 'value="Board room A"' in page and 'enctype="multipart/form-data"' in page
    assert photo_of(room) is None
    # Elsewhere in the admin area (no form to come back to): the plain page, also for a URL naming a space.
    for path in ("/admin/venue", f"/admin/spaces/{room.id}/delete", f"/admin/spaces/{room.id + 1}/edit"):
        elsewhere = as_admin.post(path, data={"name": "x" * 21_000_000})
        assert elsewhere.status_code == 413 and "larger than Roomsync accepts" in elsewhere.get_data(as_text=True)
    # Under the limit the CSRF check has its say as usual.
    assert post_form(as_admin, room, photo=upload(png())).status_code == 400


def test_removing_the_photo(as_admin, app, room, admin):
    post_form(as_admin, room, photo=upload(png()))
    etag = photo_of(room).etag
    assert post_form(as_admin, room, remove_photo="y").status_code == 303
    photo = photo_of(room)
    assert (photo.source, photo.etag, photo.shown) == ("removed", None, False)
    assert db.session.scalar(select(SpacePhoto.data).where(SpacePhoto.space_id == room.id)) is None
    assert as_admin.get(f"/spaces/{room.id}/photo?v={etag}").status_code == 404
    assert 'data-testid="space-photo"' not in as_admin.get(f"/spaces/{room.id}/week").get_data(as_text=True)
    page = as_admin.get(f"/admin/spaces/{room.id}/edit").get_data(as_text=True)
    assert "Removed: this space shows no photo." in page and "Remove the photo" not in page
    tablet = tablet_for(app, room, admin)
    assert 'data-testid="kiosk-photo"' not in tablet.get("/kiosk/panel").get_data(as_text=True)


def test_contradictory_choices_are_refused(as_admin, room):
    response = post_form(as_admin, room, photo=upload(png()), remove_photo="y")
    assert response.status_code == 422 and "not both" in response.get_data(as_text=True)
    response = post_form(as_admin, room, use_room_photo="y")
    assert response.status_code == 422 and "not paired with a Microsoft 365 room" in response.get_data(as_text=True)
    assert photo_of(room) is None


def test_a_new_space_can_come_with_its_photo(as_admin, venue):
    response = as_admin.post("/admin/spaces/new", content_type="multipart/form-data", data={
        "name": "Atrium", "kind": "room", "capacity": "40", "position": "0", "active": "y",
        "photo": upload(webp(b"VP8X", 1600, 1200), "atrium.webp")})
    assert response.status_code == 303
    photo = db.session.scalar(select(SpacePhoto))
    assert (photo.content_type, photo.width, photo.height, photo.source) == ("image/webp", 1600, 1200, "upload")
    # The photo goes with its space.
    assert as_admin.post(f"/admin/spaces/{photo.space_id}/delete").status_code in (200, 204, 303)
    db.session.expire_all()
    assert db.session.scalar(select(SpacePhoto)) is None


def test_members_and_strangers_cannot_upload(app, client, login, make_user, room):
    member = make_user("member@roomsync.test")
    as_member = login(member)
    assert post_form(as_member, room, photo=upload(png())).status_code == 403
    # Over the app's 1 MB: members do not get the admins' larger limit (the CSRF check, off in tests, would read
    # the body first and answer 413; here the admin check answers before anything reads it).
    assert post_form(as_member, room, photo=upload(png() + b"\x00" * 2_000_000)).status_code in (403, 413)
    response = as_stranger(app, lambda stranger: post_form(stranger, room, photo=upload(png())))
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]
    assert photo_of(room) is None


def test_bad_input_on_the_form_never_gets_a_500(as_admin, room):
    attempts = [
        dict(photo="not a file"),  # a plain field where a file belongs: ignored
        dict(photo=upload(png(), "")),  # no file name: no file chosen
        dict(photo=upload(png(), "\x00.png")),
        dict(photo=upload(b"\x00" * 64, "../../etc/passwd")),
        dict(remove_photo="maybe", use_room_photo=["1", "2"]),
    ]
    for overrides in attempts:
        response = post_form(as_admin, room, **overrides)
        assert response.status_code in (303, 400, 422), (overrides, response.status_code)
    garbage = as_admin.post(f"/admin/spaces/{room.id}/edit", data=b"--x\r\nnonsense",
                            content_type="multipart/form-data; boundary=x")
    assert garbage.status_code in (400, 422)
    no_boundary = as_admin.post(f"/admin/spaces/{room.id}/edit", data=b"abc", content_type="multipart/form-data")
    assert no_boundary.status_code in (400, 422)


# ---------------------------------------------------------------------------------------------- the tablet


def tablet_for(app, space, admin):
    client = app.test_client()
    code = devices.start_enrolment(space.venue, name=f"{space.name} door", space=space, actor=admin)
    assert client.post("/kiosk", data={"code": code}).status_code == 303
    return client


def test_the_panel_shows_the_photo_and_a_polling_tablet_gets_a_new_one_without_a_reload(app, as_admin, admin, room,
                                                                                       make_space, clock):
    tablet = tablet_for(app, room, admin)
    page = tablet.get("/kiosk/panel").get_data(as_text=True)
    assert re.search(r'<figure id="kiosk-photo" class="kiosk-photo" hidden>\s*</figure>', page)
    tag = tablet.get("/kiosk/panel/status", headers=HX).headers["ETag"]
    assert tablet.get("/kiosk/panel/status", headers={**HX, "If-None-Match": tag}).status_code == 304

    data = png(12, 9)
    post_form(as_admin, room, photo=upload(data))
    etag = images.digest(data)
    url = f"/kiosk/panel/photo?v={etag}"
    assert f'<img src="{url}" alt="" data-testid="kiosk-photo">' in tablet.get("/kiosk/panel").get_data(as_text=True)
    # A tablet showing the panel already: its next poll is a 200 carrying the photo out of band.
    poll = tablet.get("/kiosk/panel/status", headers={**HX, "If-None-Match": tag})
    fragment = poll.get_data(as_text=True)
    assert poll.status_code == 200
    assert re.search(r'<figure id="kiosk-photo" class="kiosk-photo" hx-swap-oob="true">\s*<img src="'
                     + re.escape(url), fragment)
    assert fragment.index("</section>") < fragment.index('id="kiosk-photo"')  # beside the section, not in it
    served = tablet.get(url)
    assert served.status_code == 200 and served.data == data
    assert served.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert tablet.get(url, headers={"If-None-Match": f'"{etag}"'}).status_code == 304
    # Only the tablet's own space's photo, and only for an enrolled tablet.
    other = make_space(room.venue, "Focus room")
    post_form(as_admin, other, photo=upload(png(3, 3)))
    assert tablet_for(app, other, admin).get("/kiosk/panel/photo").data == png(3, 3)
    assert app.test_client().get(url).status_code == 404
    lobby = app.test_client()
    code = devices.start_enrolment(room.venue, name="Lobby", space=None, actor=admin)
    lobby.post("/kiosk", data={"code": code})
    assert lobby.get("/kiosk/panel/photo").status_code == 404


# ---------------------------------------------------------------------------------------------- Microsoft 365


@pytest.fixture
def paired(connected, sandbox_admin, venue, room, admin):
    """The integration on, the room paired with the sandbox's "Board room A"; `set_room_photo(bytes or None)`
    puts a photo on the room mailbox in the sandbox (restored after the test)."""
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email=DEMO_BUTLER_EMAIL, enabled=True))
    db.session.add(Pair(venue_id=venue.id, space_id=room.id, room_email=ROOM_EMAIL, room_id=user_id_for(ROOM_EMAIL),
                        state="live"))
    db.session.commit()
    store = sandbox_state(connected.server.app).store

    def set_room_photo(data: bytes | None) -> None:
        if data is None:
            store.delete("photo", user_id_for(ROOM_EMAIL))
            return
        store.put("photo", user_id_for(ROOM_EMAIL), {
            "id": "240x240", "width": 240, "height": 240, "contentType": "image/png", "etag": '"ROOM1"',
            "data": base64.b64encode(data).decode()})

    return set_room_photo


def test_a_paired_room_shows_its_microsoft_365_photo_until_an_admin_uploads_one(paired, as_admin, room, clock):
    room_photo = png(24, 18, (200, 60, 30))
    paired(room_photo)
    jobs.refresh_room_photo(room.id)
    photo = photo_of(room)
    assert (photo.source, photo.content_type, photo.width, photo.height) == ("microsoft365", "image/png", 24, 18)
    page = as_admin.get(f"/admin/spaces/{room.id}/edit").get_data(as_text=True)
    assert f"From the Microsoft 365 room {ROOM_EMAIL}" in page and "Use the Microsoft 365 room" not in page
    # An upload takes its place, and the refresh leaves it alone.
    uploaded = png(10, 10)
    post_form(as_admin, room, photo=upload(uploaded))
    jobs.refresh_room_photo(room.id)
    assert photo_of(room).etag == images.digest(uploaded)
    assert "Use the Microsoft 365 room&#39;s photo" in as_admin.get(f"/admin/spaces/{room.id}/edit").get_data(
        as_text=True)
    # Back to the room's photo: fetched at once (the job runs inline in tests).
    assert post_form(as_admin, room, use_room_photo="y").status_code == 303
    photo = photo_of(room)
    assert photo.source == "microsoft365" and photo.etag == images.digest(room_photo)
    # Removed: none at all, and the refresh does not bring the room's back.
    post_form(as_admin, room, remove_photo="y")
    jobs.refresh_room_photo(room.id)
    assert photo_of(room).source == "removed" and not photo_of(room).shown
    # Unpaired: the room's photo goes at the next hourly round (an admin's own choice stays).
    post_form(as_admin, room, use_room_photo="y")
    assert photo_of(room).source == "microsoft365"
    db.session.delete(db.session.scalar(select(Pair)))
    db.session.commit()
    jobs.refresh_room_photos()
    assert photo_of(room) is None


def test_a_room_without_a_photo_is_recorded_and_asked_again_a_day_later(paired, room, clock, monkeypatch):
    paired(None)
    jobs.refresh_room_photo(room.id)
    photo = photo_of(room)
    assert (photo.source, photo.shown) == ("microsoft365", False)
    queued = []
    monkeypatch.setattr(jobs, "enqueue", lambda func, *args: queued.append((func.__name__, args)))
    jobs.refresh_room_photos()
    assert queued == []  # asked just now
    clock.tick(timedelta(days=1, minutes=1))
    jobs.refresh_room_photos()
    assert queued == [("refresh_room_photo", (room.id,))]
    # A photo Microsoft 365 refuses to be (a GIF here) is not shown either.
    paired(b"GIF89a" + struct.pack("<HH", 32, 16) + b"\x00" * 8)
    monkeypatch.undo()
    jobs.refresh_room_photo(room.id)
    assert not photo_of(room).shown


def test_no_room_photos_without_the_integration(paired, room, venue, monkeypatch):
    paired(png())
    settings = db.session.scalar(select(IntegrationSettings))
    settings.enabled = False
    db.session.commit()
    monkeypatch.setattr(jobs, "enqueue", lambda *a: pytest.fail("nothing is queued when the integration is off"))
    jobs.refresh_room_photos()
    jobs.refresh_room_photo(room.id)
    assert photo_of(room) is None
