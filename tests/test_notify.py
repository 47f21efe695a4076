"""Outgoing mail (webapp.notify): a real SMTP server (aiosmtpd on loopback, a free port) receives what the
outbox delivers — recipients, headers, text and html parts; STARTTLS, implicit TLS and AUTH; outbox-only mode
without MAIL_SERVER; dedup keys; failures recorded and raised (and a retry that then succeeds); the job as a
real worker process runs it from Redis; the admin outbox page; broken pairs emailing the admins end to end
(directly and through the sandbox tenant); the organizer emails; and privacy: a private event's title reaches
its organizer and nobody else.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from flask import current_app
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from markupsafe import escape
from redis import Redis
from rq import Queue
from rq.job import JobStatus
from sqlalchemy import func, select, update

from webapp import jobs
from webapp.extensions import db
from webapp.integration import provider
from webapp.integration.models import IntegrationSettings
from webapp.notify import mailer, messages
from webapp.notify.mailer import DeliveryFailed, MailSettings, deliver, send_mail
from webapp.notify.models import OutboxMessage
from webapp.sync import pairs
from webapp.sync.models import Pair
from webapp.timeutil import now_utc

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-Pa55word!"
PRIVATE_TITLE = "Merger talks with Globex"


# ---------------------------------------------------------------------------------------------- the SMTP server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler: keeps every message it accepts; `refuse` recipients get a 550, `data_reply` (when
    set) answers DATA instead of accepting."""

    def __init__(self):
        self.received: list[tuple[str, list[str], object]] = []
        self.refuse: set[str] = set()
        self.data_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        raw = (envelope.original_content or envelope.content).replace(b"\r\n", b"\n")  # wire CRLF → lines
        parsed = message_from_bytes(raw, policy=policy.default)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    @property
    def messages(self):
        return [message for _, _, message in self.received]


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (auth_data.login, auth_data.password) == (b"roomsync", SECRET.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


class SmtpServer:
    def __init__(self, **controller_options):
        self.inbox = Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **controller_options)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


@pytest.fixture
def mail_config(app):
    """Set MAIL_* keys for one test; everything back as it was afterwards."""
    keys = ("MAIL_SERVER", "MAIL_PORT", "MAIL_USERNAME", "MAIL_PASSWORD", "MAIL_STARTTLS", "MAIL_SSL",
            "MAIL_CA_BUNDLE", "MAIL_FROM", "MAIL_TIMEOUT", "PUBLIC_BASE_URL")
    saved = {key: app.config.get(key) for key in keys}

    def configure(**values):
        app.config.update({"MAIL_SERVER": "127.0.0.1", "MAIL_TIMEOUT": "5", **values})

    yield configure
    app.config.update(saved)


@pytest.fixture
def smtp(mail_config):
    with SmtpServer() as server:
        mail_config(MAIL_PORT=str(server.port))
        yield server.inbox


@pytest.fixture
def tls_files(tmp_path_factory):
    from webapp.sandbox.tls import ensure_certificates

    return ensure_certificates(tmp_path_factory.mktemp("smtp-tls"))


def stored(message_id: int) -> OutboxMessage:
    """The row as a job left it: ends this session's transaction first (a read transaction keeps its
    snapshot on SQLite in WAL mode and on PostgreSQL alike)."""
    db.session.commit()
    return db.session.get(OutboxMessage, message_id)


def outbox_count() -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxMessage))


# ---------------------------------------------------------------------------------------------- SMTP delivery


def test_a_committed_message_is_delivered_over_smtp_as_proper_mime(smtp, mail_config):
    mail_config(MAIL_FROM="Rooms at HQ <rooms@hq.example.org>")
    message = send_mail(["ada@example.org", "Bob@Example.org", "ada@example.org", " "], "The room moved",
                        "Hello Ada,\n\nThe room moved.\n", html="<p>Hello Ada,</p><p>The room <b>moved</b>.</p>",
                        kind="pair_broken", dedup_key="k-1")
    assert smtp.received == []  # nothing leaves before the commit
    db.session.commit()

    assert len(smtp.received) == 1
    mail_from, rcpt_tos, email = smtp.received[0]
    assert mail_from == "rooms@hq.example.org"
    assert rcpt_tos == ["ada@example.org", "Bob@Example.org"]  # duplicates and blanks dropped
    assert email["Subject"] == "The room moved"
    assert str(email["From"]) == "Rooms at HQ <rooms@hq.example.org>"
    assert [a.addr_spec for a in email["To"].addresses] == ["ada@example.org", "Bob@Example.org"]
    assert email["Auto-Submitted"] == "auto-generated"
    row = stored(message.id)
    assert email["Message-ID"] == row.rfc_message_id and row.rfc_message_id.endswith("@hq.example.org>")
    assert abs(parsedate_to_datetime(email["Date"]) - row.created_at) < timedelta(seconds=1)
    assert email.get_content_type() == "multipart/alternative"
    assert email.get_body(("plain",)).get_content() == "Hello Ada,\n\nThe room moved.\n"
    assert "The room <b>moved</b>" in email.get_body(("html",)).get_content()
    assert row.sent_at is not None and row.attempts == 1 and row.last_error == "" and row.sending_until is None


def test_a_text_only_message_is_a_single_text_part(smtp):
    send_mail("ada@example.org", "Plain", "Just text.")
    db.session.commit()
    email = smtp.messages[0]
    assert email.get_content_type() == "text/plain" and not email.is_multipart()
    assert email.get_content() == "Just text.\n"


def test_a_rolled_back_change_sends_nothing(smtp):
    send_mail("ada@example.org", "Never", "Never sent.")
    db.session.rollback()
    db.session.commit()
    assert smtp.received == [] and outbox_count() == 0


def test_line_breaks_never_reach_the_subject_header(smtp):
    send_mail("ada@example.org", "Quarterly\r\nBcc: everyone@example.org\n review", "Text.")
    db.session.commit()
    email = smtp.messages[0]
    assert email["Subject"] == "Quarterly Bcc: everyone@example.org review"
    assert email["Bcc"] is None and smtp.received[0][1] == ["ada@example.org"]


def test_a_message_needs_a_valid_recipient():
    with pytest.raises(ValueError):
        send_mail(["", "not an address"], "Subject", "Text")


def test_without_mail_server_messages_stay_in_the_outbox(app, mail_config):
    mail_config(MAIL_SERVER="")
    message = send_mail("ada@example.org", "Kept", "Kept in the outbox.")
    db.session.commit()
    row = stored(message.id)
    assert (row.sent_at, row.attempts, row.last_error) == (None, 0, "")
    assert row.status(mailer.mail_configured()) == "outbox"
    deliver(message.id)  # run again: still nothing to send to
    assert stored(message.id).attempts == 0


def test_a_dedup_key_makes_one_message_and_one_email(smtp):
    first = send_mail("ada@example.org", "Once", "Only once.", dedup_key="pair-broken:1:x")
    db.session.commit()
    again = send_mail("ada@example.org", "Once", "Only once.", dedup_key="pair-broken:1:x")
    db.session.commit()
    assert again.id == first.id
    assert outbox_count() == 1 and len(smtp.received) == 1
    other = send_mail("ada@example.org", "Other", "Another breakage.", dedup_key="pair-broken:1:y")
    db.session.commit()
    assert other.id != first.id and len(smtp.received) == 2


def test_a_long_dedup_key_still_dedups(smtp):
    key = "initial:7:refused:" + "AAMkAGI2TG93AAA=" * 30  # provider ids are long
    first = send_mail("ada@example.org", "Long", "Text.", dedup_key=key)
    db.session.commit()
    again = send_mail("ada@example.org", "Long", "Text.", dedup_key=key)
    other = send_mail("ada@example.org", "Long", "Text.", dedup_key=key[:-1] + "B")
    db.session.commit()
    assert again.id == first.id and other.id != first.id and len(stored(first.id).dedup_key) <= 255
    assert len(smtp.received) == 2


def test_a_dedup_key_stored_concurrently_returns_that_message(app, smtp, monkeypatch):
    """Two jobs passed the "already there?" check at once: the unique key settles it, the caller's own
    changes in the same transaction survive, and one email goes out."""
    first = send_mail("ada@example.org", "Race", "Raced.", dedup_key="race")
    db.session.commit()
    real_scalar = db.session.scalar
    misses = iter([True])

    def miss_once(statement, *args, **kwargs):  # the other job's row "not committed yet" at our check
        if next(misses, False):
            return None
        return real_scalar(statement, *args, **kwargs)

    monkeypatch.setattr(db.session, "scalar", miss_once)
    from webapp.auth.models import User

    db.session.add(User(email="kept@example.org", first_name="Kept"))
    again = send_mail("ada@example.org", "Race", "Raced.", dedup_key="race")
    monkeypatch.undo()
    db.session.commit()
    assert again.id == first.id and outbox_count() == 1 and len(smtp.received) == 1
    assert db.session.scalar(select(User.first_name).where(User.email == "kept@example.org")) == "Kept"


def test_an_smtp_failure_is_recorded_raised_and_a_retry_then_delivers(smtp, caplog):
    smtp.data_reply = "451 4.3.0 Mailbox busy, try again later"
    message = send_mail("ada@example.org", "Retry me", "Eventually.")
    with caplog.at_level(logging.WARNING):
        db.session.commit()  # the inline job fails: logged, as RQ records a failed job
    assert "DeliveryFailed" in caplog.text
    row = stored(message.id)
    assert row.sent_at is None and row.attempts == 1 and "451" in row.last_error and "Mailbox busy" in row.last_error
    assert row.status(True) == "failed" and row.sending_until is None

    with pytest.raises(DeliveryFailed, match="451"):
        deliver(message.id)  # what RQ's retry runs
    assert stored(message.id).attempts == 2

    smtp.data_reply = None
    deliver(message.id)
    row = stored(message.id)
    assert row.sent_at is not None and row.attempts == 3 and row.last_error == ""
    assert len(smtp.received) == 1
    deliver(message.id)  # sent is sent: a stray retry sends nothing
    assert len(smtp.received) == 1 and stored(message.id).attempts == 3


def test_an_unreachable_server_is_a_recorded_failure(app, mail_config, monkeypatch):
    mail_config(MAIL_PORT=str(free_port()))  # nobody listens there
    queued = []

    class CapturingQueue:  # what RQ would be handed (SYNC_JOBS off; no Redis needed)
        def enqueue(self, func, *args, **kwargs):
            queued.append((func, args, kwargs))

    monkeypatch.setitem(app.config, "SYNC_JOBS", False)
    monkeypatch.setattr(jobs, "queue", CapturingQueue)
    message = send_mail("ada@example.org", "Nobody home", "Text.")
    db.session.commit()
    assert queued == [(deliver, (message.id,), {"retry": mailer.DELIVERY_RETRY})]

    with pytest.raises(DeliveryFailed, match="could not reach 127.0.0.1"):
        deliver(message.id)
    row = stored(message.id)
    assert row.attempts == 1 and "could not reach" in row.last_error and row.sent_at is None


def test_one_refused_recipient_does_not_stop_the_others(smtp):
    smtp.refuse = {"gone@example.org"}
    message = send_mail(["ada@example.org", "gone@example.org"], "Partly", "Text.")
    db.session.commit()
    assert smtp.received[0][1] == ["ada@example.org"]
    row = stored(message.id)
    assert row.sent_at is not None and "gone@example.org: 550" in row.last_error


def test_every_recipient_refused_is_a_failure(smtp):
    smtp.refuse = {"gone@example.org"}
    message = send_mail("gone@example.org", "Nobody", "Text.")
    db.session.commit()
    row = stored(message.id)
    assert row.sent_at is None and "every recipient was refused" in row.last_error and smtp.received == []


def test_a_message_another_delivery_is_sending_is_left_alone(smtp):
    message = send_mail("ada@example.org", "Claimed", "Text.")
    db.session.flush()
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message.id)
                       .values(sending_until=now_utc() + timedelta(minutes=1)))
    db.session.commit()  # the inline delivery finds it claimed
    assert smtp.received == [] and stored(message.id).attempts == 0
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message.id)
                       .values(sending_until=now_utc() - timedelta(seconds=1)))
    db.session.commit()
    deliver(message.id)  # the claim lapsed (that delivery died): this one sends it
    assert len(smtp.received) == 1 and stored(message.id).sent_at is not None


def test_auth_with_the_right_password_delivers_and_the_password_is_never_written_down(mail_config, caplog):
    with SmtpServer(authenticator=authenticator, auth_require_tls=False) as server:
        mail_config(MAIL_PORT=str(server.port), MAIL_USERNAME="roomsync", MAIL_PASSWORD="wrong-" + SECRET)
        with caplog.at_level(logging.DEBUG):
            refused = send_mail("ada@example.org", "Auth", "Text.")
            db.session.commit()
        row = stored(refused.id)
        assert row.sent_at is None and "refused the MAIL_USERNAME / MAIL_PASSWORD: 535" in row.last_error
        assert SECRET not in row.last_error and SECRET not in caplog.text
        assert SECRET not in repr(MailSettings.from_config({"MAIL_PASSWORD": SECRET}))

        mail_config(MAIL_PASSWORD=SECRET)
        with caplog.at_level(logging.DEBUG):
            deliver(refused.id)
        assert stored(refused.id).sent_at is not None and len(server.inbox.received) == 1
        assert SECRET not in caplog.text


def test_starttls_verifies_the_server_with_the_configured_ca(mail_config, tls_files):
    with SmtpServer(tls_context=tls_files.ssl_context(), require_starttls=True) as server:
        mail_config(MAIL_PORT=str(server.port), MAIL_STARTTLS=True, MAIL_CA_BUNDLE=str(tls_files.ca_path))
        message = send_mail("ada@example.org", "Over STARTTLS", "Encrypted.")
        db.session.commit()
        assert stored(message.id).sent_at is not None and len(server.inbox.received) == 1

        mail_config(MAIL_CA_BUNDLE="")  # the system's CAs do not know the test CA: refused, not sent in clear
        untrusted = send_mail("ada@example.org", "Untrusted", "Not sent.")
        db.session.commit()
        row = stored(untrusted.id)
        assert row.sent_at is None and "CERTIFICATE_VERIFY_FAILED" in row.last_error
        assert len(server.inbox.received) == 1


def test_implicit_tls(mail_config, tls_files):
    with SmtpServer(ssl_context=tls_files.ssl_context()) as server:
        mail_config(MAIL_PORT=str(server.port), MAIL_SSL=True, MAIL_CA_BUNDLE=str(tls_files.ca_path))
        message = send_mail("ada@example.org", "Over TLS", "Encrypted.")
        db.session.commit()
        assert stored(message.id).sent_at is not None
        assert server.inbox.messages[0]["Subject"] == "Over TLS"


def test_settings_defaults_and_clear_errors():
    assert MailSettings.from_config({}).port == 25
    assert MailSettings.from_config({"MAIL_STARTTLS": True}).port == 587
    assert MailSettings.from_config({"MAIL_SSL": "1"}).port == 465
    assert MailSettings.from_config({}).sender == "Roomsync <roomsync@localhost>"
    with pytest.raises(mailer.MailConfigError, match="not both"):
        MailSettings.from_config({"MAIL_SSL": True, "MAIL_STARTTLS": True})
    with pytest.raises(mailer.MailConfigError, match="MAIL_PORT must be a port number"):
        MailSettings.from_config({"MAIL_PORT": "smtp"})
    with pytest.raises(mailer.MailConfigError, match="MAIL_FROM"):
        MailSettings.from_config({"MAIL_FROM": "nobody"})


def test_a_bad_setting_is_recorded_on_the_message(smtp, mail_config):
    mail_config(MAIL_SSL=True, MAIL_STARTTLS=True)
    message = send_mail("ada@example.org", "Misconfigured", "Text.")
    db.session.commit()
    row = stored(message.id)
    assert row.sent_at is None and "not both" in row.last_error and smtp.received == []


# ---------------------------------------------------------------------------------------------- RQ and the worker


@pytest.fixture
def rq_queue(app, redis_url):
    name = f"test-notify-{uuid.uuid4().hex[:8]}"
    saved = {key: app.config.get(key) for key in ("SYNC_JOBS", "REDIS_URL", "RQ_QUEUE")}
    app.config.update(SYNC_JOBS=False, REDIS_URL=redis_url, RQ_QUEUE=name)
    app.extensions["roomsync_redis"] = None
    connection = Redis.from_url(redis_url)
    yield Queue(name, connection=connection)
    Queue(name, connection=connection).delete(delete_jobs=True)
    connection.close()
    app.config.update(saved)
    app.extensions["roomsync_redis"] = None


def test_the_delivery_job_is_queued_with_retries_and_a_real_worker_sends_it(app, rq_queue, redis_url):
    with SmtpServer() as server:
        message = send_mail("ada@example.org", "From the worker", "Sent by worker.py.")
        db.session.commit()
        assert server.inbox.received == []  # queued, not run
        [job] = rq_queue.get_jobs()
        assert (job.func_name, job.args, job.kwargs) == ("webapp.notify.mailer.deliver", (message.id,), {})
        assert job.retries_left == 5 and job.retry_intervals == [60, 300, 1800, 7200, 21600]

        env = {k: v for k, v in os.environ.items() if k not in ("ROOMSYNC_SYNC_JOBS",)}
        env.update(DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], ROOMSYNC_INSTANCE=app.instance_path,
                   SECRET_KEY="test-secret", REDIS_URL=redis_url, ROOMSYNC_RQ_QUEUE=rq_queue.name,
                   MAIL_SERVER="127.0.0.1", MAIL_PORT=str(server.port), MAIL_FROM="Roomsync <rooms@hq.example.org>")
        result = subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert job.get_status() == JobStatus.FINISHED, result.stderr
        assert [m["Subject"] for m in server.inbox.messages] == ["From the worker"]
        assert stored(message.id).sent_at is not None, result.stderr


# ---------------------------------------------------------------------------------------------- the outbox page


@pytest.fixture
def venue(make_venue):
    return make_venue()


@pytest.fixture
def admin(make_user):
    return make_user("admin@roomsync.test", first_name="Ann", role="admin")


def test_the_outbox_page_lists_messages_newest_first_with_their_status(app, venue, admin, login, smtp):
    sent = send_mail("ada@example.org", "First, sent", "One.", kind="pair_broken", venue_id=venue.id)
    db.session.commit()
    smtp.data_reply = "554 5.7.1 Relay denied"
    failed = send_mail("bob@example.org", "Second, failed", "Two.", kind="event_refused", venue_id=venue.id)
    db.session.commit()
    client = login(admin)
    page = client.get("/admin/outbox/").get_data(as_text=True)
    assert page.index("Second, failed") < page.index("First, sent")
    assert f'id="message-{sent.id}" data-status="sent"' in page
    assert f'id="message-{failed.id}" data-status="failed"' in page
    assert "554 5.7.1 Relay denied" in page and "Room booking declined" in page and "Pair broken" in page

    detail = client.get(f"/admin/outbox/{sent.id}")
    assert detail.status_code == 200
    text = detail.get_data(as_text=True)
    assert "ada@example.org" in text and "One." in text and str(escape(stored(sent.id).rfc_message_id)) in text


def test_without_mail_server_the_page_says_so(app, venue, admin, login, mail_config):
    mail_config(MAIL_SERVER="")
    message = send_mail("ada@example.org", "Held", "Read me here.", html="<p>Read me <b>here</b>.</p>",
                        venue_id=venue.id)
    db.session.commit()
    client = login(admin)
    page = client.get("/admin/outbox/").get_data(as_text=True)
    assert "No mail server is configured" in page and 'data-status="outbox"' in page and "Outbox only" in page
    detail = client.get(f"/admin/outbox/{message.id}").get_data(as_text=True)
    assert "Read me here." in detail
    assert '<iframe class="mail-html" sandbox srcdoc="&lt;p&gt;Read me &lt;b&gt;here' in detail


def test_the_outbox_is_for_admins_only(app, venue, admin, make_user, login, client, mail_config):
    mail_config(MAIL_SERVER="")
    message = send_mail("ada@example.org", "Admins only", "Text.", venue_id=venue.id)
    db.session.commit()
    assert client.get("/admin/outbox/").status_code == 302  # signed out: to the sign-in page
    login(make_user(role="member"))
    assert client.get("/admin/outbox/").status_code == 403
    assert client.get(f"/admin/outbox/{message.id}").status_code == 403


def test_unknown_messages_and_odd_pages_are_404_or_ignored(venue, admin, login, mail_config):
    mail_config(MAIL_SERVER="")
    client = login(admin)
    assert client.get("/admin/outbox/999").status_code == 404
    assert client.get("/admin/outbox/99999999999999999999").status_code == 404
    assert client.get("/admin/outbox/?before=abc").status_code == 200
    assert client.get("/admin/outbox/?before=-4").status_code == 200
    assert "No older messages" in client.get("/admin/outbox/?before=1").get_data(as_text=True)


def test_the_outbox_pages_by_fifty(venue, admin, login, mail_config):
    mail_config(MAIL_SERVER="")
    for n in range(55):
        send_mail("ada@example.org", f"Message number {n:02d}", "Text.", venue_id=venue.id)
    db.session.commit()
    client = login(admin)
    first = client.get("/admin/outbox/").get_data(as_text=True)
    assert "Message number 54" in first and "Message number 05" in first and "Message number 04" not in first
    older = client.get("/admin/outbox/?before=6").get_data(as_text=True)
    assert "Message number 04" in older and "Message number 00" in older and "Message number 05" not in older


# ---------------------------------------------------------------------------------------------- broken pairs


def integration_on(venue, public_base_url=None):
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email="roomsync.butler@roomsync.test",
                                       enabled=True, last_validated_at=now_utc(), public_base_url=public_base_url))
    db.session.commit()


def make_pair(venue, space, email, display_name, state="live") -> Pair:
    """A pair as the initial sync leaves it (made directly: these tests are about what happens when it breaks)."""
    pair = Pair(venue_id=venue.id, space_id=space.id, room_email=email, room_id=f"id-{email}",
                room_display_name=display_name, state=state, state_detail="")
    db.session.add(pair)
    db.session.commit()
    return pair


@pytest.fixture
def team(make_user, admin):
    return dict(admin=admin, other_admin=make_user("zoe@roomsync.test", role="admin"),
                retired_admin=make_user("old@roomsync.test", role="admin", active=False),
                member=make_user("priya@roomsync.test"))


def test_a_broken_pair_emails_every_active_admin_once(venue, make_space, team, smtp):
    integration_on(venue, public_base_url="https://rooms.example.org/hq")
    pair = make_pair(venue, make_space(venue, "Board room A"), "boarda@roomsync.test", "Board Room A (Outlook)")
    why = "The room Board Room A (boarda@roomsync.test) no longer exists in Microsoft 365."

    pairs.mark_broken(pair, why)

    assert len(smtp.received) == 1
    _, rcpt_tos, email = smtp.received[0]
    assert sorted(rcpt_tos) == ["admin@roomsync.test", "zoe@roomsync.test"]  # not the inactive one, no member
    # (folded on the wire, being long; Python's parser keeps the fold's leading space)
    assert email["Subject"].strip() == "Roomsync: the sync of Board room A with Board Room A (Outlook) stopped"
    text = email.get_body(("plain",)).get_content()
    assert 'space "Board room A"' in text and "boarda@roomsync.test" in text and why in text
    assert "Check the room in Microsoft 365" in text and "unsync" in text
    assert "https://rooms.example.org/hq/admin/sync/" in text
    html = email.get_body(("html",)).get_content()
    assert 'href="https://rooms.example.org/hq/admin/sync/"' in html and "Board room A" in html

    row = db.session.scalar(select(OutboxMessage))
    assert (row.kind, row.venue_id) == ("pair_broken", venue.id)
    assert row.dedup_key.startswith(f"pair-broken:{pair.id}:")
    pairs.notify_admins_pair_broken(pair.id)  # the job, run again (a crash, a retry): nobody emailed twice
    db.session.commit()
    assert len(smtp.received) == 1 and outbox_count() == 1


def test_a_pair_no_longer_broken_or_gone_emails_nobody(venue, make_space, team, smtp):
    pair = make_pair(venue, make_space(venue, "Board room A"), "a@roomsync.test", "A")
    pairs.notify_admins_pair_broken(pair.id)  # live, not broken
    pairs.notify_admins_pair_broken(pair.id + 1000)  # no such pair
    assert smtp.received == [] and outbox_count() == 0


def test_the_link_falls_back_to_public_base_url_and_without_any_is_left_out(app, venue, make_space, team,
                                                                             mail_config):
    mail_config(MAIL_SERVER="", PUBLIC_BASE_URL="http://127.0.0.1:5000")
    integration_on(venue)
    a = make_pair(venue, make_space(venue, "A"), "a@roomsync.test", "A")
    pairs.mark_broken(a, "Gone.")
    assert "Synced rooms: http://127.0.0.1:5000/admin/sync/" in db.session.scalar(select(OutboxMessage.text))

    app.config["PUBLIC_BASE_URL"] = ""
    b = make_pair(venue, make_space(venue, "B"), "b@roomsync.test", "B")
    pairs.mark_broken(b, "Gone too.")
    text = db.session.scalar(select(OutboxMessage.text).where(OutboxMessage.dedup_key.like(f"%:{b.id}:%")))
    assert "In Roomsync: Admin, then Synced rooms." in text and "http" not in text


def test_a_room_deleted_in_microsoft_365_emails_the_admins(connected, sandbox_admin, make_venue, make_space, admin,
                                                          smtp):
    venue = make_venue()
    integration_on(venue)
    room = provider.room_directory()[0]
    pair = make_pair(venue, make_space(venue, "Huddle"), room.email.lower(), room.display_name)
    sandbox_admin.delete_room(room.email)

    pairs.check_rooms(venue.id)

    db.session.expire_all()
    assert db.session.get(Pair, pair.id).state == "broken"
    [email] = smtp.messages
    assert [a.addr_spec for a in email["To"].addresses] == [admin.email]
    text = email.get_body(("plain",)).get_content()
    assert room.email.lower() in text and "no longer exists in Microsoft 365" in text
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")  # the webhooks' base doubles as the links' base
    assert base.startswith("http://127.0.0.1:") and f"{base}/admin/sync/" in text


# ---------------------------------------------------------------------------------------------- organizer emails


def test_event_refused_tells_the_organizer_why_in_the_venue_zone(venue, smtp):
    message = messages.event_refused(
        venue=venue, organizer_email="ada@example.org", organizer_name="Ada Lovelace", room_name="Board room A",
        start_utc=datetime(2026, 6, 2, 9, 0, tzinfo=timezone.utc),
        end_utc=datetime(2026, 6, 2, 10, 30, tzinfo=timezone.utc),
        subject="Roadmap review", reason="It spans midnight, which Board room A does not allow.",
        dedup_key="refused:1:evt-1", private=False)
    db.session.commit()
    _, rcpt_tos, email = smtp.received[0]
    assert rcpt_tos == ["ada@example.org"]
    assert email["Subject"] == "Your booking of Board room A was declined"
    text = email.get_body(("plain",)).get_content()
    assert text.startswith("Hello Ada Lovelace,")
    assert "Roadmap review" in text
    assert "Tuesday 2 June 2026, 10:00–11:30 (Europe/London)" in text  # BST: UTC+1
    assert "Why: It spans midnight" in text
    assert "Roadmap review" in email.get_body(("html",)).get_content()
    assert stored(message.id).kind == "event_refused"


def test_event_times_spanning_days_name_both_days(venue, mail_config):
    mail_config(MAIL_SERVER="")
    messages.event_refused(
        venue=venue, organizer_email="ada@example.org", organizer_name="", room_name="Board room A",
        start_utc=datetime(2026, 3, 2, 21, 0, tzinfo=timezone.utc),
        end_utc=datetime(2026, 3, 3, 1, 0, tzinfo=timezone.utc),
        subject="", reason="Overnight.", dedup_key="refused:2")
    db.session.commit()
    text = db.session.scalar(select(OutboxMessage.text))
    assert "Hello ada@example.org," in text and "(no subject)" in text
    assert "Monday 2 March 2026 21:00 – Tuesday 3 March 2026 01:00 (Europe/London)" in text


def test_event_removed_suggests_splitting(venue, smtp):
    rooms = [f"Room {n}" for n in range(1, 13)]
    messages.event_removed(
        venue=venue, organizer_email="ada@example.org", organizer_name="Ada", room_names=rooms,
        start_utc=datetime(2026, 3, 4, 14, 0, tzinfo=timezone.utc),
        end_utc=datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc),
        subject="All hands", reason="It booked 12 synced rooms.", dedup_key="removed:evt-9", private=False)
    db.session.commit()
    _, rcpt_tos, email = smtp.received[0]
    assert rcpt_tos == ["ada@example.org"] and email["Subject"] == "Your event booking 12 rooms was removed"
    text = email.get_body(("plain",)).get_content()
    assert "All hands" in text and "removed your event in Outlook: it booked 12 rooms" in text and "at most 10 of them" in text
    assert "Room 1, Room 2" in text and "Room 12" in text
    assert "split the event into several events of at most 10 rooms each" in text
    assert "Wednesday 4 March 2026, 14:00–15:00 (Europe/London)" in text


def test_organizer_emails_are_not_sent_twice_for_one_event(venue, smtp):
    for _ in range(2):
        messages.event_removed(
            venue=venue, organizer_email="ada@example.org", organizer_name="Ada", room_names=["A"] * 11,
            start_utc=datetime(2026, 3, 4, 14, 0, tzinfo=timezone.utc),
            end_utc=datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc), subject="All hands", reason="",
            dedup_key="removed:evt-9")
        db.session.commit()
    assert len(smtp.received) == 1 and outbox_count() == 1


# ---------------------------------------------------------------------------------------------- privacy


def test_a_private_event_title_reaches_its_organizer_and_nobody_else(venue, admin, make_user, login, smtp, caplog):
    organizer = make_user("ada@roomsync.test", first_name="Ada")
    with caplog.at_level(logging.DEBUG):
        message = messages.event_refused(
            venue=venue, organizer_email=organizer.email, organizer_name="Ada", room_name="Board room A",
            start_utc=datetime(2026, 3, 3, 10, 0, tzinfo=timezone.utc),
            end_utc=datetime(2026, 3, 3, 11, 0, tzinfo=timezone.utc), subject=PRIVATE_TITLE,
            reason="It clashes with a booking of Board room A+B.", dedup_key="refused:private")
        db.session.commit()

    # The organizer, and only the organizer, receives it with the title.
    [(_, rcpt_tos, email)] = smtp.received
    assert rcpt_tos == [organizer.email]
    assert PRIVATE_TITLE in email.get_body(("plain",)).get_content()
    assert PRIVATE_TITLE not in email["Subject"]
    # Not in the logs, which admins and operators read.
    assert not [r for r in caplog.records if r.name.startswith("webapp") and PRIVATE_TITLE in r.getMessage()]
    # Not on the admins' outbox pages (the venue does not let admins see private titles).
    client = login(admin)
    listing = client.get("/admin/outbox/").get_data(as_text=True)
    detail = client.get(f"/admin/outbox/{message.id}").get_data(as_text=True)
    assert "Your booking of Board room A was declined" in listing
    assert PRIVATE_TITLE not in listing and PRIVATE_TITLE not in detail
    assert "only they can read it here" in detail

    # Where the venue lets admins see private titles, the admin may read it.
    venue.admins_see_private = True
    db.session.commit()
    assert PRIVATE_TITLE in client.get(f"/admin/outbox/{message.id}").get_data(as_text=True)


def test_an_admin_who_organised_the_private_event_reads_their_own_message(venue, admin, login, mail_config):
    mail_config(MAIL_SERVER="")
    message = messages.event_refused(
        venue=venue, organizer_email=admin.email, organizer_name="Ann", room_name="Board room A",
        start_utc=datetime(2026, 3, 3, 10, 0, tzinfo=timezone.utc),
        end_utc=datetime(2026, 3, 3, 11, 0, tzinfo=timezone.utc), subject=PRIVATE_TITLE, reason="Clash.",
        dedup_key="refused:own")
    db.session.commit()
    assert PRIVATE_TITLE in login(admin).get(f"/admin/outbox/{message.id}").get_data(as_text=True)


def test_smtp_url_stands_for_the_mail_settings():
    from webapp.config import mail_from_smtp_url

    assert mail_from_smtp_url("smtp+starttls://ann%40x.test:p%3Ass@mail.x.test:587") == {
        "MAIL_SERVER": "mail.x.test", "MAIL_PORT": "587", "MAIL_USERNAME": "ann@x.test", "MAIL_PASSWORD": "p:ss",
        "MAIL_SSL": False, "MAIL_STARTTLS": True}
    assert mail_from_smtp_url("smtps://mail.x.test")["MAIL_SSL"] is True
    assert mail_from_smtp_url("smtp://127.0.0.1:2525?starttls=1")["MAIL_STARTTLS"] is True
    assert mail_from_smtp_url("smtp://127.0.0.1:2525")["MAIL_STARTTLS"] is False
    with pytest.raises(ValueError):
        mail_from_smtp_url("http://mail.x.test")
