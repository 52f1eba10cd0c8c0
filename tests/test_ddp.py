"""Data-parallel training on CPU (gloo, two processes): ConStyle's queue receives the
embeddings of both ranks, so queues, pointers and weights stay identical on every rank,
before and after the freeze (which rebuilds the DDP wrapper)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from test_trainer import SynthPairs, tiny_config

WORLD = 2
BATCH = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snapshot(trainer) -> dict:
    return {"params": {k: v.detach().clone() for k, v in trainer.model.named_parameters()},
            "buffers": {k: v.detach().clone() for k, v in trainer.model.named_buffers()},
            "step": trainer.step, "frozen": trainer.frozen}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from irconstyle.train import Trainer

    cfg = tiny_config(Path(out) / "run", total_iters=5, constyle_iters=3, batch_size=BATCH,
                      ckpt_every=3)
    trainer = Trainer(cfg, train_set=SynthPairs(n=16))
    assert trainer.dist.world_size == WORLD and trainer.dist.rank == rank
    trainer.fit(stop_at=3)
    before = _snapshot(trainer)
    trainer.fit()
    after = _snapshot(trainer)
    torch.save({"before": before, "after": after, "queue_size": trainer.model.constyle.queue_size},
               Path(out) / f"rank{rank}.pt")
    trainer.close()


def test_ranks_share_queue_and_weights(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD))
    k = r0["queue_size"]
    for phase in ("before", "after"):
        a, b = r0[phase], r1[phase]
        for name in a["params"]:
            assert torch.equal(a["params"][name], b["params"][name]), f"{phase}: {name}"
        for name in ("constyle.queue", "constyle.queue_ptr"):
            assert torch.equal(a["buffers"][name], b["buffers"][name]), f"{phase}: {name}"
    # three ConStyle steps, each enqueuing the batches of both ranks
    assert int(r0["before"]["buffers"]["constyle.queue_ptr"]) == (3 * WORLD * BATCH) % k
    assert not r0["before"]["frozen"] and r0["after"]["frozen"] and r0["after"]["step"] == 5
    assert torch.equal(r0["after"]["buffers"]["constyle.queue"], r0["before"]["buffers"]["constyle.queue"])
    # only rank 0 wrote: one checkpoint, one log
    assert (tmp_path / "run" / "last.pt").is_file()
    assert len((tmp_path / "run" / "train.csv").read_text().splitlines()) == 6


def _queue_worker(rank: int, port: int, out: str) -> None:
    """Bare ConStyle under gloo: each rank enqueues its batch, gets its own slots."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=WORLD)
    from irconstyle import ConStyle

    torch.manual_seed(0)
    cs = ConStyle(queue_size=12).train()  # same initial queue on both ranks
    old = cs.queue.clone()
    g = torch.Generator().manual_seed(10 + rank)  # different data per rank
    out_ = cs(torch.rand(BATCH, 3, 16, 16, generator=g), torch.rand(BATCH, 3, 16, 16, generator=g))
    torch.save({"old": old, "queue": cs.queue, "code": out_.code.detach(),
                "next": out_.negatives[0], "cur": out_.negatives[1]}, Path(out) / f"q{rank}.pt")
    torch.distributed.destroy_process_group()


def test_each_rank_reads_the_queue_slots_its_batch_overwrites(tmp_path):
    """Rank r's batch is written at ptr + r*B; its style-loss slots are that slot and the
    next, as a single process would see them (not rank 0's slots on every rank)."""
    mp.spawn(_queue_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r = [torch.load(tmp_path / f"q{i}.pt", weights_only=True) for i in range(WORLD)]
    assert torch.equal(r[0]["queue"], r[1]["queue"])
    for rank, res in enumerate(r):
        cols = torch.arange(BATCH) + rank * BATCH
        assert torch.equal(res["cur"], res["old"][:, cols].t())
        assert torch.equal(res["next"], res["old"][:, cols + BATCH].t())
        assert torch.allclose(r[0]["queue"][:, cols], res["code"].t())
