from django.db import migrations, models

# What a fingerprint covers (`pipeline.fingerprint`). An update that changes one of these without writing a new
# fingerprint (anything but the pipeline's upsert: an operator's SQL, a future code path) clears it, so that the
# next rebuild, which skips the rows whose fingerprint it computes again, rewrites that row.
COVERED = ("need_id", "offer_id", "score", "lexical", "semantic", "structured", "alignment", "explanation",
           "model_version")  # fmt: skip

POSTGRESQL = [
    """CREATE FUNCTION matching_match_fingerprint_stale() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.fingerprint IS NOT DISTINCT FROM OLD.fingerprint THEN
            NEW.fingerprint := NULL;
        END IF;
        RETURN NEW;
    END $$""",
    f"""CREATE TRIGGER matching_match_fingerprint_stale BEFORE UPDATE OF {", ".join(COVERED)} ON matching_match
    FOR EACH ROW WHEN (({", ".join(f"OLD.{c}" for c in COVERED)})
                       IS DISTINCT FROM ({", ".join(f"NEW.{c}" for c in COVERED)}))
    EXECUTE FUNCTION matching_match_fingerprint_stale()""",
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS matching_match_fingerprint_stale ON matching_match",
    "DROP FUNCTION IF EXISTS matching_match_fingerprint_stale()",
]
SQLITE = [
    f"""CREATE TRIGGER matching_match_fingerprint_stale AFTER UPDATE OF {", ".join(COVERED)} ON matching_match
    FOR EACH ROW WHEN ({" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in COVERED)})
                      AND NEW.fingerprint IS OLD.fingerprint
    BEGIN UPDATE matching_match SET fingerprint = NULL WHERE id = NEW.id; END""",
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS matching_match_fingerprint_stale"]


def _run(statements: dict[str, list[str]]):
    def run(apps, schema_editor):
        for statement in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("matching", "0011_post_lexical_rows"),
    ]

    operations = [
        migrations.AddField(
            model_name="match",
            name="fingerprint",
            field=models.BigIntegerField(blank=True, editable=False, null=True, verbose_name="fingerprint"),
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
    ]
