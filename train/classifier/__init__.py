"""A small crop classifier for the two-stage hybrid: it names the defect class of a region that
an anomaly model flags, or says "not a defect" (an impurity such as a water stain, or plain
surface).

Modules: `config` (ClassifierConfig), `data` (crops from instance masks, crop geometry shared
with inference, augmentations), `model` (EfficientNet-Lite0 with the offline ImageNet weights,
weights file), `training` (pretrain, finetune), `cli`; `evaluate hybrid` is evaluate/hybrid.py.
Nothing is imported here, so that `train --help` does not load torch.
"""
