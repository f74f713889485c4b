"""costapp: what Kubernetes clusters cost, who used the money, and how to buy it for less.

The Celery app is imported here so that `@shared_task` binds to it whenever Django starts.
"""

from costapp.celery import app as celery_app

__all__ = ["celery_app"]
