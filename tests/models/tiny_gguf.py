"""A tiny random llama-architecture GGUF, written at test time with the `gguf` package (no downloads).

Two transformer blocks of width 64 and a sentencepiece-style ("llama") vocabulary of a few thousand
pieces: special tokens, the 256 byte-fallback tokens, single characters, and every prefix of the
words in `WORDS` (llama.cpp's sentencepiece tokenizer merges adjacent pieces into a longer piece only
when the longer piece is in the vocabulary, so a word is reachable only through its prefixes).
Weights are seeded random numbers; the output rows of control, unknown and non-ASCII byte tokens are
zero, so a generation never ends early and stays ASCII text.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

WORDS = """
You judge turn-taking on a phone call bot answers the for its owner and takes message caller speaks
in short fragments with pauses between them Read transcript LAST line only has finished now so that
should answer COMPLETE or did they pause will go on WAIT period is not proof of an end list was
announced number being dictated ending hesitation goes question request thank-you goodbye Answer with
one word Caller Bot Hello Hi I'm calling about invoice Could you ask him to me back need tell three
things First delivery late Second price went up Mm-hm third we new date My four seven two um thing He
can reach at home tonight Thanks bye Buongiorno chiamo per la fattura e Può dirgli di richiamarmi
Devo tre cose Prima consegna in ritardo Secondo il prezzo aumentato terzo ci serve una nuova data Il
mio numero quattro sette due Allora ehm fatto che Mi trova casa stasera Grazie arrivederci Italian
are answering cannot come right Today time number name job missing ask Speak English Everything
write read aloud sentences lists symbols formatting Never make facts plans free know say pass cut off
interrupted heard words before says wants sell something them then END_CALL its own Rispondi
"""

_SPECIAL = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
_UNKNOWN, _CONTROL, _NORMAL, _BYTE = 2, 3, 1, 6


def _vocab() -> tuple[list[str], list[float], list[int]]:
    pieces: dict[str, int] = {}

    def add(piece: str, kind: int) -> None:
        pieces.setdefault(piece, kind)

    for i, piece in enumerate(_SPECIAL):
        add(piece, _UNKNOWN if i == 0 else _CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", _BYTE)
    for c in "▁" + "".join(chr(i) for i in range(0x21, 0x7F)) + "àèéìòù":
        add(c, _NORMAL)
    for word in sorted(set(re.findall(r"[\w'-]+", WORDS))):
        for start in ("▁", ""):
            piece = start + word
            for n in range(2, len(piece) + 1):
                add(piece[:n], _NORMAL)
    tokens = list(pieces)
    scores = [0.0 if pieces[t] != _NORMAL else float(len(t)) for t in tokens]
    return tokens, scores, [pieces[t] for t in tokens]


def write_tiny_llama(path: Path, *, chat_template: bool = True, seed: int = 0) -> Path:
    import gguf

    tokens, scores, types = _vocab()
    n_vocab, n_embd, n_head, n_head_kv, n_ff, n_blocks = len(tokens), 64, 4, 2, 128, 2
    head_dim = n_embd // n_head
    rng = np.random.default_rng(seed)

    def weight(rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
        w: np.ndarray = (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)
        return w

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("standin-tiny-test")
    writer.add_context_length(4096)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_blocks)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(4 if chat_template else 2)
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(True)
    if chat_template:
        writer.add_chat_template(CHATML)

    embeddings = rng.standard_normal((n_vocab, n_embd)).astype(np.float32)
    output = weight(n_vocab, n_embd, scale=8.0)
    silent = [i for i, (t, kind) in enumerate(zip(tokens, types, strict=True))
              if kind in (_UNKNOWN, _CONTROL) or (kind == _BYTE and int(t[3:5], 16) >= 0x80)]
    output[silent] = 0.0
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", output)
    for b in range(n_blocks):
        writer.add_tensor(f"blk.{b}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{b}.attn_q.weight", weight(n_embd, n_embd))
        writer.add_tensor(f"blk.{b}.attn_k.weight", weight(n_head_kv * head_dim, n_embd))
        writer.add_tensor(f"blk.{b}.attn_v.weight", weight(n_head_kv * head_dim, n_embd))
        writer.add_tensor(f"blk.{b}.attn_output.weight", weight(n_embd, n_embd))
        writer.add_tensor(f"blk.{b}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{b}.ffn_gate.weight", weight(n_ff, n_embd))
        writer.add_tensor(f"blk.{b}.ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(f"blk.{b}.ffn_down.weight", weight(n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
