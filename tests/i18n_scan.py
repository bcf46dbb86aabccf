"""Finds text shown to people that is not marked for translation: in templates (text, and the title,
placeholder, aria-label and alt attributes) and in the Python of the web apps (labels, help texts, choices,
validation errors, messages, the entry's refusals). Used by tests/test_translations.py and `make messages`."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from django.template.base import Lexer, TokenType

ROOT = Path(__file__).resolve().parent.parent
# Words that stay as they are in every language: the product's name, units, formats and protocol names.
KEEP = {
    "EdgePortal", "ms", "s", "CSV", "API", "JSON", "YAML", "SVG", "htmx", "p50", "p95", "p99", "HTTP", "OpenAI",
    "Prometheus", "SSE", "ID", "id", "UTC", "GET", "POST", "URL", "Redis", "LLM", "KV", "x",
}  # fmt: skip
VISIBLE_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")
PLACEHOLDER = "\x01"  # stands for a variable or a translated piece: no letters


@dataclass(frozen=True)
class Unmarked:
    where: str
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text!r}"


def words(text: str) -> list[str]:
    text = re.sub(r"&[#\w]+;", " ", text)
    return [word for word in re.findall(r"[A-Za-z][A-Za-z0-9'’]*", text) if word not in KEEP]


def _template_skeleton(source: str) -> str:
    """The template with every variable and translated piece replaced by PLACEHOLDER, comments dropped."""
    parts, skipping = [], None
    for token in Lexer(source).tokenize():
        content = token.contents
        if skipping:
            if token.token_type == TokenType.BLOCK and content.split()[0] == skipping:
                skipping = None
            continue
        if token.token_type == TokenType.TEXT:
            parts.append(content)
        elif token.token_type == TokenType.VAR:
            parts.append(PLACEHOLDER)
        elif token.token_type == TokenType.BLOCK:
            name = content.split()[0]
            if name in ("blocktranslate", "blocktrans"):
                skipping = "end" + name
                parts.append(PLACEHOLDER)
            elif name == "comment":
                skipping = "endcomment"
            else:
                parts.append(PLACEHOLDER)
    return "".join(parts)


def template_unmarked(source: str, where: str) -> list[Unmarked]:
    html = _template_skeleton(source)
    # Scripts and styles, and code (setting names, commands, model output) stay as they are.
    html = re.sub(r"<(script|style|code|kbd|pre)\b.*?</\1>", " ", html, flags=re.S | re.I)
    html = re.sub(r"<!--.*?-->", " ", html, flags=re.S)
    found = []
    for tag in re.findall(r"<[^>]*>", html):
        for name in VISIBLE_ATTRIBUTES:
            for value in re.findall(rf'\s{name}="([^"]*)"', tag):
                if words(value):
                    found.append(Unmarked(where, f"{name}={value}"))
    for text in re.split(r"<[^>]*>", html):
        if words(text):
            found.append(Unmarked(where, " ".join(text.replace(PLACEHOLDER, " ").split())))
    return found


def templates_unmarked() -> list[Unmarked]:
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        found += template_unmarked(path.read_text(), str(path.relative_to(ROOT)))
    return found


# --- Python ---------------------------------------------------------------------------------------------

SHOWN_KEYWORDS = {
    "label", "help_text", "verbose_name", "verbose_name_plural", "empty_label", "description", "title", "y_label",
    "preview_error", "note",
}  # fmt: skip
# Calls whose first text argument people read: (the callable's last name, the argument's position).
SHOWN_CALLS = {
    "ValidationError": 0, "add_error": 1, "success": 1, "info": 1, "warning": 1, "error": 1, "JobRejected": 0,
    "Series": 0, "GuardRejected": 1, "Refusal": 1, "PermissionDenied": 0, "Http404": 0, "role_required": 1,
}  # fmt: skip
# Not shown to people: machine interfaces (English by design), commands, the worker side, migrations.
PYTHON_SKIP = ("migrations", "management", "openai_api", "api.py", "metrics.py", "settings.py", "celery.py")


def _is_plain_text(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(words(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(_is_plain_text(part) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _is_plain_text(node.left)
    return False


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _choice_labels(node: ast.AST):
    """Second items of (value, label) pairs in a list or tuple literal."""
    if isinstance(node, (ast.List, ast.Tuple)):
        for item in node.elts:
            if isinstance(item, ast.Tuple) and len(item.elts) == 2:
                yield item.elts[1]


def python_unmarked(source: str, where: str) -> list[Unmarked]:
    found = []

    def flag(node: ast.AST) -> None:
        if _is_plain_text(node):
            found.append(Unmarked(f"{where}:{node.lineno}", ast.unparse(node)[:80]))

    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and where.endswith("forms.py"):
            for statement in node.body:  # a form field without a label shows its attribute name, in English
                call = statement.value if isinstance(statement, ast.Assign) else None
                if (
                    isinstance(call, ast.Call)
                    and _call_name(call).endswith("Field")
                    and not any(keyword.arg == "label" for keyword in call.keywords)
                ):
                    name = statement.targets[0].id if isinstance(statement.targets[0], ast.Name) else "?"
                    found.append(Unmarked(f"{where}:{statement.lineno}", f"{name}: a field without a label"))
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in SHOWN_KEYWORDS:
                    flag(keyword.value)
                elif keyword.arg == "choices":
                    for label in _choice_labels(keyword.value):
                        flag(label)
            position = SHOWN_CALLS.get(_call_name(node))
            if position is not None and len(node.args) > position:
                flag(node.args[position])
        elif isinstance(node, ast.Assign):
            names = [target.id for target in node.targets if isinstance(target, ast.Name)]
            if any(name.endswith("_CHOICES") for name in names):
                for label in _choice_labels(node.value):
                    flag(label)
            if any(name.endswith(("_LABELS", "_STATES")) for name in names) and isinstance(node.value, ast.Dict):
                for label in node.value.values:
                    flag(label)
    return found


def python_files() -> list[Path]:
    return [
        path
        for path in sorted((ROOT / "edgeportal").rglob("*.py"))
        if not any(part in PYTHON_SKIP for part in path.relative_to(ROOT).parts)
    ]


def python_unmarked_all() -> list[Unmarked]:
    found = []
    for path in python_files():
        found += python_unmarked(path.read_text(), str(path.relative_to(ROOT)))
    return found


if __name__ == "__main__":
    for item in templates_unmarked() + python_unmarked_all():
        print(item)
