"""Metrics against hand-computed cases (DESIGN §6)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluate import metrics as m
from synth.annotations import Annotations, ClassInfo, Instance, Prediction


def test_roc_auc_hand_cases():
    assert m.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # one tied (negative, positive) pair counts one half: (0.5 + 1) / 2
    assert m.roc_auc([0, 1, 1], [0.2, 0.2, 0.9]) == 0.75
    assert m.roc_auc([0, 1, 0, 1], [0.5] * 4) == 0.5
    assert m.roc_auc([1, 1, 0], [0.0, 0.1, 0.9]) == 0.0


def test_roc_auc_undefined_without_both_classes():
    assert math.isnan(m.roc_auc([0, 0], [0.1, 0.2]))
    assert math.isnan(m.roc_auc([1, 1], [0.1, 0.2]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4)), min_size=2, max_size=30))
def test_roc_auc_equals_pairwise_count_with_half_ties(pairs):
    labels = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs], dtype=float)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert m.roc_auc(labels, scores) == pytest.approx(wins / (len(pos) * len(neg)))


def test_a_ratio_of_nothing_is_undefined_never_a_perfect_score():
    none = np.zeros((4, 4), bool)
    some = none.copy()
    some[1, 1] = True
    nothing_at_all = m.confusion(none, none)  # nothing to find, nothing flagged
    assert all(np.isnan(v) for v in (nothing_at_all.precision, nothing_at_all.recall, nothing_at_all.f1))
    assert np.isnan(m.iou_from_f1(nothing_at_all.f1))
    missed = m.confusion(none, some)
    assert np.isnan(missed.precision) and (missed.recall, missed.f1) == (0.0, 0.0)
    false_alarm = m.confusion(some, none)
    assert np.isnan(false_alarm.recall) and (false_alarm.precision, false_alarm.f1) == (0.0, 0.0)
    assert false_alarm.accuracy == 15 / 16
    curves = m.threshold_curves(np.zeros(3, bool), np.array([0.1, 0.2, 0.3]))
    assert np.isnan(curves.recall).all() and (curves.f1 == 0).all()


def test_confusion_counts_and_f_beta():
    pred = np.array([1, 1, 1, 0, 0, 0], bool)
    truth = np.array([1, 0, 0, 1, 1, 0], bool)
    c = m.confusion(pred, truth)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 2, 2, 1)
    assert c.precision == pytest.approx(1 / 3)
    assert c.recall == pytest.approx(1 / 3)
    assert c.f1 == pytest.approx(1 / 3)
    assert c.f_beta(2) == pytest.approx(5 / (5 + 8 + 2))


def test_confusion_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match=r"prediction \(2,\) vs truth \(3,\)"):
        m.confusion(np.zeros(2), np.zeros(3))


def test_best_f1_threshold_hand_case():
    truth = [0, 0, 1, 1, 0]
    scores = [0.1, 0.2, 0.8, 0.6, 0.7]
    # F1 at 0.8: 2/3, 0.7: 1/2, 0.6: 4/5, 0.2: 2/3, 0.1: 4/7
    assert m.best_f1_threshold(truth, scores) == (0.6, 0.8)


def test_best_f1_threshold_ties_and_no_positive():
    assert m.best_f1_threshold([1, 0], [0.5, 0.5]) == (0.5, pytest.approx(2 / 3))
    t, _ = m.best_f1_threshold([0, 0], [0.2, 0.4])
    assert t > 0.4 and t == np.nextafter(0.4, 1)


def test_threshold_curves_values():
    c = m.threshold_curves(np.array([0, 0, 1, 1, 0]), np.array([0.1, 0.2, 0.8, 0.6, 0.7]))
    assert list(c.thresholds) == [0.1, 0.2, 0.6, 0.7, 0.8]
    i = 2  # threshold 0.6: tp 2, fp 1, fn 0, tn 2
    assert c.precision[i] == pytest.approx(2 / 3)
    assert c.recall[i] == 1.0
    assert c.accuracy[i] == pytest.approx(4 / 5)
    assert c.f1[i] == pytest.approx(0.8)
    assert c.f2[i] == pytest.approx(10 / 11)
    assert c.recall[-1] == 0.5 and c.precision[-1] == 1.0


def test_threshold_curves_subsample_keeps_ends():
    scores = np.linspace(0, 1, 5000)
    c = m.threshold_curves(scores > 0.5, scores, n_max=100)
    assert len(c.thresholds) == 100
    assert c.thresholds[0] == 0.0 and c.thresholds[-1] == 1.0


def test_aupro_one_region_hand_case():
    mask = np.array([[[1, 1, 0, 0]]])
    scores = np.array([[[0.9, 0.5, 0.7, 0.1]]])
    # curve (fpr, pro): (0, .5) (.5, .5) (.5, 1) (1, 1)
    assert m.aupro(mask, scores, fpr_limit=1.0) == pytest.approx(0.75)
    assert m.aupro(mask, scores, fpr_limit=0.3) == pytest.approx(0.5)


def test_aupro_regions_count_equally():
    mask = np.array([[[1, 0, 1, 1, 0, 0]]])
    scores = np.array([[[0.9, 0.5, 0.8, 0.2, 0.3, 0.1]]])
    # one-pixel region at 0.9 gives pro .5; half the two-pixel region .75; all 1.0 after 2 fp
    assert m.aupro(mask, scores, fpr_limit=1.0) == pytest.approx(0.75 * 2 / 3 + 1 / 3)


def test_aupro_undefined_without_regions():
    assert math.isnan(m.aupro(np.zeros((1, 3, 3)), np.random.rand(1, 3, 3)))


def test_instance_coverage_and_defect_wise_recall():
    inst = np.zeros((4, 6), np.uint16)
    inst[0:2, 0:2] = 1  # 4 px scratch
    inst[3, 5] = 2  # one-pixel pit
    inst[2, 2:4] = 3  # 2 px stain (impurity)
    pred = np.zeros_like(inst, bool)
    pred[0, 0] = True
    pred[3, 5] = True
    cov = m.instance_coverage(pred, inst)
    assert cov == {1: 0.25, 2: 1.0, 3: 0.0}
    classes = {1: "scratch", 2: "pit", 3: "water_stain"}
    pairs = [(classes[i], c) for i, c in cov.items()]
    assert m.defect_wise_recall(pairs, k=0) == {"pit": 1.0, "scratch": 1.0, "water_stain": 0.0}
    assert m.defect_wise_recall(pairs, k=25)["scratch"] == 1.0
    assert m.defect_wise_recall(pairs, k=30)["scratch"] == 0.0
    curve = m.defect_wise_recall_curve(pairs, levels=[0, 25, 50, 100])
    assert curve == {"pit": [1, 1, 1, 1], "scratch": [1, 1, 0, 0], "water_stain": [0, 0, 0, 0]}
    assert m.mean_over(m.defect_wise_recall(pairs, 50), ["scratch", "pit", "crack"]) == 0.5


def test_k_zero_needs_one_pixel():
    assert not m.is_found(0.0, 0)
    assert m.is_found(1e-6, 0)
    assert m.is_found(0.5, 50) and not m.is_found(0.49, 50)


def _truth(cid, x0, y0, x1, y1):
    return Instance(0, cid, (x0, y0, x1 - x0, y1 - y0), (x1 - x0) * (y1 - y0), ())


def _pred(cid, x0, y0, x1, y1, score):
    return Prediction((x0, y0, x1, y1), score, cid)


def test_box_iou():
    assert m.box_iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(1 / 3)
    assert m.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_detection_metrics_hand_case():
    truths = {"img1": [_truth(1, 10, 10, 20, 20), _truth(1, 40, 40, 60, 60)], "good1": []}
    preds = {
        "img1": [_pred(1, 10, 10, 20, 20, 0.9)],  # exact hit
        "good1": [
            _pred(1, 0, 0, 5, 5, 0.8),  # false alarm on a good image
            _pred(1, 0, 0, 5, 5, 0.1),  # below conf: ignored for the alarm count
        ],
    }
    r = m.detection_metrics(truths, preds, {1: "scratch"}, ["good1"], conf=0.25)
    # recall 1/2 at precision 1 first: 101-point interpolation gives 51/101 at every IoU
    assert r["map50"] == pytest.approx(51 / 101)
    assert r["map50_95"] == pytest.approx(51 / 101)
    assert r["per_class"]["scratch"] == {"instances": 2, "recall": 0.5, "miss_rate": 0.5}
    assert r["false_alarms_on_good"] == 1
    assert r["good_images_with_false_alarm"] == 1
    assert r["ap_small"] == pytest.approx(51 / 101)  # both boxes are under 32² px
    assert math.isnan(r["ap_large"])


def test_matching_never_crosses_images_or_classes():
    truths = {"a": [_truth(1, 0, 0, 10, 10)], "b": [_truth(2, 0, 0, 10, 10)]}
    preds = {"a": [_pred(2, 0, 0, 10, 10, 0.9)], "b": [_pred(1, 0, 0, 10, 10, 0.9)]}
    assert m.found_instances(truths, preds, conf=0.5) == {"a": set(), "b": set()}
    preds["b"].append(_pred(2, 1, 0, 10, 10, 0.6))  # IoU 0.9 with b's truth
    assert m.found_instances(truths, preds, conf=0.5) == {"a": set(), "b": {0}}


def test_an_impurity_found_on_a_good_image_is_no_false_alarm():
    truths = {"good1": [_truth(2, 0, 0, 5, 5)]}  # a water stain on a defect-free image
    preds = {"good1": [_pred(2, 0, 0, 5, 5, 0.9), _pred(1, 20, 20, 25, 25, 0.8)]}
    names = {1: "scratch", 2: "water_stain"}
    r = m.detection_metrics(truths, preds, names, ["good1"], conf=0.25, impurity_classes={2})
    assert r["false_alarms_on_good"] == 1  # the scratch box only
    assert r["per_class"]["water_stain"]["recall"] == 1.0


@pytest.mark.parametrize("preds", [{}, {"img1": [], "good1": []}], ids=["no entry", "empty lists"])
def test_a_model_that_predicts_nothing_scores_zero(preds):
    truths = {"img1": [_truth(1, 10, 10, 20, 20)], "good1": []}
    r = m.detection_metrics(truths, preds, {1: "scratch"}, ["good1"])
    assert r["map50"] == r["map50_95"] == 0.0
    assert r["per_class"]["scratch"] == {"instances": 1, "recall": 0.0, "miss_rate": 1.0}
    assert r["false_alarms_on_good"] == 0


def test_predicted_boxes_without_masks_score_mask_ap_zero():
    instance_map = np.zeros((32, 32), np.uint16)
    instance_map[10:20, 10:20] = 1
    annotations = Annotations.from_instance_map(instance_map, {1: 1}, [ClassInfo(1, "scratch")])
    truths = {"img1": list(annotations.instances)}
    preds = {"img1": [_pred(1, 10, 10, 20, 20, 0.9)]}  # a box-only prediction
    r = m.detection_metrics(truths, preds, {1: "scratch"}, [], masks={"img1": annotations})
    assert r["map50"] > 0.9 and r["mask_map50"] == 0.0


def test_images_without_instances_give_no_ap():
    r = m.detection_metrics({"good1": []}, {"good1": [_pred(1, 0, 0, 5, 5, 0.9)]}, {1: "scratch"}, ["good1"])
    assert math.isnan(r["map50"]) and r["per_class"] == {}
    assert r["false_alarms_on_good"] == 1


def test_detection_metrics_refuse_no_images_and_unknown_images():
    with pytest.raises(ValueError, match="of no image"):
        m.detection_metrics({}, {}, {1: "scratch"}, [])
    truths = {"img1": [_truth(1, 10, 10, 20, 20)]}
    with pytest.raises(ValueError, match=r"predictions for 1 image\(s\) not evaluated, e.g. \['img1.png'\]"):
        m.detection_metrics(truths, {"img1.png": [_pred(1, 10, 10, 20, 20, 0.9)]}, {1: "scratch"}, [])


def test_aupro_images_of_different_sizes():
    masks = [np.array([[1, 1, 0, 0]]), np.array([[0], [1]])]
    scores = [np.array([[0.9, 0.5, 0.7, 0.1]]), np.array([[0.2], [0.95]])]
    # regions: {0.9, 0.5} and {0.95}; negatives 0.7, 0.1, 0.2
    # (fpr, pro): (0, .5) (0, .75) (1/3, .75) (1/3, 1) -> area .75/3 + 2/3
    assert m.aupro(masks, scores, fpr_limit=1.0) == pytest.approx(0.25 + 2 / 3)
