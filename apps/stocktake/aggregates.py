"""Two SQL building blocks Django lacks: days between two timestamps, and PostgreSQL's percentile_cont."""

from django.db.models import FloatField, Func


class DaysBetween(Func):
    """(later - earlier) in fractional days, computed by the database."""

    arity = 2
    output_field = FloatField()
    # PostgreSQL (the default): the epoch seconds of the interval.
    template = "(EXTRACT(EPOCH FROM (%(expressions)s)) / 86400.0)"
    arg_joiner = " - "

    def as_sqlite(self, compiler, connection, **extra_context):
        # SQLite stores timestamps as ISO text, which julianday() reads; the difference is in days already.
        return self.as_sql(
            compiler,
            connection,
            template="(julianday(%(expressions)s))",
            arg_joiner=") - julianday(",
            **extra_context,
        )


def days_between_sql(later: str, earlier: str) -> str:
    """`DaysBetween` as PostgreSQL text, for the statements `selectors` writes around querysets."""
    return DaysBetween.template % {"expressions": f"{later}{DaysBetween.arg_joiner}{earlier}"}


def percentile_cont_sql(fraction: float, expression: str) -> str:
    """PostgreSQL's ordered-set aggregate: the continuous percentile of the SQL expression (0 <= fraction
    <= 1). Other databases have no equivalent; `selectors` reads the ranks with ORDER BY/OFFSET there."""
    fraction = float(fraction)
    if not 0 <= fraction <= 1:
        raise ValueError("A percentile is a fraction between 0 and 1.")
    # A validated float, so formatting it into the SQL is safe.
    return f"percentile_cont({fraction!r}) WITHIN GROUP (ORDER BY {expression})"
