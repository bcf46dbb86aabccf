"""Counting prompt tokens on the web side with the resident model's own tokenizer (no torch, no model)."""

import logging
from functools import cache

from tokenizers import Tokenizer

from edgeportal.core.queueing import model_catalog
from inference.model_files import ModelConfigError, tokenizer_file

log = logging.getLogger(__name__)


@cache
def _tokenizer(path: str) -> Tokenizer:
    return Tokenizer.from_file(path)


@cache
def _warn_no_tokenizer() -> None:
    log.warning("no tokenizer.json for the model yet: token limits apply once `manage.py prepare_model` has run")


def count_tokens(text: str, *, model: str | None = None) -> int | None:
    """Tokens of the prompt text (without the chat template) for a model (the default if None); None until
    the model has been prepared."""
    catalog = model_catalog()
    try:
        path = tokenizer_file(catalog.spec_of(model or catalog.default) or None)
    except ModelConfigError:
        return None
    if path is None:
        _warn_no_tokenizer()
        return None
    return len(_tokenizer(str(path)).encode(text, add_special_tokens=False).ids)
