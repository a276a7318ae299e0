"""Run by ``tests/test_integrations.py``: ``AlignUniformCallback`` in a 2-process Lightning
DDP fit on CPU (gloo). Lightning starts rank 1 by running this script again; each rank
saves its callback history, how many rows it embedded and its final weights."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alignuniform.integrations.lightning import AlignUniformCallback  # noqa: E402
from tests.helpers import held_out_pairs, lightning_module  # noqa: E402


def main(out: Path) -> None:
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(  # Lightning adds a DistributedSampler: 4 steps/epoch
        torch.utils.data.TensorDataset(torch.randn(64, 8)), batch_size=8)
    hx, hy = held_out_pairs(41)  # shards of 21 and 20 rows
    embedded = []

    def embed(module, batch):
        embedded.append(len(batch))
        return module(batch)

    cb = AlignUniformCallback((hx, hy), every_n_steps=4, batch_size=16, embed=embed)
    module = lightning_module(pl)
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", devices=2, strategy="ddp", logger=False,
        callbacks=[cb], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=out,
    )
    trainer.fit(module, loader)
    torch.save({"history": cb.history, "rows": sum(embedded), "state": module.state_dict()},
               out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
