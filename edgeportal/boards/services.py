"""Board writes: a board's token renewed."""

from edgeportal.boards.models import Board, board_token


def board_token_renew(*, board: Board) -> str:
    """A new token for the board; screens opened with the old one stop updating at once (their next poll 404s)."""
    board.token = board_token()
    board.save(update_fields=["token"])
    return board.token
