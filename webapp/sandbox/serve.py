"""Serving the sandbox tenant over HTTPS (or plain HTTP for tests) from an instance folder.

Public API:
- `make_sandbox_server(host, port, instance_dir, *, plain_http=False, config=None) -> SandboxServer` —
  binds a threaded werkzeug server (port 0 picks a free one), builds the app with its state in
  `<instance_dir>/sandbox.sqlite3` (unless `config` says otherwise) and `SANDBOX_BASE_URL` =
  `https://<host>:<bound port>` (its `base_url`; in plain-HTTP mode too, see below), serves HTTPS with the certificate of `tls.ensure_certificates(<instance_dir>/sandbox-tls)`, and
  writes `<instance_dir>/sandbox.env`. Call `serve_forever()` (blocking) or `start()` (a daemon thread) on
  it, then `shutdown()`. `listen_url` is where it really listens (`http://…` in plain-HTTP mode).
- `serve(host, port, instance_dir, plain_http=False)` — the above, blocking until interrupted;
  `python -m webapp.sandbox --host --port --instance [--plain-http]` calls it.
- `write_env_file(path, base_url, listen_url, ca_path, admin_key)` — the `sandbox.env` Roomsync reads in sandbox mode:
  GRAPH_TENANT_ID, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET, GRAPH_AUTHORITY (<base>/<tenant id>),
  GRAPH_BASE_URL (<base>/v1.0), GRAPH_CA_BUNDLE (the CA; empty in plain-HTTP mode), plus SANDBOX_URL (the
  listen URL) and SANDBOX_ADMIN_KEY for tests and benchmarks.

Plain HTTP exists for tests that drive the sandbox with a rewriting `http_client` (graph-facts §1.4 recipe
B): MSAL refuses `http` authorities and `http` token endpoints found by discovery, so even then the sandbox
names itself `https://…` in discovery, links and sandbox.env, and the client rewrites the scheme.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from . import create_sandbox_app, sandbox_state
from .seed import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT_ID, seed_demo_calendars
from .tls import ensure_certificates


@dataclass
class SandboxServer:
    app: Flask
    server: BaseWSGIServer
    base_url: str
    listen_url: str
    ca_path: Path | None
    env_path: Path
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return self.server.server_port

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self.server.serve_forever, name="sandbox-server", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        sandbox_state(self.app).delivery.close()
        sandbox_state(self.app).store.close()


def write_env_file(path: Path, base_url: str, listen_url: str, ca_path: Path | None, admin_key: str) -> None:
    lines = [
        f"GRAPH_TENANT_ID={DEMO_TENANT_ID}",
        f"GRAPH_CLIENT_ID={DEMO_CLIENT_ID}",
        f"GRAPH_CLIENT_SECRET={DEMO_CLIENT_SECRET}",
        f"GRAPH_AUTHORITY={base_url}/{DEMO_TENANT_ID}",
        f"GRAPH_BASE_URL={base_url}/v1.0",
        f"GRAPH_CA_BUNDLE={ca_path.resolve() if ca_path else ''}",
        f"SANDBOX_URL={listen_url}",
        f"SANDBOX_ADMIN_KEY={admin_key}",
    ]
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o600)  # it holds the client secret and the admin key


def make_sandbox_server(host: str, port: int, instance_dir: str | os.PathLike, *, plain_http: bool = False,
                        config: dict | None = None) -> SandboxServer:
    instance = Path(instance_dir)
    instance.mkdir(parents=True, exist_ok=True)
    tls = None if plain_http else ensure_certificates(instance / "sandbox-tls")
    app = create_sandbox_app({"SANDBOX_DB": str(instance / "sandbox.sqlite3"), **(config or {})})
    server = make_server(host, port, app, threaded=True, ssl_context=tls.ssl_context() if tls else None)
    base_url = f"https://{host}:{server.server_port}"
    listen_url = f"{'http' if plain_http else 'https'}://{host}:{server.server_port}"
    app.config["SANDBOX_BASE_URL"] = base_url
    sandbox_state(app).config["SANDBOX_BASE_URL"] = base_url
    env_path = instance / "sandbox.env"
    write_env_file(env_path, base_url, listen_url, tls.ca_path if tls else None, app.config["SANDBOX_ADMIN_KEY"])
    return SandboxServer(app, server, base_url, listen_url, tls.ca_path if tls else None, env_path)


def serve(host: str = "127.0.0.1", port: int = 5001, instance_dir: str | os.PathLike = "instance",
          plain_http: bool = False) -> None:
    sandbox = make_sandbox_server(host, port, instance_dir, plain_http=plain_http,
                                  config={"SANDBOX_ADMIN_KEY": os.environ.get("SANDBOX_ADMIN_KEY",
                                                                              "sandbox-admin-key")})
    print(f"Microsoft 365 sandbox tenant on {sandbox.listen_url}")
    print(f"  tenant {DEMO_TENANT_ID}  client {DEMO_CLIENT_ID}  secret {DEMO_CLIENT_SECRET}")
    if sandbox.ca_path:
        print(f"  CA certificate {sandbox.ca_path}")
    booked = seed_demo_calendars(sandbox.app)
    if booked:
        print(f"  booked {booked} demo meetings in the demo rooms' calendars")
    print(f"  settings written to {sandbox.env_path}", flush=True)
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.shutdown()
