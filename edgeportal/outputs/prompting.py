"""The prompt of one output's run: the request (or another output's text), the output's own instruction, and
what language and format it must have; a retry after a language mismatch says so more strongly."""

from __future__ import annotations

import json

from edgeportal.outputs.language import language_name
from edgeportal.prompts.output_spec import OutputSpec

MAX_INPUT_CHARS = 4000  # another output's text, as the input of this one: a runaway output stays a short prompt


def _directives(spec: OutputSpec, *, strong: bool) -> list[str]:
    language = language_name(spec.language)
    lines = []
    if spec.format == "json":
        lines.append(
            f"Answer with one JSON object only, in {language} where it holds text, matching this JSON Schema: "
            + json.dumps(spec.schema, ensure_ascii=False, separators=(",", ":"))
        )
    else:
        lines.append(f"Write the answer in {language}.")
    if strong:
        # The first answer came back in another language: say it first and last, where a small model listens.
        lines.insert(0, f"Important: the whole answer must be written in {language} only, in no other language.")
        lines.append(f"Answer in {language} only.")
    return lines


def run_prompt(spec: OutputSpec, *, request: str, input_text: str | None = None, strong: bool = False) -> str:
    """The prompt for this output: made from the request, or from input_text (the text of the output it is
    declared from)."""
    directives = _directives(spec, strong=strong)
    instruction = [spec.instruction] if spec.instruction else []
    if spec.from_request:
        return "\n\n".join([request, *instruction, *directives])
    text = (input_text or "")[:MAX_INPUT_CHARS]
    return "\n\n".join([*instruction, *directives, f"Text:\n{text}"])
