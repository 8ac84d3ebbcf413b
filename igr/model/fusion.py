"""Garment fusion blocks: the attention processors that join GarmNet and the image encoder to the denoiser.

Self-attention reads the block's own tokens concatenated with GarmNet's tokens of the same block
(reference attention, low-level detail); cross-attention is decoupled as in IP-Adapter (Ye et al. 2023):
one branch to the learned prompt tokens, one to the image-encoder tokens, summed with a learnable scale.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


def attend(attn, hidden_states: torch.Tensor, context: torch.Tensor,
           to_k: nn.Module | None = None, to_v: nn.Module | None = None) -> torch.Tensor:
    """Multi-head attention of `hidden_states` (B, Lq, C) over `context` (B, Lk, Cc), before `to_out`."""
    b, lq, _ = hidden_states.shape
    q = attn.to_q(hidden_states)
    k = (to_k or attn.to_k)(context)
    v = (to_v or attn.to_v)(context)
    h = attn.heads
    q, k, v = (x.view(b, -1, h, x.shape[-1] // h).transpose(1, 2) for x in (q, k, v))   # (B, h, L, d)
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(b, lq, -1)                                      # (B, Lq, h·d)


def _finish(attn, out: torch.Tensor) -> torch.Tensor:
    out = attn.to_out[1](attn.to_out[0](out))
    return out / attn.rescale_output_factor


def _check_plain(attn) -> None:
    if attn.spatial_norm is not None or attn.group_norm is not None or attn.residual_connection or attn.norm_cross:
        raise NotImplementedError("garment fusion processors support plain transformer-block attention only")


class ReferenceBank:
    """GarmNet tokens per fusion block, alive for the duration of one forward and empty otherwise."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.tokens: dict[str, torch.Tensor] = {}

    @contextmanager
    def writing(self) -> Iterator[dict[str, torch.Tensor]]:
        """GarmNet's forward fills the yielded dict; the bank is empty again afterwards."""
        self._enter("write", {})
        written = self.tokens
        try:
            yield written
        finally:
            self._clear()

    @contextmanager
    def reading(self, tokens: dict[str, torch.Tensor]) -> Iterator[None]:
        """The denoiser's forward reads `tokens`; the bank is empty again afterwards."""
        self._enter("read", dict(tokens))
        try:
            yield
        finally:
            self._clear()

    def _enter(self, mode: str, tokens: dict[str, torch.Tensor]) -> None:
        if self.mode is not None:
            raise RuntimeError(f"reference bank is already {self.mode}ing: nested or concurrent forward")
        self.mode, self.tokens = mode, tokens

    def _clear(self) -> None:
        self.mode, self.tokens = None, {}

    def __len__(self) -> int:
        return len(self.tokens)


class ReferenceWriter:
    """GarmNet self-attention: plain self-attention that also stores its input tokens in the bank."""

    def __init__(self, bank: ReferenceBank, name: str) -> None:
        self.bank, self.name = bank, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        _check_plain(attn)
        if self.bank.mode != "write":
            raise RuntimeError("GarmNet attention ran outside ReferenceBank.writing()")
        self.bank.tokens[self.name] = hidden_states                      # (B, L, C)
        return _finish(attn, attend(attn, hidden_states, hidden_states))


class FusionSelfAttention:
    """Denoiser self-attention over [own tokens ‖ GarmNet tokens of the same block]."""

    def __init__(self, bank: ReferenceBank, name: str) -> None:
        self.bank, self.name = bank, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        _check_plain(attn)
        if self.bank.mode != "read":
            raise RuntimeError("denoiser attention ran outside ReferenceBank.reading(): pass GarmNet tokens")
        ref = self.bank.tokens.get(self.name)
        if ref is None:
            raise KeyError(f"no GarmNet tokens for fusion block {self.name}")
        if ref.shape[0] != hidden_states.shape[0] or ref.shape[-1] != hidden_states.shape[-1]:
            raise ValueError(f"GarmNet tokens for {self.name} have shape {tuple(ref.shape)}, "
                             f"the block's own tokens {tuple(hidden_states.shape)}")
        context = torch.cat([hidden_states, ref.to(hidden_states.dtype)], dim=1)   # (B, L + Lr, C)
        return _finish(attn, attend(attn, hidden_states, context))


class DecoupledCrossAttention(nn.Module):
    """IP-Adapter cross-attention: prompt branch + scale · image-token branch (own K/V projections)."""

    def __init__(self, cross_dim: int, inner_dim: int, prompt_tokens: int, scale: float = 1.0) -> None:
        super().__init__()
        self.prompt_tokens = prompt_tokens
        self.to_k_ip = nn.Linear(cross_dim, inner_dim, bias=False)
        self.to_v_ip = nn.Linear(cross_dim, inner_dim, bias=False)
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        _check_plain(attn)
        prompt = encoder_hidden_states[:, : self.prompt_tokens]         # (B, P, D)
        image = encoder_hidden_states[:, self.prompt_tokens:]           # (B, N, D)
        out = attend(attn, hidden_states, prompt)
        out = out + self.scale * attend(attn, hidden_states, image, self.to_k_ip, self.to_v_ip)
        return _finish(attn, out)


class PlainAttention:
    """Ordinary attention (GarmNet's cross-attention to its own prompt tokens)."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        _check_plain(attn)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        return _finish(attn, attend(attn, hidden_states, context))


def block_name(processor_key: str) -> str:
    """'down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor' -> '...attn1'."""
    return processor_key.removesuffix(".processor")


def bank_checkpointing(bank: ReferenceBank):
    """A gradient-checkpointing function for diffusers' `enable_gradient_checkpointing` on a UNet whose fusion
    processors use `bank`. Non-reentrant `torch.utils.checkpoint` recomputes a block during backward, when the
    bank is empty again; this puts back what the block saw in its forward: the tokens it read (denoiser), or a
    scratch dict to write into (GarmNet, whose tokens from the forward are the ones the denoiser used)."""
    from torch.utils.checkpoint import checkpoint

    def run(block, *args):
        mode, tokens = bank.mode, bank.tokens

        def call(*a):
            if bank.mode is not None or mode is None:          # the forward itself (or a block outside the bank)
                return block(*a)
            bank.mode, bank.tokens = mode, ({} if mode == "write" else tokens)
            try:
                return block(*a)
            finally:
                bank._clear()

        return checkpoint(call, *args, use_reentrant=False)

    return run
