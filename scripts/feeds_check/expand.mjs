// Reads iCalendar files with ical.js (Mozilla's parser, the one Thunderbird's calendar uses) and prints each
// file's occurrences between two instants as JSON: {"file": [[uid, startUTC, endUTC, summary, class], ...]}.
//
// Usage: node expand.mjs START END FILE... (START/END: ISO 8601 UTC, e.g. 2026-01-01T00:00:00Z).
//
// Only the file's own VTIMEZONE components name zones (ical.js knows no zone database): a TZID they do not
// define fails the run. Recurrences are expanded by ical.js itself (RRULE, EXDATE), and a RECURRENCE-ID
// override replaces the instance it names (ICAL.Event.relateException), as a calendar client shows them.
// Exit status 1 with a message on stderr when a file does not parse or an event cannot be read.
import { readFileSync } from "node:fs";
import ICAL from "ical.js";

const [startText, endText, ...files] = process.argv.slice(2);
if (!startText || !endText || files.length === 0) {
  console.error("usage: node expand.mjs START END FILE...");
  process.exit(2);
}
const windowStart = Date.parse(startText);
const windowEnd = Date.parse(endText);
// Occurrences can start a little before the window and still overlap it (HARD_MAX_DURATION in Roomsync).
const LOOKBACK_MS = 2 * 24 * 3600 * 1000;

function iso(time) {
  return new Date(time.toUnixTime() * 1000).toISOString().replace(".000Z", "Z");
}

function expand(text) {
  const calendar = new ICAL.Component(ICAL.parse(text));
  const zones = new Set();
  for (const zone of calendar.getAllSubcomponents("vtimezone")) {
    const timezone = new ICAL.Timezone(zone);
    ICAL.TimezoneService.register(timezone, timezone.tzid);
    zones.add(timezone.tzid);
  }
  const masters = new Map();
  const overrides = [];
  for (const component of calendar.getAllSubcomponents("vevent")) {
    for (const name of ["dtstart", "dtend", "recurrence-id"]) {
      const property = component.getFirstProperty(name);
      const tzid = property && property.getParameter("tzid");
      if (tzid && !zones.has(tzid)) throw new Error(`TZID ${tzid} has no VTIMEZONE`);
    }
    // `exceptions: []`: without it ical.js relates every RECURRENCE-ID component of the calendar to each event,
    // whatever its UID; the right ones are related below (and checked: strictExceptions).
    const event = new ICAL.Event(component, { exceptions: [], strictExceptions: true });
    if (component.hasProperty("recurrence-id")) overrides.push(event);
    else masters.set(event.uid, event);
  }
  for (const override of overrides) {
    const master = masters.get(override.uid);
    if (!master) throw new Error(`RECURRENCE-ID for unknown UID ${override.uid}`);
    master.relateException(override);
  }
  const found = [];
  for (const event of masters.values()) {
    const klass = event.component.getFirstPropertyValue("class") || "PUBLIC";
    if (!event.isRecurring()) {
      const start = event.startDate.toUnixTime() * 1000;
      const end = event.endDate.toUnixTime() * 1000;
      if (start < windowEnd && end > windowStart) found.push([event.uid, iso(event.startDate), iso(event.endDate), event.summary, klass]);
      continue;
    }
    const iterator = event.iterator();
    for (let next = iterator.next(); next; next = iterator.next()) {
      const details = event.getOccurrenceDetails(next);
      const start = details.startDate.toUnixTime() * 1000;
      const end = details.endDate.toUnixTime() * 1000;
      // Instances come in order of their original start; a moved one can land anywhere, so go on past the
      // window's end by the lookback before stopping.
      if (next.toUnixTime() * 1000 >= windowEnd + LOOKBACK_MS) break;
      if (start < windowEnd && end > windowStart) {
        found.push([event.uid, iso(details.startDate), iso(details.endDate), details.item.summary, klass]);
      }
    }
  }
  found.sort((a, b) => (a[0] + a[1] < b[0] + b[1] ? -1 : 1));
  return found;
}

const result = {};
for (const file of files) {
  try {
    result[file] = expand(readFileSync(file, "utf8"));
  } catch (error) {
    console.error(`${file}: ${error.stack || error}`);
    process.exit(1);
  }
}
process.stdout.write(JSON.stringify(result));
