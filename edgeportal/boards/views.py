"""The screen board page: open without a login, to whom its public setting or its token admits."""

import secrets

from django.contrib.auth.decorators import login_not_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.vary import vary_on_headers

from edgeportal.boards.models import Board
from edgeportal.boards.selectors import board_outputs


def _get_board_for_viewer(request, slug: str) -> tuple[Board, str]:
    """The board and the token its page carries on (empty for public boards and staff). A board is shown when
    it is public, to a URL with its token, or to a logged-in staff member; to anyone else it does not exist."""
    board = Board.objects.filter(slug=slug).first()
    if board is None:
        raise Http404
    if board.is_public:
        return board, ""
    token = request.GET.get("token", "")
    # As bytes: compare_digest refuses str with characters outside ASCII, and URLs may carry any.
    if token and secrets.compare_digest(token.encode(), board.token.encode()):
        return board, token
    if request.user.is_authenticated and request.user.is_staff:
        return board, ""
    raise Http404


@login_not_required  # screens have no session: the board's own setting or token admits them
@never_cache  # a screen must never show a stored page of outputs
@vary_on_headers("HX-Request")  # one URL, two bodies: the page and its fragment
def board_page(request, slug: str):
    board, token = _get_board_for_viewer(request, slug)
    context = {"board": board, "outputs": board_outputs(board=board), "token": token, "updated_at": timezone.now()}
    return render(request, "boards/board_outputs.html" if request.htmx else "boards/board.html", context)
