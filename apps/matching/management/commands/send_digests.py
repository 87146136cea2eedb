"""Send the daily digest of new strong matches now, in this process (what the beat task `send_digests` does)."""

from django.core.management.base import BaseCommand, CommandError

from apps.matching.services import DigestIncomplete, digest_plan, digest_send_all


class Command(BaseCommand):
    help = (
        "Email every opted-in focal point and provider user the strong matches new since their last digest, "
        "as the daily task does; a digest already sent is not sent again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List who would get a digest and how many matches it would list; send and record nothing.",
        )

    def handle(self, *args, **options):
        if options["dry_run"]:
            until, plan = digest_plan()
            for user, count in plan:
                self.stdout.write(f"{user.username} <{user.email}>: {count}")
            self.stdout.write(
                f"{len(plan)} digests would be sent (matches strong up to {until.isoformat()})."
            )
            return
        try:
            sent = digest_send_all()
        except DigestIncomplete as exc:
            self.stdout.write(f"{exc.sent} digest emails sent.")
            ids = ", ".join(str(pk) for pk in exc.failed_user_ids)
            raise CommandError(
                f"The digests of {len(exc.failed_user_ids)} users could not be sent (user ids {ids}; the log "
                "says why). Run the command again: a digest already sent is not sent again."
            ) from exc
        self.stdout.write(f"{sent} digest emails sent.")
