"""A KV cache that grows in room, not token by token.

transformers' DynamicCache appends each step's keys and values with torch.cat, which copies the whole cache of
every layer at every step: for 4 rows of 1568 tokens, about 90 MB a step on the default model. This one writes
each step into spare room and hands the model a view of the filled part, so a step copies only its own tokens:
a long-lane decoding step took 0.85 to 0.9 of the time, short prompts the same (BENCHMARKS.md, KV cache). The model
reads the same values, so outputs are the same as with DynamicCache (a test compares them)."""

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

# Room made past what a step needs, once it needs more than `tokens`: at least this many tokens, or an eighth of
# what it holds, so a long answer grows its cache a few times, and the room never exceeds DynamicCache's by more.
GROWTH_TOKENS = 64


class GrowingLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views into larger buffers. `tokens`: the room made at the first
    step (the batch's padded prompt and its first new tokens, see room_for); past it, the room grows by
    GROWTH_TOKENS or an eighth."""

    def __init__(self, tokens: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.tokens = tokens
        self._room: tuple[torch.Tensor, torch.Tensor] | None = None
        self._keys_view: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.keys is not self._keys_view:
            self._adopt()  # first use, a crop, or code that put tensors of its own there (offloading)
        filled = self.get_seq_length()
        needed = filled + key_states.shape[-2]
        if self._room is None or needed > self._room[0].shape[-2]:
            self._grow(key_states, value_states, filled, needed)
        keys_room, values_room = self._room
        keys_room[..., filled:needed, :] = key_states
        values_room[..., filled:needed, :] = value_states
        self.keys, self.values = keys_room[..., :needed, :], values_room[..., :needed, :]
        self._keys_view = self.keys
        return self.keys, self.values

    def _adopt(self) -> None:
        """Take keys and values as set by DynamicLayer's own methods as the filled part, letting go of the room."""
        self._room, self._keys_view = None, None

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, filled: int, needed: int) -> None:
        capacity = self.tokens if needed <= self.tokens else needed + max(GROWTH_TOKENS, needed // 8)
        rooms = []
        for new, held in ((key_states, self.keys), (value_states, self.values)):
            room = new.new_empty((*new.shape[:-2], capacity, new.shape[-1]))
            if filled:
                room[..., :filled, :] = held
            rooms.append(room)
        self._room = (rooms[0], rooms[1])

    def reset(self) -> None:
        super().reset()
        self._adopt()

    # DynamicLayer's own methods put new tensors in keys and values: the room is let go of at once, not at the
    # next step, so it is not held beside them.
    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        self._adopt()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self._adopt()

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self._adopt()


class GrowingCache(DynamicCache):
    """A DynamicCache of GrowingLayers, for a model whose layers all attend to the whole sequence (models with
    sliding-window or other special layers keep DynamicCache: see `growing_cache`)."""

    def __init__(self, num_layers: int, tokens: int = 0):
        Cache.__init__(self, layers=[GrowingLayer(tokens) for _ in range(num_layers)])


def room_for(prompt_tokens: int, new_tokens: int) -> int:
    """The room a batch's cache makes at its first step: its padded prompt and up to GROWTH_TOKENS new tokens.
    A batch allowed 1024 new tokens whose rows end after 40 does not hold room for 1024."""
    return prompt_tokens + min(new_tokens, GROWTH_TOKENS)


def growing_cache(config, tokens: int) -> DynamicCache:
    """The cache for a batch of this model, with room for `tokens` at its first step (room_for): a GrowingCache
    where every layer is a plain full-attention one, else the DynamicCache transformers would make."""
    cache = DynamicCache(config=config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        return GrowingCache(len(cache.layers), tokens)
    return cache
