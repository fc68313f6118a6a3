"""The training loop: ``fit`` (progress bar, checkpoints, resume) and ``evaluate``.

    history = tn.fit(model, train_loader, F.cross_entropy, opt, epochs=10,
                     val_loader=val_loader, checkpoint="run.npz")

With ``checkpoint``, fit writes the whole training state (model, optimizer, scheduler,
finished epochs, history, tinynet's random generator) with ``tn.save`` before the first
epoch and after every epoch.  ``tn.save`` is atomic, so a crash or Ctrl-C never leaves a
half-written file: the last finished epoch survives.  Running the same call again resumes
from it.  When the loader's order is repeatable (``DataLoader(..., seed=s)``, or shuffling
after ``tn.manual_seed``), the resumed run ends with bit-identical weights and history.
(Only NumPy's generator is saved: dropout on the GPU draws from CuPy's, so a GPU run with
dropout resumes correctly but not bit for bit.)

On Ctrl-C (KeyboardInterrupt) fit prints how to resume and re-raises the interrupt, so a
script stops as it would anywhere else.
"""
import math
import os
import sys

from . import backend
from . import random as tn_random
from .autograd import Tensor, no_grad, tensor
from .io import load, save
from .nn.module import Module
from .optim import LRScheduler, OneCycleLR, Optimizer, ReduceLROnPlateau

FORMAT = "tinynet.fit checkpoint 1"      # marks files fit wrote (and may resume from)


def _say(message):
    print(message, file=sys.stderr)


def _batch(batch, index, device):
    """(inputs, labels) of one batch as Tensors on ``device``, checked."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        what = f"a {len(batch)}-tuple" if isinstance(batch, (tuple, list)) else type(batch).__name__
        raise TypeError(f"the loader must yield (inputs, labels) pairs; batch {index} is {what}")
    inputs, labels = (b if isinstance(b, Tensor) else tensor(b) for b in batch)
    if inputs.ndim == 0 or labels.ndim == 0 or len(inputs) != len(labels):
        raise ValueError(f"batch {index}: inputs of shape {inputs.shape} and labels of shape "
                         f"{labels.shape} need the same first dimension (one label per example)")
    if device is not None:
        inputs, labels = inputs.to(device), labels.to(device)
    return inputs, labels


def _check_iterable(loader, name):
    if not hasattr(loader, "__iter__"):
        raise TypeError(f"{name} must be iterable (e.g. a tinynet.data.DataLoader), "
                        f"got {type(loader).__name__}")


def evaluate(model, loader, loss_fn=None, device=None):
    """{'loss', 'accuracy'} of ``model`` over ``loader``, in eval mode and under no_grad.

    loss      mean of loss_fn over all examples (each batch weighted by its size, so
              loss_fn should average within a batch, reduction='mean'); None without loss_fn
    accuracy  fraction of examples whose largest output is their label, for (N, C)
              outputs and integer labels (N,); None for other outputs (e.g. regression)
    The model's training/eval mode is restored afterwards."""
    if not isinstance(model, Module):
        raise TypeError(f"evaluate: model must be an nn.Module, got {type(model).__name__}")
    _check_iterable(loader, "evaluate: loader")
    device = None if device is None else backend.check_device(device)
    was_training, count, loss_sum, correct, classify = model.training, 0, 0.0, 0, True
    model.eval()
    try:
        with no_grad():
            for i, batch in enumerate(loader):
                inputs, labels = _batch(batch, i, device)
                outputs = model(inputs)
                if loss_fn is not None:
                    loss_sum += float(loss_fn(outputs, labels).item()) * len(labels)
                classify = classify and (outputs.ndim == 2 and labels.ndim == 1
                                         and labels.dtype.kind in "iu")
                if classify:
                    correct += int((outputs.data.argmax(axis=1) == labels.data).sum())
                count += len(labels)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    return {"loss": loss_sum / count if loss_fn is not None else None,
            "accuracy": correct / count if classify else None}


def _save_checkpoint(path, model, optimizer, scheduler, epoch, history):
    save({"format": FORMAT, "epoch": epoch, "history": history,
          "model": model.state_dict(), "optimizer": optimizer.state_dict(),
          "scheduler": None if scheduler is None else scheduler.state_dict(),
          "rng": tn_random.get_generator().bit_generator.state}, path)


def _resume(path, model, optimizer, scheduler):
    """Restore everything from the checkpoint at ``path``; (finished epochs, history)."""
    advice = "It was left as it is: delete it to start over, or pass another checkpoint path."
    try:
        state = load(path)
    except (ValueError, OSError) as exc:      # truncated or corrupt: never restart silently
        raise ValueError(f"fit: cannot resume from checkpoint '{path}': {exc}\n{advice}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"fit: '{path}' exists but is not a checkpoint written by fit. {advice}")
    if (state["scheduler"] is None) != (scheduler is None):
        has = "has no" if state["scheduler"] is None else "has a"
        raise ValueError(f"fit: checkpoint '{path}' {has} scheduler state, but this call "
                         f"{'passes' if scheduler is not None else 'does not pass'} a scheduler")
    before = model.state_dict()
    try:                                      # both check everything before writing
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        model.load_state_dict(before)         # all or nothing
        raise ValueError(f"fit: checkpoint '{path}' does not match this model and "
                         f"optimizer: {exc}") from exc
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    tn_random.get_generator().bit_generator.state = state["rng"]
    return int(state["epoch"]), state["history"]


def _train_epoch(model, loader, loss_fn, optimizer, batch_scheduler, device, bar, epoch):
    """One pass over ``loader``, updating the weights; the mean loss per example."""
    model.train()
    count, loss_sum = 0, 0.0
    for i, batch in enumerate(loader):
        inputs, labels = _batch(batch, i, device)
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), labels)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError("fit: loss_fn must return a scalar Tensor (reduction='mean'), "
                             f"got {getattr(loss, 'shape', type(loss).__name__)}")
        value = loss.item()
        if not math.isfinite(value):            # stop before nan spreads into the weights
            raise FloatingPointError(f"fit: the loss is {value} in epoch {epoch}, batch {i}; "
                                     "stopped before updating the weights")
        loss.backward()
        optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()
        count, loss_sum = count + len(labels), loss_sum + value * len(labels)
        bar.update()
        bar.set_postfix(loss=f"{loss_sum / count:.4f}", refresh=False)
    if count == 0:
        raise ValueError("fit: the loader yielded no batches")
    return loss_sum / count


def _check_fit_args(model, loader, loss_fn, optimizer, epochs, scheduler, val_loader,
                    checkpoint, on_epoch_end):
    if not isinstance(model, Module):
        raise TypeError(f"fit: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError("fit: optimizer must be a tinynet.optim Optimizer, got "
                        f"{type(optimizer).__name__}")
    if scheduler is not None and not isinstance(scheduler, LRScheduler):
        raise TypeError("fit: scheduler must be an optim LRScheduler or None, got "
                        f"{type(scheduler).__name__}")
    if isinstance(scheduler, ReduceLROnPlateau) and val_loader is None:
        raise ValueError("fit: a ReduceLROnPlateau scheduler steps on the validation loss; "
                         "pass val_loader")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be an int >= 1, got {epochs!r}")
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable (e.g. F.cross_entropy), got {loss_fn!r}")
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise TypeError(f"fit: on_epoch_end must be callable or None, got {on_epoch_end!r}")
    _check_iterable(loader, "fit: loader")
    if val_loader is not None:
        _check_iterable(val_loader, "fit: val_loader")
    if checkpoint is not None:
        folder = os.path.dirname(os.path.abspath(checkpoint))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"fit: folder '{folder}' for checkpoint '{checkpoint}' "
                                    "does not exist")


def fit(model, loader, loss_fn, optimizer, epochs, *, scheduler=None, val_loader=None,
        checkpoint=None, device=None, progress=True, on_epoch_end=None):
    """Train ``model`` for ``epochs`` epochs; returns the history, one entry per epoch:
    {'train_loss', 'val_loss', 'val_accuracy', 'lr'} (val entries None without val_loader).

    loader       yields (inputs, labels): NumPy arrays (as DataLoader) or Tensors; its
                 ``set_epoch(epoch)``, if it has one, is called before each epoch
    loss_fn      loss_fn(outputs, labels) -> scalar Tensor, e.g. F.cross_entropy
    scheduler    stepped once per epoch; a OneCycleLR once per batch; a ReduceLROnPlateau
                 once per epoch with the validation loss (needs val_loader)
    checkpoint   a path: saved before epoch 1 and after every epoch; if the file exists,
                 fit resumes from it (a finished run returns at once)
    device       'cpu' or 'cuda': the model and every batch are moved there
    progress     one tqdm bar per epoch showing the running loss; False: no bars
    on_epoch_end on_epoch_end(epoch, history) after each epoch is saved (epoch from 1)
    """
    checkpoint = None if checkpoint is None else os.fspath(checkpoint)
    _check_fit_args(model, loader, loss_fn, optimizer, epochs, scheduler, val_loader,
                    checkpoint, on_epoch_end)
    device = None if device is None else backend.check_device(device)
    history = {"train_loss": [], "val_loss": [], "val_accuracy": [], "lr": []}
    done = 0                                    # epochs finished (and saved, with checkpoint)
    if checkpoint is not None and os.path.exists(checkpoint):
        done, history = _resume(checkpoint, model, optimizer, scheduler)
        _say(f"fit: resumed from '{checkpoint}' after epoch {done} of {epochs}"
             + (" (nothing left to do)" if done >= epochs else ""))
    elif checkpoint is not None:                # the start: an interrupt in epoch 1 resumes too
        _save_checkpoint(checkpoint, model, optimizer, scheduler, 0, history)
    if device is not None:
        model.to(device)
    from tqdm.auto import tqdm
    was_training = model.training
    batch_scheduler = scheduler if isinstance(scheduler, OneCycleLR) else None
    plateau = isinstance(scheduler, ReduceLROnPlateau)
    try:
        for epoch in range(done, epochs):
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)         # the order an uninterrupted run would see
            lr = optimizer.param_groups[0]["lr"]
            with tqdm(total=len(loader) if hasattr(loader, "__len__") else None, unit="batch",
                      desc=f"epoch {epoch + 1}/{epochs}", disable=not progress) as bar:
                train_loss = _train_epoch(model, loader, loss_fn, optimizer, batch_scheduler,
                                          device, bar, epoch + 1)
                if scheduler is not None and batch_scheduler is None and not plateau:
                    scheduler.step()
                val = {"loss": None, "accuracy": None}
                if val_loader is not None:
                    val = evaluate(model, val_loader, loss_fn, device)
                    acc = "-" if val["accuracy"] is None else f"{val['accuracy']:.3f}"
                    bar.set_postfix({"loss": f"{train_loss:.4f}",
                                     "val_loss": f"{val['loss']:.4f}", "val_acc": acc})
                if plateau:
                    scheduler.step(val["loss"])
            for key, value in (("train_loss", train_loss), ("val_loss", val["loss"]),
                               ("val_accuracy", val["accuracy"]), ("lr", lr)):
                history[key].append(value)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, scheduler, epoch + 1, history)
            done = epoch + 1
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, history)
    except KeyboardInterrupt:
        if checkpoint is None:
            _say(f"fit: interrupted after {done} finished epochs; nothing was saved "
                 "(pass checkpoint='run.npz' to be able to resume).")
        else:
            _say(f"fit: interrupted; '{checkpoint}' holds the state after epoch {done} of "
                 f"{epochs}. Run the same fit(...) call again to resume from there.")
        raise
    finally:
        model.train(was_training)
    return history
