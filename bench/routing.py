"""Template routing benchmark: the free-prompt form's suggestion on a labelled set, without a database.

Run with `make bench-routing` (`.venv/bin/python bench/routing.py`; no Redis, no model, under a second). It
routes each prompt of `bench/routing_set.jsonl` (what a manager might type, in zh, en, es and de, with the slug
of the demo template it should go to, or null where none fits) over the demo templates as
edgeportal/demo/data.py defines them, and prints, per language and in all:

- top-1: the share of rows with a template whose first suggestion is that template;
- none kept: the share of null rows left without any suggestion;
- the same two figures at other thresholds than edgeportal.prompts.routing.MIN_SCORE, to show the trade-off;
- each row routed wrongly, with the scores, to read beside the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUTING_SET = ROOT / "bench" / "routing_set.jsonl"
LANGUAGES = ("zh", "en", "es", "de")
SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3)


def demo_templates() -> list:
    """The demo templates, unsaved: routing reads only their fields, so no database is needed."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgeportal.settings")
    import django

    django.setup()
    from edgeportal.demo.data import DEMO_TEMPLATES
    from edgeportal.prompts.models import PromptTemplate

    return [PromptTemplate(**fields) for fields in DEMO_TEMPLATES]


def routed(rows: list[dict], templates: list, min_score: float) -> list[tuple[dict, list]]:
    from edgeportal.prompts.routing import template_suggestions

    return [(row, template_suggestions(row["prompt"], templates, limit=2, min_score=min_score)) for row in rows]


def figures(results: list[tuple[dict, list]]) -> tuple[str, str]:
    """Top-1 accuracy and the share of null rows left alone, each as "share (right/rows)"."""
    routes = [(row, suggestions) for row, suggestions in results if row["template"]]
    nones = [(row, suggestions) for row, suggestions in results if not row["template"]]
    top1 = sum(1 for row, suggestions in routes if suggestions and suggestions[0].template.slug == row["template"])
    kept = sum(1 for _, suggestions in nones if not suggestions)

    def share(right: int, total: int) -> str:
        return f"{right / total:.2f} ({right}/{total})" if total else "-"

    return share(top1, len(routes)), share(kept, len(nones))


def main() -> None:
    from edgeportal.prompts.routing import MIN_SCORE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=ROUTING_SET, help="a JSON-lines file of labelled prompts")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.set.read_text().splitlines() if line.strip()]
    templates = demo_templates()
    results = routed(rows, templates, MIN_SCORE)

    print(f"{len(rows)} prompts, {len(templates)} demo templates, threshold {MIN_SCORE}\n")
    print(f"{'language':<10}{'top-1':<16}none kept")
    for language in (*LANGUAGES, "all"):
        subset = [result for result in results if language == "all" or result[0]["language"] == language]
        top1, kept = figures(subset)
        print(f"{language:<10}{top1:<16}{kept}")

    print(f"\n{'threshold':<10}{'top-1':<16}none kept")
    for min_score in SWEEP:
        top1, kept = figures(routed(rows, templates, min_score))
        print(f"{min_score:<10}{top1:<16}{kept}")

    print("\nrouted wrongly:")
    for row, suggestions in results:
        first = suggestions[0].template.slug if suggestions else None
        if first != row["template"]:
            scores = ", ".join(f"{s.template.slug} {s.score:.2f}" for s in suggestions) or "no suggestion"
            print(f"  [{row['language']}] {row['prompt'][:60]!r}: want {row['template']}, got {scores}")


if __name__ == "__main__":
    main()
