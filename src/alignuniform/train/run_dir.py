"""The run directory of a training run: its lock, its logs after a kill, the state to resume.

The engine (``train.engine``) writes ``config.yaml``, ``checkpoint.pt``, ``log.jsonl`` and
``epochs.jsonl`` there under a lock (:func:`lock_run_dir`); before it continues a run,
:func:`trim_jsonl` drops the log lines written after the last checkpoint and
:func:`resume_state` loads that checkpoint and checks it against the config.
"""

from __future__ import annotations

from pathlib import Path

from alignuniform.checkpoint import load_checkpoint
from alignuniform.io import RunLock, atomic_write_text, read_jsonl, remove_stale_temps, to_json
from alignuniform.train.config import TrainConfig, upgrade_config_dict

# settings that may change between an interrupted run and its resumption
RESUMABLE_CHANGES = {"epochs", "device", "data.num_workers", "monitor_every", "tensorboard"}


def lock_run_dir(out_dir: Path) -> RunLock:
    """Lock ``out_dir`` for this process (``alignuniform.io.RunLock``: a second process is
    refused at once, naming the first) and remove the temporary files a killed save left
    there (safe under the lock: no other writer)."""
    lock = RunLock(out_dir)
    remove_stale_temps(out_dir)
    return lock


def trim_jsonl(path: Path, key: str, last: int) -> None:
    """Drop the lines an interrupted run wrote after its last checkpoint.

    A kill in the middle of a write can leave a partial last line; it is dropped too
    (``io.read_jsonl``), as are rows without an integer ``key`` (not the loop's). Any other
    damaged line is an error naming the file and line.
    """
    if not path.is_file():
        return
    kept = [row for row in read_jsonl(path)
            if isinstance(row, dict) and isinstance(row.get(key), int) and row[key] <= last]
    atomic_write_text(path, "".join(to_json(row, indent=None) + "\n" for row in kept))


def differing_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between the nested dicts ``a`` and ``b``.

    >>> differing_keys({"loss": {"t": 2, "tau": 0.1}, "seed": 0}, {"loss": {"t": 3, "tau": 0.1}})
    ['loss.t', 'seed']
    """
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += differing_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(prefix + k)
    return keys


def with_defaults(defaults: dict, values: dict) -> dict:
    """``values`` with each key it lacks, at any depth, taken from ``defaults``.

    >>> with_defaults({"data": {"subset": None, "scenes": {"variant": None}}, "seed": 0},
    ...               {"data": {"subset": 8}})
    {'data': {'subset': 8, 'scenes': {'variant': None}}, 'seed': 0}
    """
    out = dict(defaults)
    for key, value in values.items():
        base = defaults.get(key)
        out[key] = (with_defaults(base, value) if isinstance(base, dict)
                    and isinstance(value, dict) else value)
    return out


def resume_state(path: Path, config: TrainConfig) -> dict:
    """The checkpoint to resume from, loaded on the CPU and checked against ``config``.

    On the CPU whatever the run's device: the RNG states must be CPU tensors, and the model
    and optimizer ``load_state_dict`` copy their tensors to the run's device.

    Raises:
        ValueError: ``path`` is not a training checkpoint, or its config differs from
            ``config`` in a setting other than :data:`RESUMABLE_CHANGES`.
    """
    state = load_checkpoint(path, map_location="cpu")
    if not isinstance(state.get("config"), dict) or "rng" not in state:
        raise ValueError(f"{path} is not a training checkpoint (no config or RNG state); "
                         "choose a new --out")
    # a run from before a config section or key existed (e.g. dense, data.scenes) stored
    # none: it had the defaults
    stored = with_defaults(TrainConfig().to_dict(), upgrade_config_dict(state["config"]))
    changed = set(differing_keys(stored, config.to_dict())) - RESUMABLE_CHANGES
    if changed:
        raise ValueError(
            f"cannot resume {path.parent}: the config differs from the run's in "
            f"{', '.join(sorted(changed))}; use the run's config.yaml or start a new --out"
        )
    return state
