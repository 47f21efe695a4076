"""Users, photos, contacts and people against the documented examples (graph-facts §2.3–§2.6, §5.3;
examples under tests/data/graph/users/)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from webapp.sandbox.seed import DEMO_BUTLER_EMAIL, user_id_for

EXAMPLES = Path(__file__).parents[1] / "data" / "graph" / "users"
PRIYA = "priya.shah@roomsync.test"
NO_MAILBOX = "ivy.chen@roomsync.test"
EVENTUAL = {"ConsistencyLevel": "eventual"}


def _documented(name: str) -> dict:
    return {k: v for k, v in json.loads((EXAMPLES / name).read_text()).items() if k != "_source"}


def _error(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]["code"]


def _follow(graph, url: str, headers=None) -> list[dict]:
    """Every item of a collection, following @odata.nextLink verbatim as a client must."""
    items, pages = [], 0
    while url:
        parts = urlsplit(url)
        body = graph.get(parts.path + ("?" + parts.query if parts.query else ""), headers=headers).get_json()
        items += body["value"]
        url, pages = body.get("@odata.nextLink"), pages + 1
        assert pages < 100
    return items


def test_users_have_the_documented_default_properties(graph):
    body = graph.get("/v1.0/users").get_json()

    documented = _documented("list-users.json")
    assert body["@odata.context"] == "https://127.0.0.1:5001/v1.0/$metadata#users"
    for user in body["value"]:
        assert list(user) == list(documented["value"][0])  # same properties, same order
    assert "accountEnabled" not in body["value"][0] and "assignedLicenses" not in body["value"][0]


def test_the_tenant_has_the_demo_people_rooms_and_butler(graph):
    users = _follow(graph, "/v1.0/users?$top=999")
    mails = {u["mail"] for u in users}
    assert len(users) == 30 + 11
    assert {PRIYA, "admin@roomsync.test", "zoe.campbell@roomsync.test", DEMO_BUTLER_EMAIL} <= mails
    assert "board-room-a@roomsync.test" in mails  # room mailboxes are directory users too


def test_select_returns_exactly_the_selected_properties(graph):
    body = graph.get("/v1.0/users?$select=displayName,id,accountEnabled,assignedLicenses").get_json()

    assert body["@odata.context"].endswith("$metadata#users(displayName,id,accountEnabled,assignedLicenses)")
    assert set(_documented("list-users-select.json")["value"][0]) <= set(body["value"][0])
    assert all(set(u) == {"displayName", "id", "accountEnabled", "assignedLicenses"} for u in body["value"])
    assert any(u["accountEnabled"] is False for u in body["value"])


def test_select_of_an_unknown_property_is_400(graph):
    assert _error(graph.get("/v1.0/users?$select=displayName,mailboxEnabled")) == (400, "BadRequest")


def test_paging_follows_skiptokens_to_every_user_once(graph):
    first = graph.get("/v1.0/users?$top=7").get_json()
    assert len(first["value"]) == 7
    assert "$skiptoken=" in first["@odata.nextLink"] and "$top=7" in first["@odata.nextLink"]

    users = _follow(graph, "/v1.0/users?$top=7")
    assert len(users) == 41 and len({u["id"] for u in users}) == 41


def test_skip_is_not_supported_on_users(graph):
    assert graph.get("/v1.0/users?$skip=5").status_code == 400


@pytest.mark.parametrize("query, expected", [
    ("startswith(displayName,'pri')", {PRIYA}),
    ("startswith(mail,'board-room')", {"board-room-a@roomsync.test", "board-room-b@roomsync.test",
                                       "board-room-a-b@roomsync.test"}),
    (f"mail eq '{PRIYA}'", {PRIYA}),
    (f"userPrincipalName eq '{PRIYA.upper()}'", {PRIYA}),
    ("startswith(givenName,'Tom') or startswith(surname,'Shah')", {PRIYA, "tom.baker@roomsync.test"}),
])
def test_filter(graph, query, expected):
    body = graph.get("/v1.0/users", query_string={"$filter": query}).get_json()
    assert {u["mail"] for u in body["value"]} == expected


def test_filter_on_an_unsupported_property_is_400(graph):
    response = graph.get("/v1.0/users", query_string={"$filter": "startswith(jobTitle,'x')"})
    assert _error(response) == (400, "Request_UnsupportedQuery")


def test_search_needs_consistency_level_eventual(graph):
    query = {"$search": '"displayName:wil"'}
    assert _error(graph.get("/v1.0/users", query_string=query)) == (400, "Request_UnsupportedQuery")

    body = graph.get("/v1.0/users", query_string={**query, "$count": "true"}, headers=EVENTUAL).get_json()
    assert {u["displayName"] for u in body["value"]} == {"Emma Wilson"}
    assert body["@odata.count"] == 1


def test_count_needs_consistency_level_eventual(graph):
    assert graph.get("/v1.0/users?$count=true").status_code == 400
    counted = graph.get("/v1.0/users/$count", headers=EVENTUAL)
    assert counted.status_code == 200 and counted.mimetype == "text/plain" and counted.text == "41"


def test_orderby_display_name(graph):
    names = [u["displayName"] for u in graph.get("/v1.0/users?$orderby=displayName&$top=999").get_json()["value"]]
    assert names == sorted(names, key=str.lower)


@pytest.mark.parametrize("key", [user_id_for(PRIYA), PRIYA, PRIYA.upper()])
def test_get_user_by_id_or_user_principal_name(graph, key):
    response = graph.get(f"/v1.0/users/{key}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["@odata.context"].endswith("$metadata#users/$entity")
    assert body["id"] == user_id_for(PRIYA) and body["mail"] == PRIYA


def test_get_unknown_user_is_404(graph):
    assert _error(graph.get("/v1.0/users/nobody@roomsync.test")) == (404, "Request_ResourceNotFound")


def test_photo_metadata_and_bytes(graph):
    metadata = graph.get(f"/v1.0/users/{PRIYA}/photo").get_json()
    documented = _documented("photo-metadata.json")
    assert set(documented) - {"@odata.id"} <= set(metadata)
    assert metadata["@odata.mediaContentType"] == "image/png"

    photo = graph.get(f"/v1.0/users/{PRIYA}/photo/$value")
    assert photo.status_code == 200 and photo.mimetype == "image/png"
    assert photo.data.startswith(b"\x89PNG\r\n\x1a\n")
    sized = graph.get(f"/v1.0/users/{PRIYA}/photos/{metadata['id']}/$value")
    assert sized.data == photo.data


def test_a_user_without_a_photo_is_404(graph, sandbox_state):
    without = next(u for u in sandbox_state.store.all("user") if sandbox_state.store.get("photo", u["id"]) is None)
    assert _error(graph.get(f"/v1.0/users/{without['id']}/photo/$value")) == (404, "ImageNotFound")
    assert _error(graph.get(f"/v1.0/users/{without['id']}/photo")) == (404, "ImageNotFound")


def test_contacts_and_their_email_filter(graph):
    contacts = graph.get(f"/v1.0/users/{PRIYA}/contacts").get_json()["value"]
    assert contacts
    assert set(_documented("contact.json")) <= set(contacts[0])
    address = contacts[0]["emailAddresses"][0]["address"]

    query = {"$filter": f"emailAddresses/any(a:a/address eq '{address}')"}
    filtered = graph.get(f"/v1.0/users/{PRIYA}/contacts", query_string=query).get_json()["value"]
    assert [c["id"] for c in filtered] == [contacts[0]["id"]]
    other = {"$filter": "startswith(displayName,'A')"}
    assert graph.get(f"/v1.0/users/{PRIYA}/contacts", query_string=other).status_code == 400


def test_people_are_ranked_colleagues(graph):
    body = graph.get(f"/v1.0/users/{PRIYA}/people?$top=3").get_json()
    documented = _documented("list-people.json")["value"][0]
    assert len(body["value"]) == 3 and "@odata.nextLink" in body
    assert set(body["value"][0]) == set(documented)
    scores = [p["scoredEmailAddresses"][0]["relevanceScore"] for p in body["value"]]
    assert scores == sorted(scores, reverse=True)
    assert graph.get(f"/v1.0/users/{PRIYA}/people?$search=tom").status_code == 400


@pytest.mark.parametrize("resource", ["contacts", "people"])
def test_mailbox_resources_of_a_user_without_a_mailbox(graph, resource):
    assert _error(graph.get(f"/v1.0/users/{NO_MAILBOX}/{resource}")) == (404, "MailboxNotEnabledForRESTAPI")
    assert _error(graph.get(f"/v1.0/users/nobody@roomsync.test/{resource}")) == (404, "ErrorInvalidUser")


@pytest.mark.parametrize("permission, path", [
    ("User.Read.All", "/v1.0/users"),
    ("User.Read.All", f"/v1.0/users/{PRIYA}/photo/$value"),
    ("Contacts.Read", f"/v1.0/users/{PRIYA}/contacts"),
    ("People.Read.All", f"/v1.0/users/{PRIYA}/people"),
])
def test_a_revoked_permission_is_403_at_once(graph, admin, permission, path):
    assert graph.get(path).status_code == 200
    admin.post("/_sandbox/permissions/revoke", json={"permission": permission})
    assert _error(graph.get(path)) == (403, "ErrorAccessDenied")
    admin.post("/_sandbox/permissions/grant", json={"permission": permission})
    assert graph.get(path).status_code == 200
