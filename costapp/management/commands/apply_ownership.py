"""Apply ownership rules from a YAML file kept in git (schema: costapp.ownership.RULESET_SCHEMA).

    python manage.py apply_ownership ownership.yaml [--dry-run] [--recompute none|all|since:DATE]

An invalid file is rejected with every error's line and reason, and nothing is applied.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from costapp import ownership_rules
from costapp.ownership import RULESET_SCHEMA, RulesetError, parse_ruleset


class Command(BaseCommand):
    help = "Apply ownership rules (keys, default team, teams, namespace table) from a YAML file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="the rule-set YAML file")
        parser.add_argument("--dry-run", action="store_true", help="print the diff, apply nothing")
        parser.add_argument(
            "--recompute", default="none",
            help="re-run allocated days with the new rules: none (keep history), all, "
                 "or since:YYYY-MM-DD",
        )
        parser.add_argument("--schema", action="store_true", help="print an example file")

    def handle(self, *args, **opts) -> None:
        if opts["schema"]:
            self.stdout.write(RULESET_SCHEMA)
            return
        path = Path(opts["file"])
        try:
            ownership_rules.parse_recompute(opts["recompute"])
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        try:
            rs = parse_ruleset(text, source=str(path))
            result = ownership_rules.apply_ruleset(
                rs, source=str(path), dry_run=opts["dry_run"], recompute=opts["recompute"]
            )
        except RulesetError as exc:
            raise CommandError(f"{path}: rejected, nothing applied\n{exc}") from None
        if not result.diff:
            self.stdout.write("no changes")
            return
        for line in result.diff:
            self.stdout.write(line)
        if result.dry_run:
            self.stdout.write(f"dry run: {len(result.diff)} change(s), nothing applied")
            return
        job = result.change.job if result.change else None
        self.stdout.write(self.style.SUCCESS(
            f"applied {len(result.diff)} change(s); {result.days_marked} cluster-day(s) to "
            f"recompute" + (f" (job #{job.pk})" if job else "")
        ))
