"""The seeded training epoch the training scripts in ``experiments/`` share (torch; imported only by them)."""

from __future__ import annotations

import torch
from tqdm import tqdm


def train_epoch(model, x, y, optimizer, scheduler, loss_fn, batch_size: int, augment, gen: torch.Generator,
                desc: str) -> tuple[float, float]:
    """One pass over ``(x, y)`` in an order drawn from ``gen``, each batch through ``augment(batch)`` (which may
    draw from ``gen`` too), the scheduler stepped per batch: the mean loss and the training accuracy.

    The draws from ``gen`` come in a fixed order (the permutation, then each batch's augmentation), so a seed
    gives the same model on any machine with the same versions."""
    model.train()
    perm = torch.randperm(len(x), generator=gen)
    steps = (len(x) + batch_size - 1) // batch_size
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(range(steps), desc=desc, leave=False, mininterval=1.0,
               disable=None)  # disable=None: no bar when stdout is not a terminal
    for step in bar:
        idx = perm[step * batch_size : (step + 1) * batch_size]
        logits = model(augment(x[idx]))
        loss = loss_fn(logits, y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(idx)
        correct += int((logits.argmax(1) == y[idx]).sum())
        seen += len(idx)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{total_loss / seen:.4f}")
    bar.close()
    return total_loss / seen, correct / seen
