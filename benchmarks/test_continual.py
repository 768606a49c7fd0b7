"""On-device continual learning: fine-tune a pretrained model on a few photos.

The seed's robot: pretrained "at the factory" on synthetic images, fine-tuned "on the
device" on photos from ``data_real/`` (stand-ins when there are none). Parametrised
over what is trained (the whole network, or the classifier head only) and the
optimizer (Adam, as the seed, or SGD): the grid a user reads to find the memory-lean
configuration. One round is one fine-tune epoch, in a fresh worker process per
configuration; loading, evaluation, memory readings and checkpoint writes are untimed.
Per-epoch figures land in ``extra_info["epochs"]``, results.csv and five plots.
"""

import pytest

pytestmark = pytest.mark.benchmark(group="continual")

#: One fine-tune per configuration: its epochs are the measurement (a scenario, not a repeated timing).
TRIALS = 1
#: Runs in the session's own process (not a fresh one per trial): each fine-tune already runs in a worker process of
#: its own, and the scenario's outcome (CSV, plots, findings) belongs to the session.
ISOLATE = False
#: Before the other modules: the scenario a first run is waited on for, and the one whose input (the user's photos)
#: can be wrong; its first line comes within a minute of the start rather than after some 70 checkpoint writes.
RUN_FIRST = True

GRID = {
    "smoke": {"finetune": ["whole"], "optimizer": ["adam"]},
    "quick": {"finetune": ["whole", "head"], "optimizer": ["adam", "sgd"]},
    "full": {"finetune": ["whole", "head"], "optimizer": ["adam", "sgd"]},
}


def test_continual_finetune(harness, continual_scenario, finetune, optimizer):
    harness.extra_info.update(continual_scenario.run(harness, finetune, optimizer))
