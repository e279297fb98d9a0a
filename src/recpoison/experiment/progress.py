"""Where a size-sharing attack's state waits for the next cell, or for a rerun after a crash.

An attack whose sizes share their work (``grows_by_prefix``: poison-model's authors' schedule,
the S-attacks, the graph attacks, the meta-gradient edge attacks) makes its fake users (or flips)
step by step, and its state after a step is all a larger size, or the same size after an
interruption, needs to go on from there (:mod:`recpoison.attacks.prefix`; a state's ``size`` is
how far it got, in its ``unit``). :data:`ATTACK_PROGRESS` keeps those states by a key naming the
attack's seeding and targets, not its size (``cells._poison``):

- in this process's memory, the latest few: a spec's sizes run smallest first in one process,
  and each cell goes on from the one before;
- on disk while a backend runs cells with a folder (:meth:`AttackProgress.persisted_in`; the
  runner uses ``<store>.progress/`` beside the results store): after a step, at most every
  :data:`CHECKPOINT_SECONDS`, and at the end of every attack. A cell stopped by Ctrl-C, a killed
  process or the end of a GPU lease then goes on from its last checkpoint when the run is
  repeated, and a larger size goes on from a smaller one computed by another process. The poison
  model's steps take minutes each: a 34-fake-user cell on one CPU thread is hours.

A state is resumed only by an attack that checks it was made from the same inputs (its
fingerprint) and has no more fake users than asked for, so a stale or foreign checkpoint is
ignored, never used; one that cannot be read (another recpoison version, a CUDA state on a
machine without CUDA, a truncated file) is ignored with a warning, and the attack starts over.
Files are written whole (a temporary file renamed into place). The folder holds nothing the
results need: it may be deleted at any time, at the price of recomputing what it would have
saved. Its files are Python pickles (``torch.save``): load only folders you wrote yourself.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recpoison import __version__
from recpoison.attacks.prefix import FlipProgress, StepHook

logger = logging.getLogger(__name__)

#: A checkpoint is written after a step when this many seconds have passed since the last one.
CHECKPOINT_SECONDS = 30.0
#: How many attack states this process keeps in memory.
KEPT_IN_MEMORY = 4


def progress_folder(store_path: str | Path) -> Path:
    """The checkpoint folder of a results store: ``<store>.progress`` beside it."""
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + ".progress")


class AttackProgress:
    """The states of size-sharing attacks, by key: in memory, and on disk inside
    :meth:`persisted_in` (see the module doc)."""

    def __init__(self) -> None:
        self._memory: OrderedDict[int, Any] = OrderedDict()
        self.folder: Path | None = None
        self._unwritable: set[Path] = set()

    @contextmanager
    def persisted_in(self, folder: str | Path | None) -> Iterator[None]:
        """Within the block, also read and write states in ``folder`` (created on the first
        write; ``None``: memory only)."""
        previous, self.folder = self.folder, None if folder is None else Path(folder)
        try:
            yield
        finally:
            self.folder = previous

    def clear_memory(self) -> None:
        self._memory.clear()

    def resumable(self, key: int, size: int) -> Any:
        """The state of ``key`` that got furthest, but not past ``size``, from memory or disk
        (``None``: start over). For per-target lists, target by target. An edge attack's state
        past ``size`` serves through its first steps (:meth:`FlipProgress.within`)."""
        candidates = [c for c in (self._memory.get(key), self._load(key)) if c is not None]
        candidates = [c.within(size) if isinstance(c, FlipProgress) else c for c in candidates]
        if candidates and isinstance(candidates[0], list):  # one state per target, same targets
            return [_furthest(list(states), size) for states in zip(*candidates, strict=True)]
        return _furthest(candidates, size)

    def remember(self, key: int, progress: Any, label: str) -> None:
        """Keep the state an attack ended with: in memory, and on disk inside a folder
        (``label`` says which attack it is, for :func:`checkpoints_in`); a state that got
        further, kept before (a larger size run first), stays."""
        self._memory[key] = _furthest_of(progress, self._memory.get(key))
        self._memory.move_to_end(key)
        while len(self._memory) > KEPT_IN_MEMORY:
            self._memory.popitem(last=False)
        self._save(key, self._memory[key], label)

    def checkpoint(
        self, key: int, label: str, whole: Callable[[Any], Any] | None = None
    ) -> StepHook | None:
        """The ``on_step`` hook that writes the state of ``key`` at most every
        :data:`CHECKPOINT_SECONDS`; ``whole(state)`` makes what is written from the state the
        attack reports (the per-target list around one target's state). ``None`` outside a
        folder."""
        if self.folder is None:
            return None
        last = time.monotonic()

        def on_step(state: Any) -> None:
            nonlocal last
            if time.monotonic() - last >= CHECKPOINT_SECONDS:
                self._save(key, whole(state) if whole is not None else state, label)
                last = time.monotonic()

        return on_step

    # -- disk -----------------------------------------------------------------------------------
    def _path(self, key: int) -> Path | None:
        return None if self.folder is None else self.folder / f"{key}.pt"

    def _load(self, key: int) -> Any:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            return _read(path)["progress"]
        except Exception as error:  # any unreadable file: start over, never fail the cell
            logger.warning("ignoring the attack checkpoint %s (%s); starting over", path, error)
            return None

    def _save(self, key: int, progress: Any, label: str) -> None:
        """Write ``progress``, or what the file already holds where that got further."""
        path = self._path(key)
        if path is None or progress is None:
            return
        progress = _furthest_of(progress, self._load(key))
        temporary = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(handle, "wb") as file:
                payload = {"recpoison": __version__, "attack": label, "progress": progress}
                torch.save(payload, file)
            os.replace(temporary, path)
        except OSError as error:  # a full or read-only disk costs the checkpoint, not the cell
            if temporary is not None and os.path.exists(temporary):
                os.unlink(temporary)
            if path.parent not in self._unwritable:
                self._unwritable.add(path.parent)
                logger.warning("cannot write attack checkpoints to %s: %s", path.parent, error)


@dataclass(frozen=True)
class Checkpoint:
    """What one checkpoint file holds: which attack (``attack``: its name and how many target
    sets), how far each target set got (``done``, in ``unit``: fake users or flips; ``None``:
    not begun), when it was written."""

    path: Path
    attack: str
    done: list[int | None]
    unit: str
    written: str


def checkpoints_in(folder: str | Path) -> list[Checkpoint]:
    """The readable checkpoints of ``folder``, latest first (none for a missing folder)."""
    found = []
    for path in Path(folder).glob("*.pt"):
        try:
            payload = _read(path)
        except Exception:  # unreadable: a listing skips what a run would skip too
            continue
        states = payload["progress"]
        if not isinstance(states, list):  # one state for every target set (generate_many)
            states = [states] * len(getattr(states, "rngs", [states]))
        written = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        begun = [s for s in states if s is not None]
        found.append(
            Checkpoint(
                path,
                payload.get("attack", "?"),
                [None if s is None else int(s.size) for s in states],
                begun[0].unit if begun else "fake users",
                written.isoformat(timespec="seconds"),
            )
        )
    return sorted(found, key=lambda c: c.written, reverse=True)


def _read(path: Path) -> dict[str, Any]:
    """A checkpoint file's payload; raises for a file this recpoison version does not use."""
    payload = torch.load(path, weights_only=False)
    if payload["recpoison"] != __version__:
        raise ValueError(f"written by recpoison {payload['recpoison']}")
    return payload


def _furthest(states: list[Any], size: int) -> Any:
    """The state that got furthest, not past ``size`` (``None`` if there is none)."""
    usable = [s for s in states if s is not None and s.size <= size]
    return max(usable, key=lambda s: s.size, default=None)


def _furthest_of(new: Any, old: Any) -> Any:
    """``new``, except where ``old`` (the same key's earlier state) got further: target by
    target for per-target lists."""
    if old is None or new is None:
        return old if new is None else new
    if isinstance(new, list) != isinstance(old, list):
        return new
    if isinstance(new, list):
        if len(new) != len(old):
            return new
        return [_furthest_of(n, o) for n, o in zip(new, old, strict=True)]
    return old if old.size > new.size else new


#: The states of this process (see the module doc).
ATTACK_PROGRESS = AttackProgress()
