"""What a board shows: the latest deliverable outputs of its names, templates and sources."""

from django.db.models import F, Q

from edgeportal.boards.models import Board
from edgeportal.outputs.models import JobOutput

# JobOutput.deliverable as a query: done, or in another language than asked where its declaration says to
# deliver it anyway (tests/boards keeps the two in step).
DELIVERABLE = Q(status=JobOutput.Status.DONE) | Q(
    status=JobOutput.Status.LANGUAGE_MISMATCH, spec__on_mismatch="deliver"
)


def board_outputs(*, board: Board) -> list[JobOutput]:
    """The board's latest `how_many` deliverable outputs whose name it shows, newest first by finished_at.
    Outputs of jobs from its templates and its sources only, where it names some (none named: all)."""
    outputs = JobOutput.objects.filter(DELIVERABLE, name__in=board.output_names)
    template_ids = list(board.templates.values_list("pk", flat=True))
    if template_ids:
        outputs = outputs.filter(job__template__in=template_ids)
    source_ids = list(board.sources.values_list("pk", flat=True))
    if source_ids:
        outputs = outputs.filter(job__source__in=source_ids)
    ordered = outputs.select_related("job__template").order_by(F("finished_at").desc(nulls_last=True), "-pk")
    return list(ordered[: board.how_many])
