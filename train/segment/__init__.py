"""Supervised defect segmentation (smp U-Net / FPN / DeepLabV3+ on a timm encoder), pretrained
on synthetic masks and fine-tuned on a few real ones. See train/segment/README.md.

Modules: `config` (SegmentConfig), `data` (targets, defect-biased crops, augmentations),
`model` (network, offline encoder weights, weights file, tiled inference), `training`
(pretrain, finetune, resume), `evaluation` (`evaluate segment`), `cli`. Nothing is imported
here, so that `train --help` does not load torch.
"""
