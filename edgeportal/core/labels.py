"""How the pages name the core's values and reasons (the core sends them in English or as codes, for
machines): lanes, worker states, and reasons with values (inference.planning.Why)."""

from __future__ import annotations

import json

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

LANE_LABELS = {"short": _("short"), "long": _("long")}
WORKER_STATES = {"busy": _("busy"), "idle": _("idle"), "gone": _("gone")}


def state_label(state: str) -> str:
    """A worker's state as it publishes it (busy, idle; gone when its heartbeat stopped), named."""
    return str(WORKER_STATES.get(state, state))


def lanes_label(lanes: str) -> str:
    """A worker's lanes as it publishes them ("short,long"), named in the page's language."""
    return ", ".join(str(LANE_LABELS.get(lane, lane)) for lane in lanes.split(",") if lane)


def why_label(published: str, english: str = "") -> str:
    """A reason published as JSON [text, params] (Why), translated; the English one where none was."""
    try:
        text, params = json.loads(published)
        return gettext(text) % params if params else gettext(text)
    except (ValueError, TypeError, KeyError):  # an older worker's heartbeat, or a damaged one
        return english
