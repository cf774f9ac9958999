"""Train headrace-tiny-chat from scratch on CPU.

Example (the shipped run)::

    python -m training.train --out models/headrace-tiny-chat

The run is deterministic for a given command line except for where a
``--time-budget`` cut-off lands.  The learning-rate schedule follows whichever
is further along, steps or wall time, so a slow machine still finishes with a
fully decayed learning rate inside the budget.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

# Sleeping (not spinning) OpenMP workers: when another process takes a core,
# spinning threads slow a 2-thread run down about five-fold.  Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM

from training import corpus, data, induction, wiring
from training import tokenizer as tokenizer_lib
from training.model import PAD_ID, ModelShape, build_model, save_checkpoint


def lr_at(progress: float, peak: float, warmup: float, floor: float, decay: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction of the run, constant ``peak``
    until the last ``decay`` fraction, then cosine decay to ``floor``.

    ``decay = 1 - warmup`` is the classic warm-up + cosine schedule; a shorter decay
    (warmup-stable-decay) keeps the learning rate high for longer, which helps the
    model leave the plateau before it learns to copy from the context.
    """
    if progress < warmup:
        return peak * progress / warmup
    start = 1.0 - decay
    if progress < start:
        return peak
    t = min(1.0, (progress - start) / decay)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def assistant_loss(
    model: LlamaForCausalLM, ids: torch.Tensor, labels: torch.Tensor, *, bf16: bool = False
) -> torch.Tensor:
    """The mean next-token cross-entropy over the labelled positions, as
    `model(input_ids=ids, labels=labels).loss` computes it, with the output layer run on
    those positions only (about a third of a batch: the assistant's tokens); `bf16` runs
    the model's matrix products in bfloat16 (autocast; the weights stay float32). Together
    1.6-1.8x faster steps than the full-vocabulary logits of every position in float32."""
    targets = labels[:, 1:]
    keep = targets != data.IGNORE_INDEX
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden = model.model(input_ids=ids).last_hidden_state[:, :-1][keep]
        logits = model.lm_head(hidden)
    return F.cross_entropy(logits.float(), targets[keep])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("models/headrace-tiny-chat"))
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path("training/runs/latest"),
        help="tokenizer and training log of this run",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--conversations", type=int, default=120_000)
    p.add_argument("--vocab-size", type=int, default=3070)
    p.add_argument("--max-len", type=int, default=512)
    p.add_argument("--batch-tokens", type=int, default=3072)
    p.add_argument("--max-steps", type=int, default=6000)
    p.add_argument("--time-budget", type=float, default=42.0, help="minutes")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=float, default=0.03, help="fraction of the run")
    p.add_argument(
        "--decay", type=float, default=0.97, help="fraction of the run with a decaying LR"
    )
    p.add_argument("--mix", choices=sorted(corpus.MIXES), default="balanced")
    p.add_argument(
        "--warm-mix",
        choices=sorted(corpus.MIXES),
        default=None,
        help="a curriculum: the first --warm-fraction of the run trains on this mix only",
    )
    p.add_argument("--warm-fraction", type=float, default=0.15)
    p.add_argument("--warm-conversations", type=int, default=40_000)
    p.add_argument(
        "--induction-steps",
        type=int,
        default=0,
        help="steps of synthetic copy batches (training/induction.py) before the corpus",
    )
    p.add_argument(
        "--induction-every", type=int, default=0, help="then one such batch every N steps"
    )
    p.add_argument(
        "--wire-induction",
        action="store_true",
        help="start with an induction circuit in the weights (training/wiring.py)",
    )
    p.add_argument(
        "--wire-skip",
        action="store_true",
        help="with --wire-induction: heads that match bigrams, and half the copy batches "
        "with a space after every token",
    )
    p.add_argument(
        "--wire-letters",
        action="store_true",
        help="with --wire-induction: the letters of lower-case pieces coded in the embedding",
    )
    p.add_argument(
        "--embedding-lr-scale",
        type=float,
        default=1.0,
        help="the (tied) embedding's learning rate, as a multiple of --lr",
    )
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--hidden-size", type=int, default=ModelShape.hidden_size)
    p.add_argument("--intermediate-size", type=int, default=ModelShape.intermediate_size)
    p.add_argument("--layers", type=int, default=ModelShape.num_layers)
    p.add_argument("--heads", type=int, default=ModelShape.num_heads)
    p.add_argument("--kv-heads", type=int, default=ModelShape.num_kv_heads)
    p.add_argument("--save-every", type=float, default=10.0, help="minutes between checkpoints")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--bf16", action="store_true", help="matrix products in bfloat16 (autocast on the CPU)"
    )
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    args.work_dir.mkdir(parents=True, exist_ok=True)

    # 1. Tokenizer, trained on the same seed's corpus.
    tok_dir = args.work_dir / "tokenizer"
    tok = tokenizer_lib.train_tokenizer(
        tokenizer_lib.training_texts(30_000, args.seed), args.vocab_size
    )
    tokenizer_lib.save(tok, tok_dir)
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))

    # 2. Corpus -> token ids with assistant-only labels -> length-bucketed batches.
    convs = list(corpus.generate(args.conversations, args.seed, "train", args.mix))
    examples = data.encode(tok, convs)
    batches = data.make_batches(examples, args.batch_tokens, args.max_len, args.seed, PAD_ID)
    warm: list[tuple[torch.Tensor, torch.Tensor]] = []
    if args.warm_mix is not None:
        warm_convs = corpus.generate(args.warm_conversations, args.seed + 1, "train", args.warm_mix)
        warm = data.make_batches(
            data.encode(tok, list(warm_convs)), args.batch_tokens, args.max_len, args.seed, PAD_ID
        )
    print(
        f"{len(convs)} conversations, {len(batches)} batches, "
        f"prepared in {time.time() - started:.0f}s",
        flush=True,
    )

    # 3. Model and optimiser (no weight decay on norms).
    shape = ModelShape(
        vocab_size=-(-tok.get_vocab_size() // 64) * 64,
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_layers=args.layers,
        num_heads=args.heads,
        num_kv_heads=args.kv_heads,
        rope_theta=wiring.ROPE_THETA if args.wire_induction else ModelShape.rope_theta,
    )
    model = build_model(shape, args.seed)
    if args.wire_induction:
        # Without --wire-letters (pieces None) the weights are run 12's exactly.
        pieces = (
            [tok.decode([i]) for i in range(tok.get_vocab_size())] if args.wire_letters else None
        )
        wiring.wire_induction(
            model, torch.Generator().manual_seed(args.seed), skip=args.wire_skip, pieces=pieces
        )
    params = sum(p.numel() for p in model.parameters())
    embedding = [p for n, p in model.named_parameters() if "embed_tokens" in n]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed_tokens" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optim = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay, "scale": 1.0},
            {"params": no_decay, "weight_decay": 0.0, "scale": 1.0},
            {
                "params": embedding,
                "weight_decay": args.weight_decay,
                "scale": args.embedding_lr_scale,
            },
        ],
        lr=args.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    print(f"model: {params:,} parameters", flush=True)

    # 4. Training loop.
    log_path = args.work_dir / "train_log.jsonl"
    log = log_path.open("w")
    budget = args.time_budget * 60.0
    train_start = last_save = time.time()
    tokens_seen = loss_tokens_seen = 0
    model.train()
    step = 0
    warm_steps = copy_steps = corpus_steps = 0
    copy_rng = torch.Generator().manual_seed(args.seed)
    vocab_high = tok.get_vocab_size()
    space = tok.token_to_id("Ġ")  # the byte-level alphabet's space
    while step < args.max_steps:
        elapsed = time.time() - train_start
        progress = max(step / args.max_steps, elapsed / budget)
        if progress >= 1.0:
            break
        if step < args.induction_steps or (
            args.induction_every and step % args.induction_every == 0
        ):
            spaced = args.wire_skip and copy_steps % 2 == 1  # half as many ids, same length
            ids, labels = induction.copy_batch(
                copy_rng, batch=32, low=3, high=vocab_high, min_len=4 if spaced else 8,
                max_len=20 if spaced else 40, separator=space if spaced else None,
            )  # fmt: skip
            copy_steps += 1
        elif warm and progress < args.warm_fraction:
            ids, labels = warm[warm_steps % len(warm)]
            warm_steps += 1
        else:
            ids, labels = batches[corpus_steps % len(batches)]
            corpus_steps += 1
        lr = lr_at(progress, args.lr, args.warmup, args.lr * 0.05, args.decay)
        for group in optim.param_groups:
            group["lr"] = lr * group["scale"]
        loss = assistant_loss(model, ids, labels, bf16=args.bf16)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        optim.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += ids.numel()
        loss_tokens_seen += int((labels[:, 1:] != data.IGNORE_INDEX).sum())
        record = {
            "step": step,
            "loss": round(loss.item(), 4),
            "lr": lr,
            "elapsed_s": round(time.time() - train_start, 1),
            "tokens": tokens_seen,
        }
        log.write(json.dumps(record) + "\n")
        if step % 25 == 0:
            log.flush()
            print(json.dumps(record), flush=True)
        if time.time() - last_save > args.save_every * 60:
            save_checkpoint(model, tok_dir, args.out)
            last_save = time.time()

    model.eval()
    save_checkpoint(model, tok_dir, args.out)
    summary = {
        "steps": step,
        "warm_steps": warm_steps,
        "copy_steps": copy_steps,
        "parameters": params,
        "tokens_seen": tokens_seen,
        "loss_tokens_seen": loss_tokens_seen,
        "train_wall_s": round(time.time() - train_start, 1),
        "total_wall_s": round(time.time() - started, 1),
        "final_loss": record["loss"] if step else None,
        "args": vars(args) | {"out": str(args.out), "work_dir": str(args.work_dir)},
    }
    (args.work_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
