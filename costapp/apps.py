from django.apps import AppConfig


class CostappConfig(AppConfig):
    name = "costapp"
    default_auto_field = "django.db.models.BigAutoField"
