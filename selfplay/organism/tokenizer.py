"""A character-level tokenizer with the completion tags as single tokens.

Built with `tokenizers` and wrapped in `PreTrainedTokenizerFast`, so it saves and reloads
through `AutoTokenizer` like any hub tokenizer. The format tags (`<think>`, `<answer>`,
`<ask>` and their closers) are added tokens but not special ones: decoding with
`skip_special_tokens=True`, as TRL does, keeps them in the text the parser reads.
"""

from __future__ import annotations

import string

from envs.format import TAGS

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<|end|>", "<unk>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
CONTROL = [PAD, BOS, EOS, UNK, USER, ASSISTANT]
CHARS = sorted(set(string.printable) - set("\t\r\x0b\x0c"))

# One document per conversation: <bos><|user|>prompt<|assistant|>completion<|end|>
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ message['content'] }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def build_tokenizer():
    """A fresh `PreTrainedTokenizerFast` over printable ASCII plus control and tag tokens."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(CONTROL + list(TAGS) + CHARS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in CONTROL])
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=1024,
    )
