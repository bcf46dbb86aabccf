"""The tokenizer side every engine shares: the chat template around a prompt, token counts, decoding and the
end-of-text ids, all from the model folder's own tokenizer. Engines that share it read the same tokens for
the same prompt, so lanes, limits and usage do not depend on which engine runs."""

from __future__ import annotations

from collections.abc import Sequence


class ChatTokens:
    """Mixed into an engine that sets self.tokenizer (a transformers tokenizer) and calls _tokens_ready."""

    tokenizer: object
    stop_ids: set[int]

    def _tokens_ready(self, tokenizer, generation_eos: object = None) -> None:
        self.tokenizer = tokenizer
        tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        # A row also ends at the generation config's end-of-text ids (several, for some models).
        configured = generation_eos if isinstance(generation_eos, list) else [generation_eos]
        self.stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id, *configured} - {None}

    def format_prompt(
        self, prompt: str, system_prompt: str | None = None, raw: bool = False, turns: Sequence[Sequence[str]] = ()
    ) -> str:
        """The text the model reads: the chat template around the conversation's earlier turns and the prompt,
        or the prompt itself when raw. A folder without a chat template reads the turns as plain lines."""
        if raw:
            return prompt
        if not self.tokenizer.chat_template:
            return "\n\n".join([*(text for _, text in turns), prompt]) if turns else prompt
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages += [{"role": role, "content": text} for role, text in turns]
        messages.append({"role": "user", "content": prompt})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def token_ids(
        self, prompt: str, system_prompt: str | None = None, raw: bool = False, turns: Sequence[Sequence[str]] = ()
    ) -> list[int]:
        text = self.format_prompt(prompt, system_prompt, raw, turns)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _item_tokens(self, text: str) -> list[int]:
        """A piece of text's token ids as the output would write it (the copy bias's items)."""
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def count_tokens(
        self, prompt: str, system_prompt: str | None = None, raw: bool = False, turns: Sequence[Sequence[str]] = ()
    ) -> int:
        return len(self.token_ids(prompt, system_prompt, raw, turns))

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of these generated tokens, as an output is made of them (before final_text)."""
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)
