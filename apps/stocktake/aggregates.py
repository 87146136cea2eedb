"""Two SQL building blocks Django lacks: days between two timestamps, and PostgreSQL's percentile_cont."""

from django.db import NotSupportedError
from django.db.models import Aggregate, FloatField, Func


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


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate: the continuous percentile of the expression (0 <= fraction <= 1).

    Other databases have no equivalent; `apps.stocktake.selectors` reads the ranks with ORDER BY/OFFSET there.
    """

    function = "percentile_cont"
    name = "PercentileCont"
    output_field = FloatField()
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    allow_distinct = False

    def __init__(self, expression, fraction: float, **extra):
        fraction = float(fraction)
        if not 0 <= fraction <= 1:
            raise ValueError("A percentile is a fraction between 0 and 1.")
        # A validated float, so formatting it into the SQL is safe.
        super().__init__(expression, fraction=repr(fraction), **extra)

    def as_sql(self, compiler, connection, **extra_context):
        if connection.vendor != "postgresql":
            raise NotSupportedError("percentile_cont is computed on PostgreSQL only.")
        return super().as_sql(compiler, connection, **extra_context)
