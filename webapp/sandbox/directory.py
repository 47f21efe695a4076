"""Graph directory routes: users, user photos, contacts and people.

Routes (on `graph.bp`, so under /v1.0):
- `GET /users` — User.Read.All. Default properties only unless `$select` ([D:api-reference/v1.0/api/
  user-list.md]: businessPhones, displayName, givenName, id, jobTitle, mail, mobilePhone, officeLocation,
  preferredLanguage, surname, userPrincipalName; `accountEnabled`, `assignedLicenses` & co only when
  `$select`ed, graph-facts §2.3). `$top` (default 100, max 999) with an opaque `$skiptoken` in
  `@odata.nextLink` (`$skip` isn't supported there: 400). `$filter`: `startswith(displayName|mail|givenName|
  surname|userPrincipalName,'x')` and `eq` on mail/userPrincipalName/displayName/givenName/surname/id,
  joined by `and` or `or`. `$search="displayName:x"` (word-prefix match, several clauses joined by AND/OR)
  and `$count=true` need `ConsistencyLevel: eventual`, else 400 ([D:concepts/aad-advanced-queries.md]).
  `$orderby=displayName|userPrincipalName [asc|desc]`. Unordered lists come in object-id order, not by
  name: a client must not rely on any order it did not ask for.
- `GET /users/$count` (with `ConsistencyLevel: eventual`) → the number as text/plain.
- `GET /users/{id|userPrincipalName}` — User.Read.All; unknown → 404 `Request_ResourceNotFound`.
- `GET /users/{id|upn}/photo` (metadata), `/photo/$value` (the bytes with their content type),
  `/photos/{size}` and `/photos/{size}/$value` — User.Read.All ([D:api-reference/v1.0/api/profilephoto-get.md]);
  404 when the user has none. The docs only say 404; the code is `ImageNotFound` as Graph answers today
  (older answers said `ErrorItemNotFound` "The photo wasn't found.", microsoftgraph/microsoft-graph-docs#2248):
  clients must key on the status. The metadata call answers 404 too (the docs' 200 with a 1x1 placeholder
  is for the signed-in user; for app-only reads the 404 is the harder case — UNCONFIRMED).
- `GET /users/{id|upn}/contacts` — Contacts.Read; `$top` (default 10), `$skip`, `$select`,
  `$filter=emailAddresses/any(a:a/address eq 'x')` only ([D:api-reference/v1.0/api/user-list-contacts.md]).
- `GET /users/{id|upn}/people` — People.Read.All; ordered by relevance; `$top` (default 10), `$skip`,
  `$select`. `$search` is documented to work only for the signed-in user's people (graph-facts §2.5), so
  with an app-only token it answers 400 (UNCONFIRMED; the behaviour hardest on a client).

Mailbox resources (photo excluded: photos also live in Entra ID) of a user without an Exchange Online
mailbox answer 404 `MailboxNotEnabledForRESTAPI` (graph-facts §5.3; the 404 status is UNCONFIRMED).

Helpers for other resource modules:
- `find_user(key)` → the stored user doc for an id or userPrincipalName/mail (case-insensitive) or None.
- `resolve_mailbox(key)` → the user doc of a mailbox, or raises GraphError 404 `ErrorInvalidUser` (no such
  user) / 404 `MailboxNotEnabledForRESTAPI` (no mailbox). Every `/users/{id|upn}/…` mailbox route uses it.
- `mailbox_names(user)` → the lower-cased names (id, mail, upn) a fault rule may use for that mailbox.
"""

from __future__ import annotations

import base64
import re

from flask import Response, request

from . import sandbox_state
from .auth import require
from .errors import GraphError
from .graph import bp
from .paging import collection, context_url, selected_fields

DEFAULT_USER_PROPERTIES = ["businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                           "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"]
# Properties a $select may name ([D:api-reference/v1.0/resources/user.md]); the sandbox stores some of them,
# the others read as null like an unset property.
USER_PROPERTIES = DEFAULT_USER_PROPERTIES + [
    "accountEnabled", "assignedLicenses", "department", "companyName", "mailNickname", "usageLocation",
    "userType", "city", "country", "state", "streetAddress", "postalCode", "employeeId", "faxNumber",
    "otherMails", "proxyAddresses", "imAddresses", "createdDateTime", "creationType", "externalUserState",
    "onPremisesSyncEnabled", "showInAddressList", "ageGroup", "preferredName",
]
_FILTERABLE = {"displayName", "mail", "givenName", "surname", "userPrincipalName", "id"}
_STARTSWITH = {"displayName", "mail", "givenName", "surname", "userPrincipalName"}
_SEARCHABLE = {"displayName", "mail", "givenName", "surname", "userPrincipalName", "jobTitle", "department"}
_SANDBOX_ONLY = {"mailboxEnabled", "isRoom"}


# ---- lookups shared with the other resource modules ----

def find_user(key: str) -> dict | None:
    store = sandbox_state().store
    doc = store.get("user", key) or store.get("user", key.lower())
    if doc is not None:
        return doc
    wanted = key.lower()
    for user_id in store.ids("user"):
        user = store.peek("user", user_id)  # no copy per user: only the match is copied
        if wanted in ((user.get("userPrincipalName") or "").lower(), (user.get("mail") or "").lower()):
            return store.get("user", user_id)
    return None


def resolve_mailbox(key: str) -> dict:
    user = find_user(key)
    if user is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
    if not user.get("mailboxEnabled", True):
        raise GraphError(404, "MailboxNotEnabledForRESTAPI",
                         "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
    return user


def mailbox_names(user: dict) -> frozenset[str]:
    return frozenset(name.lower() for name in (user.get("id"), user.get("mail"), user.get("userPrincipalName"))
                     if name)


# ---- users ----

def _render_user(user: dict, fields: list[str] | None) -> dict:
    if fields is None:
        return {name: user.get(name) for name in DEFAULT_USER_PROPERTIES}
    # Directory objects return exactly what was selected (no implicit id), as user-list.md example 2 shows.
    return {name: user.get(name) for name in fields if name not in _SANDBOX_ONLY}


def _requires_eventual(feature: str) -> None:
    if request.headers.get("ConsistencyLevel", "").lower() != "eventual":
        raise GraphError(400, "Request_UnsupportedQuery",
                         f"Request with {feature} query parameter only works through MSGraph with a special "
                         "request header: 'ConsistencyLevel: eventual'")


_QUOTED = r"'((?:[^']|'')*)'"
_STARTSWITH_RE = re.compile(rf"^startswith\(\s*(\w+)\s*,\s*{_QUOTED}\s*\)$", re.IGNORECASE)
_EQ_RE = re.compile(rf"^(\w+)\s+eq\s+{_QUOTED}$", re.IGNORECASE)


def _split_outside_quotes(text: str, separator: re.Pattern) -> tuple[list[str], list[str]]:
    """Split `text` at `separator` matches that are not inside single quotes; returns (parts, separators)."""
    parts, separators, start, quoted = [], [], 0, False
    position = 0
    while position < len(text):
        if text[position] == "'":
            quoted = not quoted
        elif not quoted:
            match = separator.match(text, position)
            if match:
                parts.append(text[start:position])
                separators.append(match.group(1).lower())
                start = position = match.end()
                continue
        position += 1
    parts.append(text[start:])
    return [part.strip() for part in parts], separators


def _combine(predicates: list, joiners: list[str], what: str):
    if len(set(joiners)) > 1:
        raise GraphError(400, "Request_UnsupportedQuery", f"Mixing 'and' and 'or' in {what} is not supported.")
    if joiners and joiners[0] == "or":
        return lambda user: any(p(user) for p in predicates)
    return lambda user: all(p(user) for p in predicates)


def _filter_predicate(text: str):
    clauses, joiners = _split_outside_quotes(text, re.compile(r"\s+(and|or)\s+", re.IGNORECASE))
    predicates = []
    for clause in clauses:
        if match := _STARTSWITH_RE.match(clause):
            prop, value = match.group(1), match.group(2).replace("''", "'").lower()
            if prop not in _STARTSWITH:
                raise GraphError(400, "Request_UnsupportedQuery",
                                 f"Unsupported or invalid query filter clause specified for property '{prop}' "
                                 "of resource 'User'.")
            predicates.append(lambda user, p=prop, v=value: (user.get(p) or "").lower().startswith(v))
        elif match := _EQ_RE.match(clause):
            prop, value = match.group(1), match.group(2).replace("''", "'").lower()
            if prop not in _FILTERABLE:
                raise GraphError(400, "Request_UnsupportedQuery",
                                 f"Unsupported or invalid query filter clause specified for property '{prop}' "
                                 "of resource 'User'.")
            predicates.append(lambda user, p=prop, v=value: (user.get(p) or "").lower() == v)
        else:
            raise GraphError(400, "BadRequest", f"Invalid filter clause: {clause}")
    return _combine(predicates, joiners, "$filter")


def _search_predicate(text: str):
    clauses, joiners = _split_outside_quotes(text.strip(), re.compile(r"\s+(AND|OR)\s+"))
    predicates = []
    for clause in clauses:
        match = re.fullmatch(r'"(\w+):([^"]*)"', clause)
        if not match:
            raise GraphError(400, "Request_UnsupportedQuery",
                             "Syntax error: the $search value must be of the form \"property:value\".")
        prop, term = match.group(1), match.group(2).strip().lower()
        if prop not in _SEARCHABLE:
            raise GraphError(400, "Request_UnsupportedQuery", f"Search on property '{prop}' is not supported.")
        # Directory $search tokenizes values and matches a token prefix ("displayName:wil" finds Emma Wilson).
        predicates.append(lambda user, p=prop, t=term: any(
            token.startswith(t) for token in re.split(r"[\s.@_\-]+", (user.get(p) or "").lower())))
    return _combine(predicates, joiners, "$search")


def _listed_users() -> list[dict]:
    args = request.args
    if "$skip" in args:
        raise GraphError(400, "Request_BadRequest", "'$skip' is not supported by the service.")
    users = sorted(sandbox_state().store.all("user"), key=lambda user: user["id"])
    if "$filter" in args:
        matches = _filter_predicate(args["$filter"])
        users = [user for user in users if matches(user)]
    if "$search" in args:
        _requires_eventual("$search")
        matches = _search_predicate(args["$search"])
        users = [user for user in users if matches(user)]
    if "$orderby" in args:
        prop, _, direction = args["$orderby"].strip().partition(" ")
        if prop not in ("displayName", "userPrincipalName") or direction.strip().lower() not in ("", "asc", "desc"):
            raise GraphError(400, "Request_UnsupportedQuery", f"Sorting on property '{prop}' is not supported.")
        users.sort(key=lambda user: (user.get(prop) or "").lower(), reverse=direction.strip().lower() == "desc")
    return users


def _wants_count() -> bool:
    if request.args.get("$count", "").lower() == "true":
        _requires_eventual("$count")
        return True
    return False


@bp.get("/users")
@require("User.Read.All")
def list_users():
    fields = selected_fields(USER_PROPERTIES, "user")
    users = _listed_users()
    context = f"users({','.join(fields)})" if fields else "users"
    body = collection(users, context=context, default_top=100, max_top=999, skip_param="$skiptoken",
                      render=lambda user: _render_user(user, fields), count=_wants_count(), always=())
    return body


@bp.get("/users/$count")
@require("User.Read.All")
def count_users():
    _requires_eventual("$count")
    return Response(str(len(sandbox_state().store.all("user"))), mimetype="text/plain")


@bp.get("/users/<user_key>")
@require("User.Read.All")
def get_user(user_key: str):
    user = find_user(user_key)
    if user is None:
        raise GraphError(404, "Request_ResourceNotFound",
                         f"Resource '{user_key}' does not exist or one of its queried reference-property objects "
                         "are not present.")
    fields = selected_fields(USER_PROPERTIES, "user")
    context = f"users({','.join(fields)})/$entity" if fields else "users/$entity"
    return {"@odata.context": context_url(context), **_render_user(user, fields)}


# ---- photos ----

def _photo_of(user_key: str, size: str | None = None) -> tuple[dict, dict]:
    user = find_user(user_key)
    if user is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user_key}' is invalid.")
    photo = sandbox_state().store.get("photo", user["id"])
    if photo is None or (size is not None and size != photo["id"]):
        raise GraphError(404, "ImageNotFound",
                         "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.")
    return user, photo


def _photo_metadata(user: dict, photo: dict, path: str) -> dict:
    return {
        "@odata.context": context_url(f"users('{user['id']}')/{path}/$entity"),
        "@odata.mediaContentType": photo["contentType"],
        "@odata.mediaEtag": photo["etag"],
        "id": photo["id"],
        "width": photo["width"],
        "height": photo["height"],
    }


def _photo_bytes(photo: dict) -> Response:
    response = Response(base64.b64decode(photo["data"]), mimetype=photo["contentType"])
    response.headers["ETag"] = photo["etag"]
    return response


@bp.get("/users/<user_key>/photo")
@require("User.Read.All")
def get_photo(user_key: str):
    user, photo = _photo_of(user_key)
    return _photo_metadata(user, photo, "photo")


@bp.get("/users/<user_key>/photo/$value")
@require("User.Read.All")
def get_photo_value(user_key: str):
    return _photo_bytes(_photo_of(user_key)[1])


@bp.get("/users/<user_key>/photos/<size>")
@require("User.Read.All")
def get_photo_of_size(user_key: str, size: str):
    user, photo = _photo_of(user_key, size)
    return _photo_metadata(user, photo, f"photos('{size}')")


@bp.get("/users/<user_key>/photos/<size>/$value")
@require("User.Read.All")
def get_photo_of_size_value(user_key: str, size: str):
    return _photo_bytes(_photo_of(user_key, size)[1])


# ---- contacts and people (mailbox resources) ----

_CONTACT_FILTER_RE = re.compile(rf"^emailAddresses/any\(\s*(\w+)\s*:\s*\1/address\s+eq\s+{_QUOTED}\s*\)$",
                                re.IGNORECASE)


@bp.get("/users/<user_key>/contacts")
@require("Contacts.Read")
def list_contacts(user_key: str):
    user = resolve_mailbox(user_key)
    contacts = sorted(sandbox_state().store.all("contact", user["id"], by_owner=True),
                      key=lambda contact: (contact["createdDateTime"], contact["id"]))
    if "$filter" in request.args:
        match = _CONTACT_FILTER_RE.match(request.args["$filter"].strip())
        if not match:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
        address = match.group(2).replace("''", "'").lower()
        contacts = [c for c in contacts if any(e.get("address", "").lower() == address for e in c["emailAddresses"])]
    fields = selected_fields()
    return collection(contacts, context=f"users('{user['id']}')/contacts", default_top=10, max_top=1000,
                      fields=fields, count=request.args.get("$count", "").lower() == "true")


@bp.get("/users/<user_key>/people")
@require("People.Read.All")
def list_people(user_key: str):
    user = resolve_mailbox(user_key)
    if "$search" in request.args:
        raise GraphError(400, "ErrorInvalidArgument",
                         "$search is supported only for the signed-in user's relevant people.")
    people = sorted(sandbox_state().store.all("person", user["id"], by_owner=True), key=lambda p: p["rank"])
    fields = selected_fields()
    return collection(people, context=f"users('{user['id']}')/people", default_top=10, max_top=1000,
                      render=lambda person: {k: v for k, v in person.items() if k != "rank"}, fields=fields)

