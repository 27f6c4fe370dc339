"""Cron expressions: checked once at load, and the next slot of a checked expression.

croniter accepts some expressions that cannot do what they say: a step wider than its
field (`*/61` in the minutes fires hourly) and dates that never come (`0 0 31 2 *`, which
makes `get_next` raise at run time). Both are refused here, when the workflow loads.
"""

from __future__ import annotations

from datetime import UTC, datetime

# croniter (and dateutil) are imported by the functions below, when a workflow has a
# schedule: a host whose workflows have none never pays for them.

# (field name, lowest value, highest value), in croniter's order; the sixth is seconds.
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
    ("second", 0, 59),
)


class BadCron(ValueError):
    pass


def check_cron(expression: str) -> None:
    """Raise BadCron, saying why, unless `expression` is valid and can fire."""
    from croniter import CroniterBadDateError, croniter

    if not croniter.is_valid(expression):
        raise BadCron(f"{expression!r} is not a valid cron expression")
    if not expression.startswith("@"):
        for (field, low, high), part in zip(_FIELDS, expression.split(), strict=False):
            for item in part.split(","):
                _check_step(expression, field, low, high, item)
    try:
        next_slot(expression, datetime.now(UTC))
    except CroniterBadDateError:
        raise BadCron(f"{expression!r} can never fire: no date matches it") from None


def _check_step(expression: str, field: str, low: int, high: int, item: str) -> None:
    _, slash, step = item.partition("/")
    if slash and step.isdigit() and not 1 <= int(step) <= high - low:
        raise BadCron(
            f"{expression!r}: the {field} step /{step} is out of range "
            f"(1-{high - low}); a wider step fires only once per period"
        )


def next_slot(expression: str, after: datetime) -> datetime:
    """The first slot strictly after `after`; CroniterBadDateError if there is none."""
    from croniter import croniter

    slot: datetime = croniter(expression, after).get_next(datetime)
    return slot
