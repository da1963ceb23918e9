"""One rank of the DDP test: QAT of ResNet-8 on this rank's own data under
DistributedDataParallel (CPU, gloo), then the quantizer state saved for comparison.

    python linger_ddp_worker.py RANK WORLD PORT METHOD OUT_DIR
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import linger
from linger import zoo

STEPS, BATCH = 3, 8


def rank_batch(rank: int, step: int) -> torch.Tensor:
    """Each rank sees different data, with a different range (rank r is scaled by 1 + 3r)."""
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(BATCH, 3, 32, 32, generator=g) * (1 + 3 * rank)


def main(rank: int, world: int, port: int, method: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    torch.manual_seed(0)
    model = linger.init(zoo.build("resnet8"), {"qat_method": method})
    model.train()
    # no buffer broadcast: equal statistics must come from linger's own reduction
    ddp = DistributedDataParallel(model, broadcast_buffers=False)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01)
    for step in range(STEPS):
        loss = ddp(rank_batch(rank, step)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    # both ranks reach the teardown together: one fresh-clone run saw a rank abort at exit
    # ("terminate called without an active exception", SIGABRT) while the other still had
    # the group open
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
