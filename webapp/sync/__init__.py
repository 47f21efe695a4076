"""The two-way sync with Microsoft 365.

Map: `models` (tables), `adjust` (grid adjustment), `plan` (the pure decision table for one room event),
`recurrence_map` (Graph patterns ↔ RRULE), `pairs` (pairing, unsync, room checks), `rooms` (the provider's
rooms for the pairing form), `initial` (the resumable initial sync and its dry run), `freeze` (no bookings
while a space syncs), `parity` (both sides compared), `report` (the initial sync's report), `schedule` (the
cron jobs), and live sync: `subscriptions` (Graph subscriptions and lifecycle events), `webhook` (check,
persist, queue), `inbound` (Outlook → Roomsync), `outbound` (Roomsync → Outlook), `reconcile` (delta repair
and audits), `health` (incidents and the health page's figures), `locks` (per-pair Redis locks), `views`.
"""
