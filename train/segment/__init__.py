"""Supervised defect segmentation (smp U-Net / FPN / DeepLabV3+ on a timm encoder), pretrained
on synthetic masks and fine-tuned on a few real ones.

Modules: `config` (SegmentConfig), `data` (targets, defect-biased crops, augmentations),
`model` (network, offline encoder weights, weights file, tiled inference), `training`
(pretrain, finetune, resume), `cli`; `evaluate segment` is evaluate/segment.py. Nothing is imported
here, so that `train --help` does not load torch.
"""
