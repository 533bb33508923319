"""Mask R-CNN instance segmentation (torchvision) on an FPN over an offline ImageNet backbone,
trained on native-resolution tiles of a canonical dataset's exact instance masks.

Modules: `config` (MaskRCNNConfig), `data` (tiles as torchvision detection targets, gentle
augmentations), `model` (network, weights file, tiled inference), `training` (pretrain,
finetune), `cli`; `evaluate detector` scores the weights. Nothing is imported here, so that
`train --help` does not load torch.
"""
