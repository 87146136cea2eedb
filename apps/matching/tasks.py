"""Celery tasks: thin wrappers that take ids and call matching services."""

from celery import shared_task


@shared_task(acks_late=True)
def match_posts(post_ids: list[int]) -> None:
    from .services import matching_run_for_posts

    matching_run_for_posts(post_ids=post_ids)
