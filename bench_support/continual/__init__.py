"""On-device continual learning: pretrain "at the factory" on synthetic shapes, fine-tune "on the device" on photos.

Benchmark process (parent side):
    scenario   the plugin's interface: settings, preparation, one run per configuration, the Outcome
    factory    which factory checkpoint a run needs, and its cache under the data directory
    photos     the user's photos: classes from file names, checks, the held-out split
    standin    generated stand-in photos, when the user gave none
    outputs    epoch and summary lines, CSV, plots, log; the Outcome
    worker     the worker process (``python -m bench_support.continual.worker``) and its handle

Worker process:
    pretrain   phase 1: train on synthetic images, write the checkpoint
    finetune   phase 2: fine-tune on the photos epoch by epoch, measure, checkpoint
    model      the models, what a fine-tune trains, its learning rates and optimizer
"""
