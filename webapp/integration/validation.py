"""The live tests run when an admin saves the integration settings: can Roomsync do, in this tenant,
everything two-way sync needs? Each test answers pass/fail with the error and a hint on how to fix it.

Public API:
- `CheckResult(key, label, ok, detail, error, hint)` (`ok` None: not run because an earlier test failed),
  `to_json()` / `from_json(data)`.
- `ValidationInput(butler_email, public_base_url, webhook_path, lifecycle_path)`.
- `run_validation(data)` → [CheckResult] in this order: token, butler, rooms, calendar, subscription,
  directory, contacts, people (a test that needs an earlier one to pass is reported "not run"). `all_passed(results)`.
- `auth_hint(error)`: the fix for a refused token request, by its AADSTS number.
- `ACCESS_POLICY_HINT`.

Every call goes through `integration.provider`; the tests are short (a token, a few reads, one event and
one subscription created and deleted at once) because they run inside the Save request. Nothing here
touches the database.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from urllib.parse import urlsplit

from ..graph.errors import (
    AccessPolicyDenied,
    AuthFailed,
    BadRequest,
    GraphError,
    InvalidUser,
    MailboxNotEnabled,
    NotFound,
    PermissionMissing,
    ServiceUnavailable,
    Throttled,
)
from ..graph.settings import GraphSettingsError
from ..timeutil import now_utc
from . import provider

log = logging.getLogger(__name__)

ACCESS_POLICY_HINT = (
    "Graph answered “Access to OData is disabled”: an application access policy in Exchange Online limits "
    "which mailboxes this app may open. Ask your Exchange admin to list the policies with "
    "Get-ApplicationAccessPolicy | Format-Table -Auto Identity,Description,ScopeName,AccessRight and to "
    "remove the one that names Roomsync's app (or widen it): two-way sync must reach the calendars of every "
    "holder and room, so it cannot work inside such a policy."
)

# AADSTS number → what it means for the admin.
_AUTH_HINTS = {
    7000215: "The client secret is wrong. Create a new secret for the app registration and set "
             "GRAPH_CLIENT_SECRET to its value (not its id).",
    7000218: "No client secret or certificate was sent. Set GRAPH_CLIENT_SECRET (or the certificate path).",
    7000222: "The client secret has expired. Create a new one and set GRAPH_CLIENT_SECRET.",
    700016: "The tenant does not know this client id: the app was never consented to in this tenant, or "
            "GRAPH_CLIENT_ID / the tenant is wrong. Open the admin-consent link below as a tenant admin.",
    7000112: "The app is disabled in this tenant. Enable it under Enterprise applications.",
    65001: "Admin consent is missing. Open the admin-consent link below as a tenant admin and accept.",
    90002: "The tenant was not found. Check GRAPH_TENANT_ID (a tenant id or a verified domain).",
    900023: "The tenant id is malformed. Check GRAPH_TENANT_ID.",
    70011: "The requested scope is invalid; application tokens must ask for https://graph.microsoft.com/.default.",
    1002012: "The requested scope is invalid; application tokens must ask for https://graph.microsoft.com/.default.",
}


@dataclass
class CheckResult:
    key: str
    label: str
    ok: bool | None
    detail: str = ""
    error: str = ""
    hint: str = ""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> CheckResult:
        return cls(**{k: data.get(k, "") for k in ("key", "label", "detail", "error", "hint")}, ok=data.get("ok"))


@dataclass
class ValidationInput:
    butler_email: str
    public_base_url: str
    webhook_path: str = "/webhooks/graph"
    lifecycle_path: str = "/webhooks/graph/lifecycle"


def all_passed(results: list[CheckResult]) -> bool:
    return bool(results) and all(r.ok for r in results)


def _aadsts_codes(error: AuthFailed) -> list[int]:
    codes = [int(c) for c in getattr(error, "error_codes", ()) or () if str(c).isdigit()]
    codes += [int(c) for c in re.findall(r"AADSTS(\d+)", str(error))]
    return codes


def auth_hint(error: AuthFailed) -> str:
    for code in _aadsts_codes(error):
        if code in _AUTH_HINTS:
            return _AUTH_HINTS[code]
    if error.status == 401:
        return "Graph refused the token. Check that admin consent was granted and the app is enabled."
    return ("The identity platform refused the credentials. Check GRAPH_TENANT_ID, GRAPH_CLIENT_ID and "
            "GRAPH_CLIENT_SECRET, and that admin consent was granted.")


def _common_hint(error: Exception, permission: str | None) -> str:
    """The hint for errors any test may meet."""
    if isinstance(error, GraphSettingsError):
        return f"The server's Microsoft 365 configuration is incomplete: {error}"
    if isinstance(error, AccessPolicyDenied):
        return ACCESS_POLICY_HINT
    if isinstance(error, PermissionMissing):
        return (f"The app lacks the application permission {permission}. Grant it (admin consent link below) "
                "and save again; a revoked permission must be granted again by a tenant admin."
                if permission else "The app lacks a permission this needs. Grant the permissions listed below.")
    if isinstance(error, AuthFailed):
        return auth_hint(error)
    if isinstance(error, Throttled):
        return "Microsoft 365 is throttling this app right now. Wait a minute and save again."
    if isinstance(error, ServiceUnavailable):
        return ("Microsoft 365 could not be reached or did not answer in time. Check the network (and "
                "GRAPH_BASE_URL / GRAPH_CA_BUNDLE for a sandbox), then save again.")
    return "An unexpected error; the server log has the details. Save again, and report it if it persists."


def _error_text(error: Exception) -> str:
    if isinstance(error, GraphError):
        return str(error)
    return f"{type(error).__name__}: {error}"[:300]


class _Runner:
    def __init__(self) -> None:
        self.results: list[CheckResult] = []

    def skipped(self, key: str, label: str, reason: str) -> None:
        self.results.append(CheckResult(key, label, None, detail=reason))

    def run(self, key: str, label: str, permission: str | None, test, hints: dict | None = None) -> bool:
        """Run `test()` (returns the detail text); map its error to a hint (`hints`: error class → hint)."""
        try:
            detail = test()
        except Exception as error:  # noqa: BLE001 - every failure becomes a visible result, never a 500
            if not isinstance(error, GraphError):
                log.exception("integration validation %s failed unexpectedly", key)
            hint = None
            for error_class, text in (hints or {}).items():
                if isinstance(error, error_class) and not isinstance(error, AccessPolicyDenied):
                    hint = text(error) if callable(text) else text
                    break
            self.results.append(CheckResult(key, label, False, error=_error_text(error),
                                            hint=hint or _common_hint(error, permission)))
            return False
        self.results.append(CheckResult(key, label, True, detail=detail or ""))
        return True


def _butler_check(butler_email: str, found: dict):
    def test() -> str:
        user = provider.get_user(butler_email, probe_mailbox=False)
        try:
            user = replace(user, has_mailbox=provider.has_mailbox(user.id))
        except PermissionMissing:
            pass  # the probe reads the calendar: without Calendars.ReadWrite the calendar check tells
        found["user"] = user
        problems = []
        if user.account_enabled is False and user.has_mailbox:
            raise _ButlerProblem(
                f"{butler_email} is a shared mailbox (a mailbox whose account is disabled).",
                "The butler must be an ordinary user account with its own licence and mailbox, not a shared "
                "mailbox: create a normal user (e.g. “Roomsync Butler”) and enter its address.")
        if user.account_enabled is False:
            raise _ButlerProblem(f"The account {butler_email} is disabled"
                                 f"{'' if user.has_mailbox is False else ' (if it has a mailbox, it is a shared mailbox)'}.",
                                 "Enable the butler's account in the Microsoft 365 admin centre.")
        if user.has_mailbox is False:
            raise _ButlerProblem(f"{butler_email} has no Exchange Online mailbox.",
                                 "Assign the butler a licence that includes Exchange Online, wait for the "
                                 "mailbox to be created, then save again.")
        if user.has_mailbox is None:
            problems.append("its mailbox could not be checked yet")
        return f"{user.display_name or butler_email} is an enabled user with a mailbox." + (
            f" ({', '.join(problems)})" if problems else "")

    return test


class _ButlerProblem(Exception):
    def __init__(self, error: str, hint: str) -> None:
        super().__init__(error)
        self.hint = hint


def run_validation(data: ValidationInput) -> list[CheckResult]:
    runner = _Runner()
    butler = data.butler_email
    base = data.public_base_url.rstrip("/")

    if not runner.run("token", "Sign in to Microsoft 365 (access token)", None, lambda: (
            provider.acquire_token() or "An application token was issued."),
            {AuthFailed: auth_hint}):
        for key, label in _LATER:
            runner.skipped(key, label, "Not run: needs an access token.")
        return runner.results

    found: dict = {}
    butler_ok = _run_butler(runner, butler, found)
    mailbox = found["user"].id if butler_ok else butler

    runner.run("rooms", "List rooms (Place.Read.All)", "Place.Read.All", lambda: _rooms_detail())

    if butler_ok:
        runner.run("calendar", "Write the butler's calendar (Calendars.ReadWrite)", "Calendars.ReadWrite",
                   lambda: _calendar_round_trip(mailbox),
                   {MailboxNotEnabled: "The butler has no Exchange Online mailbox: assign it a licence."})
        runner.run("subscription", "Receive change notifications (webhook)", "Calendars.ReadWrite",
                   lambda: _subscription_round_trip(mailbox, base + data.webhook_path, base + data.lifecycle_path),
                   {BadRequest: lambda error: _subscription_hint(error, base + data.webhook_path)})
    else:
        runner.skipped("calendar", "Write the butler's calendar (Calendars.ReadWrite)", "Not run: needs a valid butler.")
        runner.skipped("subscription", "Receive change notifications (webhook)", "Not run: needs a valid butler.")

    runner.run("directory", "Read the directory (User.Read.All)", "User.Read.All", _directory_detail)
    if butler_ok:
        runner.run("contacts", "Read contacts for attendee lookup (Contacts.Read)", "Contacts.Read",
                   lambda: f"{len(provider.list_contacts(mailbox, top=5))} contacts read.")
        runner.run("people", "Read relevant people for attendee lookup (People.Read.All)", "People.Read.All",
                   lambda: f"{len(provider.list_people(mailbox, top=5))} relevant people read.")
    else:
        runner.skipped("contacts", "Read contacts for attendee lookup (Contacts.Read)", "Not run: needs a valid butler.")
        runner.skipped("people", "Read relevant people for attendee lookup (People.Read.All)",
                       "Not run: needs a valid butler.")
    return runner.results


_LATER = [
    ("butler", "The butler account"),
    ("rooms", "List rooms (Place.Read.All)"),
    ("calendar", "Write the butler's calendar (Calendars.ReadWrite)"),
    ("subscription", "Receive change notifications (webhook)"),
    ("directory", "Read the directory (User.Read.All)"),
    ("contacts", "Read contacts for attendee lookup (Contacts.Read)"),
    ("people", "Read relevant people for attendee lookup (People.Read.All)"),
]


def _run_butler(runner: _Runner, butler: str, found: dict) -> bool:
    label = "The butler account"
    try:
        detail = _butler_check(butler, found)()
    except _ButlerProblem as problem:
        runner.results.append(CheckResult("butler", label, False, error=str(problem), hint=problem.hint))
        return False
    except (InvalidUser, NotFound) as error:
        runner.results.append(CheckResult(
            "butler", label, False, error=_error_text(error),
            hint=f"No user {butler} exists in this tenant. Create the butler user (a normal licensed user) "
                 "or correct the address."))
        return False
    except Exception as error:  # noqa: BLE001
        if not isinstance(error, GraphError):
            log.exception("integration validation butler failed unexpectedly")
        runner.results.append(CheckResult("butler", label, False, error=_error_text(error),
                                          hint=_common_hint(error, "User.Read.All")))
        return False
    runner.results.append(CheckResult("butler", label, True, detail=detail))
    return True


def _rooms_detail() -> str:
    rooms = provider.list_rooms()
    if not rooms:
        return ("No rooms are listed yet. Rooms hidden from the address list are not returned, and new rooms "
                "can take up to a day to appear.")
    return f"{len(rooms)} rooms found."


def _calendar_round_trip(mailbox: str) -> str:
    event_id = provider.create_test_event(mailbox, transaction_id=f"roomsync-check-{uuid.uuid4()}")
    provider.delete_event(mailbox, event_id)
    return "A test event was created on the butler's calendar and deleted."


def _subscription_round_trip(mailbox: str, notification_url: str, lifecycle_url: str) -> str:
    subscription_id = provider.create_subscription(
        f"users/{mailbox}/events", notification_url, lifecycle_url,
        client_state=secrets.token_urlsafe(24),  # thrown away: this subscription lives for a second
        expiration=now_utc() + timedelta(hours=1),
    )
    provider.delete_subscription(subscription_id)
    return f"Microsoft 365 reached {notification_url}; a test subscription was created and deleted."


def _subscription_hint(error: Exception, notification_url: str) -> str:
    parts = urlsplit(notification_url)
    hint = (f"Microsoft 365 could not complete the handshake with {notification_url}. The public base URL must "
            "be reachable from the internet and route /webhooks/graph to Roomsync.")
    if parts.scheme != "https":
        hint += " Microsoft 365 only delivers to https:// URLs (the sandbox also accepts http on this machine)."
    return hint


def _directory_detail() -> str:
    users = provider.search_users("a", top=1)
    return "User accounts can be read." if users is not None else ""
