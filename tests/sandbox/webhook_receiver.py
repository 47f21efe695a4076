"""A stand-in for the app that receives change notifications, shared by the notification tests.

`Receiver` is a tiny Flask app with one route, `/hook` (any sub-path too): it answers Graph's validation
handshake as a well-behaved client does (200, text/plain, the decoded token) unless told otherwise, records
every notification POST (`posts`: list of `Post(path, query, body, at)`) and answers them with 500 on a
path listed in `failing`, else with the next status from `statuses` (default 202). Use it in-process
(`transport`) or over real HTTP (`serve()`).

Fixtures (import them into the test module; they build on tests/sandbox/conftest.py): `receiver` (a fresh
Receiver wired into the sandbox's delivery as its transport), `subscribe` (creates a subscription through the
Graph API and returns its JSON).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from webapp.sandbox.clock import iso_z, now
from webapp.sandbox.notifications import flask_transport


@dataclass
class Post:
    path: str
    query: dict
    body: dict | None
    at: float


class Receiver:
    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.validations: list[str] = []
        self.statuses: deque[int] = deque()
        self.validation_reply = None  # None: correct echo; else a callable(token) -> Flask response tuple
        self.delays: deque[float] = deque()  # seconds to sleep before answering the next notifications
        self.failing: set[str] = set()  # paths that answer 500 to every notification
        self._lock = threading.Lock()
        self.app = Flask("webhook_receiver")
        self.app.add_url_rule("/hook", "hook", self._hook, methods=["POST"])
        self.app.add_url_rule("/hook/<path:rest>", "hook_rest", self._hook, methods=["POST"])
        self.transport = flask_transport(self.app)

    def _hook(self, rest: str = ""):
        if "validationToken" in request.args:
            token = request.args["validationToken"]
            with self._lock:
                self.validations.append(token)
            if self.validation_reply is not None:
                return self.validation_reply(token)
            return token, 200, {"Content-Type": "text/plain; charset=utf-8"}
        with self._lock:
            delay = self.delays.popleft() if self.delays else 0.0
        time.sleep(delay)
        with self._lock:
            self.posts.append(Post(request.path, request.args.to_dict(), request.get_json(silent=True),
                                   time.monotonic()))
            if request.path in self.failing:
                status = 500
            else:
                status = self.statuses.popleft() if self.statuses else 202
        return "", status

    def notifications(self, path: str | None = None) -> list[dict]:
        """Every notification received (flattened over POSTs), optionally only those POSTed to `path`."""
        with self._lock:
            return [item for post in self.posts if path is None or post.path == path
                    for item in (post.body or {}).get("value", [])]

    def serve(self):
        """Serve over real HTTP on a free loopback port; returns (base_url, stop)."""
        server = make_server("127.0.0.1", 0, self.app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def stop():
            server.shutdown()
            thread.join(timeout=5)

        return f"http://127.0.0.1:{server.server_port}", stop


@pytest.fixture
def receiver(sandbox_state):
    hook = Receiver()
    sandbox_state.delivery.set_transport(hook.transport)
    yield hook
    sandbox_state.delivery.set_transport(None)


@pytest.fixture
def subscribe(graph):
    def make(mailbox: str, *, minutes: int = 120, change_type: str = "created,updated,deleted",
             url: str = "https://app.test/hook", lifecycle: str | None = "https://app.test/hook/lifecycle",
             client_state: str | None = "s3cret-state") -> dict:
        body = {"changeType": change_type, "notificationUrl": url, "resource": f"users/{mailbox}/events",
                "expirationDateTime": iso_z(now() + timedelta(minutes=minutes)), "clientState": client_state}
        if lifecycle:
            body["lifecycleNotificationUrl"] = lifecycle
        response = graph.post("/v1.0/subscriptions", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return make
