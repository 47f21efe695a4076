"""The tablet view (issue 7): wall panels by a room's door and lobby boards.

- `models`: `Device` (an enrolled tablet, bound to one space or to the venue's lobby) and `EnrolmentCode`.
- `devices`: enrolment, token lookup, revocation.
- `status`: the pure status rule (free / soon / busy / closed) shared with `static/kiosk.js`.
- `views`: /kiosk (enrolment), /kiosk/panel (+ polled fragment with ETag/304, the actions, the room's photo),
  /kiosk/lobby.
- `admin_views`: /admin/devices.
- `actions`, `release`: walk-in booking, extend, end early, check-in, auto-release (see their docstrings).
"""
