"""The admin area through its pages: permissions, venue settings, spaces, users, custom fields."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from webapp.admin import operations
from webapp.auth.models import User
from webapp.booking.errors import ValidationError
from webapp.booking.models import Booking, CustomField, Space, Venue
from webapp.extensions import db
from webapp.htmx import HX_REQUEST

HTMX = {HX_REQUEST: "true"}


@pytest.fixture
def venue(make_venue):
    return make_venue()


@pytest.fixture
def admin(make_user):
    return make_user("admin@roomsync.test", first_name="Ada", last_name="Admin", role="admin")


@pytest.fixture
def as_admin(login, admin, venue):
    return login(admin)


def venue_form(**overrides) -> dict:
    data = {
        "name": "HQ",
        "timezone": "Europe/London",
        "granularity_minutes": "15",
        "booking_window_days": "365",
        "max_duration_minutes": "720",
    }
    for day in ("mon", "tue", "wed", "thu", "fri"):
        data.update({f"{day}_open": "y", f"{day}_opens": "07:00", f"{day}_closes": "22:00"})
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def space_form(**overrides) -> dict:
    data = {"name": "Room", "kind": "room", "capacity": "4", "tags": "", "description": "", "position": "0", "active": "y"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def user_form(**overrides) -> dict:
    data = {"email": "new@roomsync.test", "first_name": "New", "last_name": "Person", "role": "member",
            "active": "y", "password": "long-enough"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


# ---------------------------------------------------------------------------------------------- permissions


ADMIN_PAGES = ["/admin/", "/admin/venue", "/admin/spaces", "/admin/spaces/new", "/admin/users", "/admin/users/new",
               "/admin/fields", "/admin/fields/new"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client, venue, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_members_are_refused(client, venue, make_user, login, path):
    login(make_user())
    assert client.get(path).status_code == 403


def test_members_cannot_post_either(client, venue, make_user, make_space, login):
    space = make_space(venue, "Room A")
    login(make_user())
    assert client.post("/admin/venue", data=venue_form(name="Hacked")).status_code == 403
    assert client.post(f"/admin/spaces/{space.id}/delete").status_code == 403
    assert client.post("/admin/users/new", data=user_form(role="admin")).status_code == 403
    assert db.session.get(Venue, venue.id).name == "HQ"
    assert db.session.get(Space, space.id) is not None
    assert db.session.scalar(select(User).where(User.email == "new@roomsync.test")) is None


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admins_see_every_page(as_admin, path):
    response = as_admin.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]


def test_index_links_to_each_section(as_admin):
    page = as_admin.get("/admin/").get_data(as_text=True)
    for path in ("/admin/venue", "/admin/spaces", "/admin/users", "/admin/fields"):
        assert f'href="{path}"' in page


def test_forms_need_a_csrf_token(app, as_admin):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = as_admin.post("/admin/venue", data=venue_form(name="No token"))
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert response.status_code == 400
    assert db.session.scalar(select(Venue.name)) == "HQ"


# ---------------------------------------------------------------------------------------------- venue


def test_venue_page_shows_the_current_settings(as_admin):
    page = as_admin.get("/admin/venue").get_data(as_text=True)
    assert 'value="Europe/London"' in page
    assert 'id="mon_opens"' in page and 'value="07:00"' in page
    assert 'checked id="sun_open"' in page


def test_saving_venue_settings(as_admin, venue):
    response = as_admin.post("/admin/venue", data=venue_form(
        name="Head office", timezone="Europe/Paris", granularity_minutes="30", booking_window_days="90",
        max_duration_minutes="240", allow_overnight=None, admins_see_private="y", has_pricing_rules="y",
        mon_opens="8:00", mon_closes="24:00",
    ))
    assert response.status_code == 303
    db.session.expire_all()
    venue = db.session.get(Venue, venue.id)
    assert (venue.name, venue.timezone, venue.granularity_minutes) == ("Head office", "Europe/Paris", 30)
    assert (venue.booking_window_days, venue.max_duration_minutes) == (90, 240)
    assert venue.admins_see_private and venue.has_pricing_rules and not venue.online_payments_enabled
    assert venue.opening_hours["mon"] == ["08:00", "24:00"]
    assert venue.opening_hours["sat"] is None and venue.hours_for(5) is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"timezone": "Mars/Olympus"}, "Choose a time zone"),
        ({"granularity_minutes": "25"}, "Not a valid choice"),
        ({"booking_window_days": "lots"}, "Not a valid integer"),
        ({"booking_window_days": "0"}, "between 1 and 1080"),
        ({"booking_window_days": "1081"}, "between 1 and 1080"),
        ({"max_duration_minutes": "50"}, "whole number of 15-minute steps"),
        ({"max_duration_minutes": "1500"}, "allow overnight bookings"),
        ({"mon_opens": "18:00", "mon_closes": "09:00"}, "Closing must be after opening"),
        ({"mon_opens": "08:10"}, "on the 15-minute grid"),
        ({"tue_closes": "25:00"}, "Enter a time"),
        ({"wed_opens": "noon"}, "Enter a time"),
        ({"name": ""}, "This field is required"),
    ],
)
def test_bad_venue_settings_are_refused_with_what_was_typed(as_admin, venue, overrides, message):
    data = venue_form(**{"name": "Typed name", **overrides})
    response = as_admin.post("/admin/venue", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message.lower() in page.lower()
    typed_text = {k: v for k, v in data.items() if k not in ("granularity_minutes",) and not k.endswith("_open") and v}
    for value in typed_text.values():
        assert f'value="{value}"' in page
    db.session.expire_all()
    assert db.session.get(Venue, venue.id).name == "HQ"


def test_long_bookings_need_overnight(as_admin, venue):
    response = as_admin.post("/admin/venue", data=venue_form(max_duration_minutes="2880", allow_overnight="y"))
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Venue, venue.id).max_duration_minutes == 2880
    beyond_hard_cap = as_admin.post("/admin/venue", data=venue_form(max_duration_minutes=str(15 * 24 * 60), allow_overnight="y"))
    assert beyond_hard_cap.status_code == 422


def test_a_grid_that_upcoming_bookings_do_not_fit_is_refused(clock, as_admin, admin, venue, make_space, make_booking, london_time):
    room = make_space(venue, "Room A")
    make_booking(venue, room, london_time(2026, 3, 3, 10, 15), 30, holder=admin)
    make_booking(venue, room, london_time(2026, 3, 4, 10, 0), 45, holder=admin)
    make_booking(venue, room, london_time(2026, 3, 5, 10, 0), 60, holder=admin)
    response = as_admin.post("/admin/venue", data=venue_form(granularity_minutes="30"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "2 upcoming bookings do not fit a 30-minute grid" in page
    assert "Room A" in page and "Tue 03 Mar 2026 10:15" in page
    db.session.expire_all()
    assert db.session.get(Venue, venue.id).granularity_minutes == 15
    # 15 → 60: all three are off the hourly grid... except the one on the hour: 10:00–11:00.
    assert "2 upcoming bookings" in as_admin.post("/admin/venue", data=venue_form(granularity_minutes="60")).get_data(as_text=True)


def test_past_and_cancelled_bookings_do_not_hold_the_grid(clock, as_admin, admin, venue, make_space, make_booking, london_time):
    from webapp.booking.operations import cancel_booking

    room = make_space(venue)
    make_booking(venue, room, london_time(2026, 3, 2, 9, 15), 15, holder=admin)  # this morning, ended 09:30
    cancelled = make_booking(venue, room, london_time(2026, 3, 10, 9, 15), 15, holder=admin)
    cancel_booking(cancelled, actor=admin)
    clock.move_to("2026-03-02 10:00:00+00:00")
    response = as_admin.post("/admin/venue", data=venue_form(granularity_minutes="30"))
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Venue, venue.id).granularity_minutes == 30


def test_a_time_zone_that_moves_bookings_off_the_grid_is_refused(clock, as_admin, admin, make_venue, make_space, make_booking, london_time):
    venue = db.session.scalar(select(Venue))
    venue.granularity_minutes = 60
    db.session.commit()
    room = make_space(venue)
    make_booking(venue, room, london_time(2026, 3, 3, 10, 0), 60, holder=admin)
    response = as_admin.post("/admin/venue", data=venue_form(granularity_minutes="60", timezone="Asia/Kolkata"))
    assert response.status_code == 422
    assert "1 upcoming booking does not fit a 60-minute grid in Asia/Kolkata" in response.get_data(as_text=True)
    # Paris is a whole hour from London: the booking still fits.
    assert as_admin.post("/admin/venue", data=venue_form(granularity_minutes="60", timezone="Europe/Paris")).status_code == 303


def test_the_first_save_creates_the_venue(client, make_user, login):
    login(make_user(role="admin"))
    assert client.get("/admin/venue").status_code == 200
    response = client.post("/admin/venue", data=venue_form(name="New site", timezone="America/New_York"))
    assert response.status_code == 303
    venue = db.session.scalar(select(Venue))
    assert (venue.name, venue.timezone) == ("New site", "America/New_York")


# ---------------------------------------------------------------------------------------------- spaces


def test_space_list_shows_kind_capacity_tags_and_dependencies(as_admin, venue, make_space):
    a = make_space(venue, "Board A", tags=["screen"])
    b = make_space(venue, "Board B", kind="desk", capacity=1)
    make_space(venue, "Board A+B", capacity=20, depends_on=[a, b])
    page = as_admin.get("/admin/spaces").get_data(as_text=True)
    assert "Board A+B" in page and "Desk" in page and ">20<" in page
    assert '<span class="tag">screen</span>' in page
    assert "Board A, Board B" in page


def test_creating_a_space(as_admin, venue, make_space):
    a = make_space(venue, "Room A")
    response = as_admin.post("/admin/spaces/new", data=space_form(
        name="  Big   room ", kind="room", capacity="12", tags="Screen,  white board , screen,,", depends_on=[str(a.id)],
        description="By the lifts", position="3",
    ))
    assert response.status_code == 303
    space = db.session.scalar(select(Space).where(Space.name == "Big room"))
    assert (space.capacity, space.tags, space.position, space.active) == (12, ["screen", "white board"], 3, True)
    assert [s.name for s in space.depends_on] == ["Room A"]
    assert space.description == "By the lifts"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"name": "room a"}, "There is already a space called room a"),
        ({"capacity": "0"}, "Number must be between 1 and 10000"),
        ({"capacity": "many"}, "Not a valid integer"),
        ({"kind": "hall"}, "Not a valid choice"),
        ({"name": ""}, "This field is required"),
        ({"depends_on": ["999"]}, "not a valid choice"),
        ({"depends_on": ["x"]}, "Invalid choice"),
    ],
)
def test_bad_spaces_are_refused_with_what_was_typed(as_admin, venue, make_space, overrides, message):
    make_space(venue, "Room A")
    response = as_admin.post("/admin/spaces/new", data=space_form(**overrides))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message.lower() in page.lower()
    if "capacity" in overrides:
        assert f'value="{overrides["capacity"]}"' in page
    assert db.session.scalar(select(Space).where(Space.name != "Room A")) is None


def test_editing_a_space(as_admin, venue, make_space):
    space = make_space(venue, "Room A", tags=["screen"])
    page = as_admin.get(f"/admin/spaces/{space.id}/edit").get_data(as_text=True)
    assert 'value="screen"' in page
    response = as_admin.post(f"/admin/spaces/{space.id}/edit", data=space_form(name="Room Alpha", capacity="8", active=None))
    assert response.status_code == 303
    db.session.expire_all()
    space = db.session.get(Space, space.id)
    assert (space.name, space.capacity, space.active, space.tags) == ("Room Alpha", 8, False, [])


def test_edits_with_missing_fields_never_fail(as_admin, venue, make_space):
    space = make_space(venue, "Room A", tags=["screen"])
    field = CustomField(venue=venue, key="diet", label="Diet", kind="choice", choices=["Vegan"])
    db.session.add(field)
    db.session.commit()
    assert as_admin.post(f"/admin/spaces/{space.id}/edit", data={"name": "Room A", "kind": "room", "capacity": "2"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Space, space.id).tags == []
    response = as_admin.post(f"/admin/fields/{field.id}/edit", data={"label": "Diet", "kind": "choice"})
    assert response.status_code == 422 and "needs at least one choice" in response.get_data(as_text=True)
    garbage = {"name": "\x00" * 3, "capacity": "1e9", "depends_on": "-1", "email": "@", "role": [], "active": "2",
               "granularity_minutes": "NaN", "mon_open": "y", "mon_opens": "99:99", "kind": "x" * 500}
    for path in ("/admin/venue", f"/admin/spaces/{space.id}/edit", "/admin/spaces/new", "/admin/users/new",
                 f"/admin/fields/{field.id}/edit", "/admin/fields/new", f"/admin/spaces/{space.id}/active"):
        for data in ({}, garbage):
            assert as_admin.post(path, data=data).status_code in (400, 422), (path, data)


def test_a_space_may_keep_its_own_name(as_admin, venue, make_space):
    space = make_space(venue, "Room A")
    assert as_admin.post(f"/admin/spaces/{space.id}/edit", data=space_form(name="Room A")).status_code == 303


def test_dependency_cycles_are_refused(as_admin, venue, make_space):
    a = make_space(venue, "A")
    b = make_space(venue, "B", depends_on=[a])
    c = make_space(venue, "C", depends_on=[b])
    # Direct: A → B while B → A.
    direct = as_admin.post(f"/admin/spaces/{a.id}/edit", data=space_form(name="A", depends_on=[str(b.id)]))
    assert direct.status_code == 422
    assert "A cannot depend on B, which already depends on A: that would make a cycle (A → B → A)." in direct.get_data(as_text=True)
    # Transitive: A → C while C → B → A.
    transitive = as_admin.post(f"/admin/spaces/{a.id}/edit", data=space_form(name="A", depends_on=[str(c.id)]))
    assert transitive.status_code == 422
    assert "A → C → B → A" in transitive.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Space, a.id).depends_on == []


def test_a_space_cannot_depend_on_itself(venue, make_space):
    a = make_space(venue, "A")
    with pytest.raises(ValidationError) as refused:
        operations.update_space(a, operations.SpaceInput(name="A", depends_on_ids=[a.id]))
    assert refused.value.fields == {"depends_on": "A cannot depend on itself."}


def test_the_edit_form_does_not_offer_the_space_itself(as_admin, venue, make_space):
    a = make_space(venue, "Room A")
    make_space(venue, "Room B")
    page = as_admin.get(f"/admin/spaces/{a.id}/edit").get_data(as_text=True)
    assert "<span>Room B</span>" in page and "<span>Room A</span>" not in page


def test_a_dependency_that_would_double_book_is_refused(clock, as_admin, admin, venue, make_space, make_booking, london_time):
    a = make_space(venue, "Board A")
    both = make_space(venue, "Board A+B")
    make_booking(venue, a, london_time(2026, 3, 3, 10, 0), 60, holder=admin)
    make_booking(venue, both, london_time(2026, 3, 3, 10, 30), 60, holder=admin)
    response = as_admin.post(f"/admin/spaces/{both.id}/edit", data=space_form(name="Board A+B", depends_on=[str(a.id)]))
    assert response.status_code == 422
    assert "would be a double booking" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Space, both.id).depends_on == []


def test_unknown_spaces_are_404(as_admin, make_venue, make_space):
    elsewhere = make_space(make_venue(name="Other venue"), "Theirs")
    for space_id in (9999, elsewhere.id):
        assert as_admin.get(f"/admin/spaces/{space_id}/edit").status_code == 404
        assert as_admin.post(f"/admin/spaces/{space_id}/delete").status_code == 404
        assert as_admin.post(f"/admin/spaces/{space_id}/active", data={"active": "0"}).status_code == 404
    assert as_admin.get("/admin/spaces/abc/edit").status_code == 404
    huge = 2**31
    for path in (f"/admin/spaces/{huge}/edit", f"/admin/users/{huge}/edit", f"/admin/fields/{huge}/edit"):
        assert as_admin.get(path).status_code == 404


def test_text_the_database_cannot_store_is_refused(as_admin, venue):
    response = as_admin.post("/admin/spaces/new", data=space_form(name="Room\x00A"))
    assert response.status_code == 422 and "Must not contain NUL characters." in response.get_data(as_text=True)
    assert as_admin.get("/admin/users?q=a%00b").status_code == 200


def test_a_space_with_upcoming_bookings_is_not_deleted(clock, as_admin, admin, venue, make_space, make_booking, london_time):
    room = make_space(venue, "Room A")
    make_booking(venue, room, london_time(2026, 3, 3, 10, 0), 60, holder=admin, rrule="FREQ=WEEKLY;COUNT=3")
    response = as_admin.post(f"/admin/spaces/{room.id}/delete", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "Room A has 1 upcoming booking" in page and "deactivate" in page
    assert db.session.get(Space, room.id) is not None


def test_a_space_without_upcoming_bookings_is_deleted(clock, as_admin, admin, venue, make_space, make_booking, london_time):
    room = make_space(venue, "Room A")
    booking = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), 60, holder=admin)
    clock.move_to("2026-03-02 12:00:00+00:00")  # the booking is over
    response = as_admin.post(f"/admin/spaces/{room.id}/delete")
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Space, room.id) is None
    assert db.session.get(Booking, booking.id).spaces == []


def test_deactivating_a_space_swaps_its_row(as_admin, venue, make_space):
    room = make_space(venue, "Room A")
    response = as_admin.post(f"/admin/spaces/{room.id}/active", data={"active": "0"}, headers=HTMX)
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment
    assert f'id="space-{room.id}"' in fragment and "Inactive" in fragment and 'hx-post="' in fragment
    db.session.expire_all()
    assert db.session.get(Space, room.id).active is False
    # Without htmx: back to the list.
    assert as_admin.post(f"/admin/spaces/{room.id}/active", data={"active": "1"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Space, room.id).active is True
    assert as_admin.post(f"/admin/spaces/{room.id}/active", data={"active": "maybe"}).status_code == 400


# ---------------------------------------------------------------------------------------------- users


def test_user_search(as_admin, make_user):
    make_user("grace@roomsync.test", first_name="Grace", last_name="Hopper")
    make_user("linus@roomsync.test", first_name="Linus", last_name="T")
    page = as_admin.get("/admin/users?q=hop").get_data(as_text=True)
    assert "grace@roomsync.test" in page and "linus@roomsync.test" not in page
    fragment = as_admin.get("/admin/users?q=LINUS", headers=HTMX).get_data(as_text=True)
    assert fragment.count("<tbody") == 1 and "<html" not in fragment
    assert "linus@roomsync.test" in fragment and "grace@roomsync.test" not in fragment
    assert "Nobody matches" in as_admin.get("/admin/users?q=%25_").get_data(as_text=True)


def test_creating_a_user(client, as_admin):
    response = as_admin.post("/admin/users/new", data=user_form(email="  Grace.Hopper@Example.COM "))
    assert response.status_code == 303
    user = db.session.scalar(select(User).where(User.email == "grace.hopper@example.com"))
    assert user is not None and user.role == "member" and user.check_password("long-enough")
    assert user.password_hash != "long-enough"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"email": "ADMIN@roomsync.test"}, "admin@roomsync.test already has an account"),
        ({"email": "not-an-email"}, "Enter an email address"),
        ({"password": "short"}, "At least 8 characters"),
        ({"password": ""}, "At least 8 characters"),
        ({"role": "owner"}, "Not a valid choice"),
    ],
)
def test_bad_users_are_refused_with_what_was_typed(as_admin, overrides, message):
    response = as_admin.post("/admin/users/new", data=user_form(first_name="Typed", **overrides))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'value="Typed"' in page
    assert db.session.scalar(select(User.id).where(User.first_name == "Typed")) is None


def test_editing_a_user(as_admin, make_user):
    user = make_user("old@roomsync.test")
    response = as_admin.post(f"/admin/users/{user.id}/edit", data=user_form(email="New@Roomsync.test", role="admin", password=""))
    assert response.status_code == 303
    db.session.expire_all()
    user = db.session.get(User, user.id)
    assert (user.email, user.role) == ("new@roomsync.test", "admin")
    assert user.check_password("password")  # an empty password field keeps it
    as_admin.post(f"/admin/users/{user.id}/edit", data=user_form(email="new@roomsync.test", password="brand-new-pass"))
    db.session.expire_all()
    assert db.session.get(User, user.id).check_password("brand-new-pass")


def test_email_uniqueness_ignores_case_on_edit(as_admin, make_user):
    make_user("taken@roomsync.test")
    other = make_user("other@roomsync.test")
    response = as_admin.post(f"/admin/users/{other.id}/edit", data=user_form(email="TAKEN@roomsync.test", password=""))
    assert response.status_code == 422
    assert "taken@roomsync.test already has an account" in response.get_data(as_text=True)


def test_admins_cannot_demote_or_deactivate_themselves(as_admin, admin, make_user):
    make_user(role="admin")  # another admin exists, so only the self-rule applies
    demote = as_admin.post(f"/admin/users/{admin.id}/edit", data=user_form(email=admin.email, role="member", password=""))
    assert demote.status_code == 422
    assert "You cannot deactivate or demote yourself" in demote.get_data(as_text=True)
    deactivate = as_admin.post(f"/admin/users/{admin.id}/active", data={"active": "0"}, headers=HTMX)
    assert "You cannot deactivate or demote yourself" in deactivate.get_data(as_text=True)
    db.session.expire_all()
    admin = db.session.get(User, admin.id)
    assert admin.is_admin and admin.active


def test_the_last_active_admin_stays(admin, make_user):
    other_admin = make_user(role="admin", active=False)
    with pytest.raises(ValidationError) as refused:
        operations.set_user_active(admin, False, actor=None)
    assert "last active admin" in refused.value.fields["active"]
    with pytest.raises(ValidationError):
        operations.update_user(admin, operations.UserInput(email=admin.email, role="member"), actor=None)
    # With a second active admin, either may go.
    operations.set_user_active(other_admin, True, actor=None)
    operations.set_user_active(admin, False, actor=other_admin)
    assert admin.active is False


def test_deactivating_and_reactivating_a_user(as_admin, make_user):
    member = make_user()
    response = as_admin.post(f"/admin/users/{member.id}/active", data={"active": "0"}, headers=HTMX)
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert f'id="user-{member.id}"' in fragment and "Deactivated" in fragment and "Reactivate" in fragment
    db.session.expire_all()
    assert db.session.get(User, member.id).active is False
    assert as_admin.post(f"/admin/users/{member.id}/active", data={"active": "1"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(User, member.id).active is True


def test_unknown_users_are_404(as_admin):
    assert as_admin.get("/admin/users/9999/edit").status_code == 404
    assert as_admin.post("/admin/users/9999/active", data={"active": "0"}).status_code == 404


# ---------------------------------------------------------------------------------------------- custom fields


def test_creating_editing_and_deleting_a_custom_field(as_admin, venue):
    response = as_admin.post("/admin/fields/new", data={
        "key": "catering", "label": "Catering", "kind": "choice", "choices": "None\nCoffee\n\nLunch\nCoffee",
        "required": "y", "position": "2",
    })
    assert response.status_code == 303
    field = db.session.scalar(select(CustomField))
    assert (field.key, field.kind, field.choices, field.required, field.position) == (
        "catering", "choice", ["None", "Coffee", "Lunch"], True, 2)
    assert "Coffee" in as_admin.get("/admin/fields").get_data(as_text=True)

    edit_page = as_admin.get(f"/admin/fields/{field.id}/edit").get_data(as_text=True)
    assert "None\nCoffee\nLunch" in edit_page
    response = as_admin.post(f"/admin/fields/{field.id}/edit", data={
        "key": "renamed", "label": "Food", "kind": "text", "choices": "ignored", "position": "0",
    })
    assert response.status_code == 303
    db.session.expire_all()
    field = db.session.get(CustomField, field.id)
    assert (field.key, field.label, field.kind, field.choices, field.required) == ("catering", "Food", "text", [], False)

    assert as_admin.post(f"/admin/fields/{field.id}/delete").status_code == 303
    assert db.session.scalar(select(CustomField)) is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"key": "Cost Centre", "label": "Cost centre"}, "Lower-case letters"),
        ({"key": "cost_centre", "label": ""}, "This field is required"),
        ({"key": "catering", "label": "Again"}, "There is already a field with the key catering"),
        ({"key": "diet", "label": "Diet", "kind": "choice", "choices": " \n "}, "needs at least one choice"),
        ({"key": "diet", "label": "Diet", "kind": "colour"}, "Not a valid choice"),
        ({"key": "diet", "label": "Diet", "position": "first"}, "Not a valid integer"),
    ],
)
def test_bad_custom_fields_are_refused(as_admin, venue, data, message):
    db.session.add(CustomField(venue=venue, key="catering", label="Catering"))
    db.session.commit()
    response = as_admin.post("/admin/fields/new", data={"kind": "text", "position": "0", **data})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert f'value="{data["key"]}"' in page
    assert db.session.scalar(select(CustomField).where(CustomField.key != "catering")) is None


def test_unknown_custom_fields_are_404(as_admin):
    assert as_admin.get("/admin/fields/9999/edit").status_code == 404
    assert as_admin.post("/admin/fields/9999/delete").status_code == 404
