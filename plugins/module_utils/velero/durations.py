# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Go durations (as Velero's ``ttl`` and ``@every`` take them) and 5-field cron schedules, as
robfig/cron (Velero's parser: minute, hour, day of month, month, day of week, descriptors)
reads them. Pure logic: parsing, formatting, and the longest gap between two runs."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import datetime
import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|ms|s|m|h)")
MAX_SECONDS = 100 * 365 * 86400


class DurationError(ValueError):
    pass


def parse_duration(text):
    """A Go duration string ('720h', '1h30m', '90m0s') -> seconds (float). DurationError on
    anything else (no days: Go has no 'd' unit)."""
    if not isinstance(text, str) or not text or len(text) > 64:
        raise DurationError("expected a Go duration such as 720h, 1h30m or 90m")
    body = text[1:] if text[0] in "+-" else text
    if body == "0":
        return 0.0
    pos = 0
    total = 0.0
    while pos < len(body):
        match = _DURATION.match(body, pos)
        if match is None:
            raise DurationError("expected a Go duration such as 720h, 1h30m or 90m (units h, m, s, ms, us, ns)")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise DurationError("expected a Go duration such as 720h, 1h30m or 90m")
    if text[0] == "-":
        total = -total
    if abs(total) > MAX_SECONDS:
        raise DurationError("longer than 100 years")
    return total


def format_duration(seconds):
    """Seconds -> Go's canonical form ('720h0m0s')."""
    seconds = round(seconds)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%s%dh%dm%ds" % (sign, hours, minutes, secs)
    if minutes:
        return "%s%dm%ds" % (sign, minutes, secs)
    return "%s%ds" % (sign, secs)


class CronError(ValueError):
    pass


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# name, low, high, names (index + low)
_FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NUMBER = re.compile(r"^[0-9]{1,2}$")


def _value(token, field):
    name, low, high, names = field
    upper = token.upper()
    if names and upper in names:
        return names.index(upper) + (1 if name == "month" else 0)
    if not _NUMBER.match(token):
        raise CronError("%s: %r is not a number%s" % (name, token, " or a name" if names else ""))
    number = int(token)
    if number < low or number > high:
        raise CronError("%s: %d is outside %d-%d" % (name, number, low, high))
    return number


def _parse_field(text, field):
    name, low, high, _names = field
    values = set()
    for part in text.split(","):
        if not part:
            raise CronError("%s: empty list item in %r" % (name, text))
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not _NUMBER.match(step_text) or int(step_text) == 0:
                raise CronError("%s: step %r must be a positive number" % (name, step_text))
            step = int(step_text)
        if part in ("*", "?"):
            first, last = low, high
        elif "-" in part:
            first_text, last_text = part.split("-", 1)
            first, last = _value(first_text, field), _value(last_text, field)
            if first > last:
                raise CronError("%s: range %r runs backwards" % (name, part))
        else:
            first = _value(part, field)
            last = high if step > 1 else first
        values.update(range(first, last + 1, step))
    if name == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)
    return values, text.split("/")[0] in ("*", "?")


def parse_schedule(text):
    """A Velero schedule -> ('every', seconds) or ('cron', fields dict). CronError naming the
    field otherwise. Exactly 5 fields: a 6-field (seconds) cron is what makes Velero answer
    FailedValidation."""
    if not isinstance(text, str) or not text.strip():
        raise CronError("empty; expected 5 cron fields or @every <duration>")
    text = text.strip()
    if len(text) > 256:
        raise CronError("longer than 256 characters")
    if text.startswith("@every"):
        rest = text[len("@every") :].strip()
        try:
            seconds = parse_duration(rest)
        except DurationError as exc:
            raise CronError("@every %r: %s" % (rest, exc)) from exc
        if seconds <= 0:
            raise CronError("@every needs a positive duration")
        return "every", seconds
    if text.startswith("@"):
        if text not in DESCRIPTORS:
            raise CronError(
                "unknown descriptor %r; allowed: %s, @every <duration>" % (text, ", ".join(sorted(DESCRIPTORS)))
            )
        text = DESCRIPTORS[text]
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            "%d fields; Velero takes exactly 5 (minute hour day-of-month month day-of-week) "
            "or @every <duration>" % len(parts)
        )
    fields = {}
    for part, field in zip(parts, _FIELDS):
        fields[field[0]] = _parse_field(part, field)
    return "cron", fields


def _day_matches(day, fields):
    dom, dom_star = fields["day of month"]
    dow, dow_star = fields["day of week"]
    if day.month not in fields["month"][0]:
        return False
    weekday = (day.weekday() + 1) % 7  # Sunday 0
    if dom_star or dow_star:  # robfig/cron: AND unless both are restricted
        return day.day in dom and weekday in dow
    return day.day in dom or weekday in dow


def longest_gap(text):
    """The longest time between two consecutive runs of a schedule, in seconds (None when it
    never runs, such as 30 February)."""
    kind, parsed = parse_schedule(text)
    if kind == "every":
        return parsed
    minutes = sorted(h * 60 + m for h in parsed["hour"][0] for m in parsed["minute"][0])
    inner = max([b - a for a, b in zip(minutes, minutes[1:])] or [0])
    start = datetime.date(2024, 1, 1)  # 8 years: every leap-day and weekday pattern repeats
    matching = [offset for offset in range(8 * 366) if _day_matches(start + datetime.timedelta(days=offset), parsed)]
    if not matching:
        return None
    across = max([(b - a) * 1440 + minutes[0] - minutes[-1] for a, b in zip(matching, matching[1:])] or [0])
    return float(max(inner, across) * 60)


def next_runs(text, after, count=1):
    """The next `count` run times (naive UTC datetimes) strictly after `after`."""
    kind, parsed = parse_schedule(text)
    runs = []
    if kind == "every":
        moment = after
        for _unused in range(count):
            moment = moment + datetime.timedelta(seconds=parsed)
            runs.append(moment)
        return runs
    minutes = sorted(h * 60 + m for h in parsed["hour"][0] for m in parsed["minute"][0])
    day = after.date()
    for _unused in range(8 * 366):
        if _day_matches(day, parsed):
            for minute in minutes:
                moment = datetime.datetime.combine(day, datetime.time()) + datetime.timedelta(minutes=minute)
                if moment > after:
                    runs.append(moment)
                    if len(runs) == count:
                        return runs
        day += datetime.timedelta(days=1)
    return runs
