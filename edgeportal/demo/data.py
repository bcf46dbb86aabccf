"""Demo data for a fresh installation: the two roles, two accounts, three templates, a board, one source."""

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction

from edgeportal.accounts.services import roles_ensure
from edgeportal.boards.models import Board
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.services import template_save
from edgeportal.sources.models import Source
from edgeportal.sources.services import source_create

DEMO_LOGINS = {"manager": "manager-demo-pass", "admin": "admin-demo-pass"}
DEMO_SOURCE = "line-a-camera"
DEMO_BOARD = "line-a"
DEMO_TEMPLATES = [
    {
        "slug": "defect-description",
        "title": "Defect description for QA",
        "description": "A camera found a defect: get a short description for the QA inspector, in their language.",
        "body": (
            "Camera {camera} detected {defect}. Write a short defect description for the QA inspector in {language}."
        ),
        "system_prompt": "You are a concise assistant on a factory floor.",
        "language": "en",
        "max_new_tokens": 48,
        "variables": [
            {"name": "camera", "max_length": 20, "help": "The camera that saw it.", "example": "C3"},
            {"name": "defect", "max_length": 120, "help": "What it saw, in a few words.", "example": "a scratch"},
            {"name": "language", "type": "choice", "choices": ["English", "Chinese", "Spanish", "German"]},
        ],
    },
    {
        "slug": "work-order-translation",
        "title": "Translate a work order",
        "description": "A work order for a team that reads another language.",
        "body": "Translate this work order into {language}: {work_order}",
        "system_prompt": "",
        "language": "en",
        "max_new_tokens": 64,
        "variables": [
            {"name": "language", "type": "choice", "choices": ["English", "Chinese", "Spanish", "German"]},
            {
                "name": "work_order",
                "label": "Work order",
                "max_length": 400,
                "example": "Replace the worn belt on conveyor 2 and check its tension.",
            },
        ],
    },
    {
        "slug": "inspection-steps",
        "title": "Inspection steps (best of three)",
        "description": "A machine reports a fault: inspection steps for the technician. Three answers are made in "
        "one batch and the CPU reranker keeps the one that names the machine, in English, without loops.",
        "body": "{machine} reports {fault}. Give inspection steps for the technician in English.",
        "system_prompt": "You are a concise assistant on a factory floor.",
        "language": "en",
        "max_new_tokens": 64,
        "candidates": 3,
        "variables": [
            {"name": "machine", "max_length": 40, "help": "The machine and its id.", "example": "Press line PLC P3"},
            {"name": "fault", "max_length": 120, "example": "current fluctuation"},
        ],
    },
    {
        "slug": "line-incident",
        "title": "Line incident: ticket, MES and screen",
        "description": "One event, three consumers: a Chinese quality ticket, an English MES record (JSON) and a "
        "short notice for the line screen.",
        "body": "Line {line} reports: {event}. Describe the incident and the first action to take.",
        "system_prompt": "You are a concise assistant on a factory floor.",
        "language": "en",
        "max_new_tokens": 64,
        "variables": [
            {"name": "line", "max_length": 20, "help": "The line or machine.", "example": "P3"},
            {"name": "event", "max_length": 200, "example": "current fluctuation on the main motor"},
        ],
        "outputs": [
            {"name": "ticket", "language": "zh", "instruction": "Write a short summary for the quality ticket."},
            {
                "name": "mes",
                "language": "en",
                "format": "json",
                "from": "ticket",
                "instruction": "Record the incident for the MES.",
                "schema": {
                    "type": "object",
                    "properties": {
                        "line": {"type": "string", "maxLength": 20},
                        "summary": {"type": "string", "maxLength": 200},
                        "severity": {"type": "integer", "minimum": 1, "maximum": 5},
                    },
                    "required": ["line", "summary", "severity"],
                },
            },
            {
                "name": "screen",
                "language": "en",
                "instruction": "Write one short line for the line's screen.",
                "max_new_tokens": 24,
                "on_mismatch": "deliver",
            },
        ],
    },
]


@dataclass
class DemoData:
    created: bool  # False: the database had accounts already, and nothing was changed
    token: str | None = None  # the demo source's token, only when it was just created


@transaction.atomic
def demo_data_load() -> DemoData:
    """Demo data for a fresh installation, loaded once: only into a database without any user account.

    Later calls change nothing (so a password an admin changed, or a demo account an admin deleted, stays as
    it is, and the demo source keeps its token) beyond keeping the roles' permissions complete. The source's
    token is returned only when it is created (only its hash is stored).
    """
    managers, admins = roles_ensure()
    if User.objects.exists():
        return DemoData(created=False)
    manager = User.objects.create_user("manager", password=DEMO_LOGINS["manager"])
    manager.groups.add(managers)
    admin = User.objects.create_user("admin", password=DEMO_LOGINS["admin"], is_staff=True, is_superuser=True)
    admin.groups.add(admins)
    for fields in DEMO_TEMPLATES:
        if not PromptTemplate.objects.filter(slug=fields["slug"]).exists():
            template_save(template=PromptTemplate(**fields), user=admin)
    if not Board.objects.filter(slug=DEMO_BOARD).exists():  # the line-incident template's screen output
        Board.objects.create(slug=DEMO_BOARD, name="Line A", output_names=["screen"], is_public=True)
    if Source.objects.filter(name=DEMO_SOURCE).exists():
        return DemoData(created=True)
    _, token = source_create(name=DEMO_SOURCE, kind=Source.Kind.CAMERA)
    return DemoData(created=True, token=token)
