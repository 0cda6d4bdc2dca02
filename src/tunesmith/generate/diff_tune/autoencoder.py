"""The latent space: an encoder-decoder LM whose encoder outputs are the diffusion latents.

LD4LG (Lovelace et al. 2023) and DiffTune (Wang & Liu 2023, section 2) take BART: the encoder
maps an instruction to latents, a diffusion model learns their distribution, and the decoder
turns denoised latents back into text by beam search. LD4LG optionally compresses the encoder
states to a fixed number of latents with a Perceiver resampler and maps them back for the frozen
decoder. Offline no encoder-decoder ships in any package, so tunesmith trains a small
BART-architecture model (transformers' ``BartForConditionalGeneration``) from scratch on the
corpus, with a byte-level BPE tokenizer trained on the same text; a named pretrained BART folder
is used frozen, as in LD4LG.

Latents are standardised per dimension with statistics measured on the training set after the
autoencoder is trained, so the diffusion model sees unit-variance inputs and DiffTune's N(0, I)
and N(0, 10 I) noise are on the latents' own scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunesmith.generate.diff_tune.config import DiffTuneConfig

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # BART's ids 0..4
EXTRA = "autoencoder_extra.safetensors"


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (BART's special tokens and layout)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip


def new_bart(cfg: DiffTuneConfig, vocab_size: int) -> Any:
    """A randomly initialised BART of the config's size."""
    from transformers import BartConfig, BartForConditionalGeneration

    bart_cfg = BartConfig(
        vocab_size=vocab_size, d_model=cfg.ae_d_model, encoder_layers=cfg.ae_layers,
        decoder_layers=cfg.ae_layers, encoder_attention_heads=cfg.ae_heads,
        decoder_attention_heads=cfg.ae_heads, encoder_ffn_dim=cfg.ae_ffn,
        decoder_ffn_dim=cfg.ae_ffn, max_position_embeddings=cfg.max_length + 2,
        dropout=cfg.ae_dropout, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
        forced_eos_token_id=2,
    )  # fmt: skip
    return BartForConditionalGeneration(bart_cfg)


class Compressor(nn.Module):
    """LD4LG's Perceiver resampler: K learned queries read the encoder states -> (B, K, d_lat)."""

    def __init__(self, d_model: int, num_latents: int, latent_dim: int, layers: int, heads: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_latents, d_model) * 0.02)
        self.attn = nn.ModuleList(
            nn.MultiheadAttention(d_model, heads, batch_first=True) for _ in range(layers)
        )
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 4 * d_model), nn.GELU(),
                          nn.Linear(4 * d_model, d_model)) for _ in range(layers)
        )  # fmt: skip
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, latent_dim)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states (B, L, D), mask (B, L) bool -> latents (B, K, d_lat)."""
        q = self.queries.unsqueeze(0).expand(states.shape[0], -1, -1)  # (B, K, D)
        for attn, ffn in zip(self.attn, self.ffn, strict=True):
            # keys: the encoder states and the latents themselves (as LD4LG's resampler)
            kv = torch.cat([states, q], 1)
            pad = torch.cat([~mask, torch.zeros(q.shape[:2], dtype=torch.bool)], 1)
            q = q + attn(q, kv, kv, key_padding_mask=pad, need_weights=False)[0]
            q = q + ffn(q)
        return self.out(self.norm(q))


class Expander(nn.Module):
    """Maps K compressed latents back to decoder memory (B, K, D) (LD4LG's reconstruction net)."""

    def __init__(self, latent_dim: int, d_model: int, layers: int, heads: int) -> None:
        super().__init__()
        self.inp = nn.Linear(latent_dim, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0,
                                           batch_first=True, norm_first=True)  # fmt: skip
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.inp(z))


class LatentAutoencoder(nn.Module):
    """BART plus optional compression; ``encode`` gives standardised latents, ``generate`` text.

    Args:
        bart: a ``BartForConditionalGeneration``.
        num_latents: K > 0 compresses to K latents of ``latent_dim`` (LD4LG); 0 keeps one
            latent per token of width d_model (DiffTune's l x d).
    """

    latent_mean: torch.Tensor  # (d,) buffers: the latents' per-dimension statistics
    latent_std: torch.Tensor

    def __init__(self, bart: Any, num_latents: int = 0, latent_dim: int = 64, layers: int = 3):
        super().__init__()
        self.bart = bart
        d_model, heads = bart.config.d_model, bart.config.encoder_attention_heads
        self.num_latents = num_latents
        self.compressor = (
            Compressor(d_model, num_latents, latent_dim, layers, heads) if num_latents else None
        )
        self.expander = Expander(latent_dim, d_model, layers, heads) if num_latents else None
        self.latent_dim = latent_dim if num_latents else d_model
        self.register_buffer("latent_mean", torch.zeros(self.latent_dim))
        self.register_buffer("latent_std", torch.ones(self.latent_dim))

    def encode(self, ids: torch.Tensor, attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids, attn (B, L) -> standardised latents (B, L or K, d) and their mask (B, L or K)."""
        states = self.bart.get_encoder()(input_ids=ids, attention_mask=attn).last_hidden_state
        mask = attn.bool()
        if self.compressor is not None:
            states = self.compressor(states, mask)
            mask = torch.ones(states.shape[:2], dtype=torch.bool)
        return (states - self.latent_mean) / self.latent_std, mask

    def memory(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised latents (B, L, d) -> what the decoder cross-attends to (B, L, D)."""
        raw = z * self.latent_std + self.latent_mean
        return self.expander(raw) if self.expander is not None else raw

    def loss(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Reconstruction cross-entropy of the batch through the latents."""
        from transformers.modeling_outputs import BaseModelOutput

        z, mask = self.encode(ids, attn)
        labels = ids.masked_fill(attn == 0, -100)
        out = self.bart(
            encoder_outputs=BaseModelOutput(last_hidden_state=self.memory(z)),
            attention_mask=mask.long(), labels=labels,
        )  # fmt: skip
        return out.loss

    @torch.no_grad()
    def generate(self, z: torch.Tensor, mask: torch.Tensor, **decoding: Any) -> torch.Tensor:
        """Decode latents (B, L, d) with ``bart.generate`` (beam settings in ``decoding``)."""
        from transformers.modeling_outputs import BaseModelOutput

        mem = BaseModelOutput(last_hidden_state=self.memory(z))
        return self.bart.generate(encoder_outputs=mem, attention_mask=mask.long(), **decoding)

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Everything outside BART (compression nets, latent statistics) for safetensors."""
        return {
            k: v.contiguous() for k, v in self.state_dict().items() if not k.startswith("bart.")
        }

    def save(self, folder: Path, tokenizer: Any) -> None:
        from safetensors.torch import save_file

        self.bart.save_pretrained(folder / "autoencoder")
        tokenizer.save_pretrained(folder / "autoencoder")
        save_file(self.extra_state(), str(folder / EXTRA))


def load_autoencoder(folder: Path, cfg: DiffTuneConfig) -> tuple[LatentAutoencoder, Any]:
    """The trained autoencoder and its tokenizer from a DiffTune model folder."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BartForConditionalGeneration

    bart = BartForConditionalGeneration.from_pretrained(folder / "autoencoder")
    ae = LatentAutoencoder(bart, cfg.num_latents, cfg.latent_dim, cfg.compress_layers)
    ae.load_state_dict(load_file(str(folder / EXTRA)), strict=False)
    return ae.eval(), AutoTokenizer.from_pretrained(folder / "autoencoder")


def load_pretrained_bart(name: str) -> tuple[Any, Any]:
    """A user-named pretrained BART (local folder or hub id) and its tokenizer."""
    from transformers import AutoTokenizer, BartForConditionalGeneration

    return BartForConditionalGeneration.from_pretrained(name), AutoTokenizer.from_pretrained(name)
