"""Object detection: the loss of a grid detector against (class, x1, y1, x2, y2) boxes, decoding
with non-maximum suppression, and mean average precision at IoU 0.5."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import OneNetworkTask
from .registry import register_task

if TYPE_CHECKING:
    from ..run import Run


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4) x (M, 4) boxes -> (N, M) intersection over union."""
    lt, rb = torch.max(a[:, None, :2], b[None, :, :2]), torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda t: (t[:, 2:] - t[:, :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter).clamp(min=1e-9)


def targets(y: torch.Tensor, num_classes: int, grid: tuple[int, int], stride: float, box_size: float):
    """Boxes (B, M, 5) -> per cell: object mask (B, H, W), class (B, H, W), box targets (B, 4, H, W)."""
    b, h, w = len(y), *grid
    obj = torch.zeros(b, h, w, dtype=torch.bool)
    cls = torch.zeros(b, h, w, dtype=torch.long)
    box = torch.zeros(b, 4, h, w)
    for i, j in (y[..., 0] >= 0).nonzero().tolist():
        c, x1, y1, x2, y2 = y[i, j].tolist()
        cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
        gx, gy = min(int(cx), w - 1), min(int(cy), h - 1)
        obj[i, gy, gx], cls[i, gy, gx] = True, c
        box[i, :, gy, gx] = torch.tensor([cx - gx, cy - gy, np.log((x2 - x1) / box_size), np.log((y2 - y1) / box_size)])
    return obj, cls, box


def decode(out: torch.Tensor, stride: float, box_size: float, threshold: float = 0.05, iou: float = 0.5,
           top: int = 20) -> list[dict[str, torch.Tensor]]:
    """Raw outputs -> per image {boxes (N, 4), scores (N,), classes (N,)} after per-class NMS."""
    b, _, h, w = out.shape
    k = out.shape[1] - 5
    obj = torch.sigmoid(out[:, 0])
    probs = torch.softmax(out[:, 1:1 + k], 1)
    score, cls = (obj[:, None] * probs).max(1)
    gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cx = (gx + torch.sigmoid(out[:, -4])) * stride
    cy = (gy + torch.sigmoid(out[:, -3])) * stride
    bw, bh = torch.exp(out[:, -2].clamp(max=4)) * box_size, torch.exp(out[:, -1].clamp(max=4)) * box_size
    boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)  # (B, 4, H, W)
    results = []
    for i in range(b):
        s, c, bx = score[i].flatten(), cls[i].flatten(), boxes[i].flatten(1).T
        keep = s > threshold
        s, c, bx = s[keep], c[keep], bx[keep]
        chosen = []
        for label in c.unique():
            idx = (c == label).nonzero()[:, 0]
            idx = idx[s[idx].argsort(descending=True)]
            while len(idx):
                chosen.append(int(idx[0]))
                if len(idx) == 1:
                    break
                idx = idx[1:][box_iou(bx[idx[:1]], bx[idx[1:]])[0] < iou]
        pick = torch.tensor(chosen, dtype=torch.long)
        pick = pick[s[pick].argsort(descending=True)[:top]]
        results.append({"boxes": bx[pick], "scores": s[pick], "classes": c[pick]})
    return results


def average_precision(detections: list[dict[str, torch.Tensor]], y: torch.Tensor, num_classes: int,
                      threshold: float = 0.5, class_agnostic: bool = False) -> tuple[float, list[float | None]]:
    """Mean average precision at IoU ``threshold`` (all-point interpolated, as PASCAL VOC since
    2010) over the classes present; and each class's AP (None: no object of that class)."""
    aps: list[float | None] = []
    for c in ([None] if class_agnostic else range(num_classes)):
        records, n_gt = [], 0
        for i, det in enumerate(detections):
            gt = y[i][(y[i, :, 0] >= 0) & ((y[i, :, 0] == c) if c is not None else True)][:, 1:].float()
            n_gt += len(gt)
            mine = torch.ones(len(det["scores"]), dtype=torch.bool) if c is None else det["classes"] == c
            boxes, scores = det["boxes"][mine], det["scores"][mine]
            used = torch.zeros(len(gt), dtype=torch.bool)
            for j in scores.argsort(descending=True).tolist():
                hit = False
                if len(gt):
                    overlaps = box_iou(boxes[j:j + 1], gt)[0]
                    overlaps[used] = -1
                    best = int(overlaps.argmax())
                    if overlaps[best] >= threshold:
                        used[best], hit = True, True
                records.append((float(scores[j]), hit))
        if n_gt == 0:
            aps.append(None)
            continue
        records.sort(key=lambda r: -r[0])
        tp = np.cumsum([r[1] for r in records]) if records else np.zeros(0)
        precision = tp / np.arange(1, len(records) + 1) if records else np.zeros(0)
        recall = tp / n_gt if records else np.zeros(0)
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[0.0], precision, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        aps.append(float(np.sum((mrec[1:] - mrec[:-1]) * mpre[1:])))
    present = [a for a in aps if a is not None]
    return (float(np.mean(present)) if present else 0.0), aps


@register_task("detection", title="an object detector", plural="object detectors")
class DetectionTask(OneNetworkTask):
    """Objectness (binary cross-entropy over every cell, positives weighted up), class
    cross-entropy and an L1 box loss on the cells that hold an object's centre."""

    default_monitor = "val_map50"
    metric_names = ["loss", "map50"]
    stages = frozenset({"evaluate", "predict", "export", "report"})
    instead = "'netwright predict {run} scene.png' finds boxes, 'netwright evaluate' scores them"
    preset = "detector"
    spatial_targets = True
    headline = "map50"

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        net = getattr(model, "module", model)  # (inside DistributedDataParallel)
        self.stride, self.box_size = net.stride, net.box_size
        return super().optimizers(model)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = self.info.num_classes
        obj, cls, box = (t.to(out.device) for t in targets(y.cpu(), k, out.shape[-2:], self.stride, self.box_size))
        pos = obj.float()
        l_obj = F.binary_cross_entropy_with_logits(out[:, 0], pos, pos_weight=torch.tensor(5.0, device=out.device))
        if not obj.any():
            return l_obj
        logits = out[:, 1:1 + k].permute(0, 2, 3, 1)[obj]
        l_cls = F.cross_entropy(logits, cls[obj])
        pred = torch.cat([torch.sigmoid(out[:, -4:-2]), out[:, -2:]], 1).permute(0, 2, 3, 1)[obj]
        l_box = F.smooth_l1_loss(pred, box.permute(0, 2, 3, 1)[obj], beta=0.1)
        return l_obj + l_cls + 2 * l_box

    def objective(self, model: nn.Module, batch: tuple[Any, ...]) -> torch.Tensor:
        return self.loss(model(batch[0]), batch[1])

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        out = model(batch[0])
        return {"output": out, "target": batch[1], "loss": self.loss(out, batch[1]).expand(len(out))}

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        dets = decode(outputs["output"].float(), self.stride, self.box_size)
        map50, _ = average_precision(dets, outputs["target"], self.info.num_classes)
        return {"loss": float(outputs["loss"].mean()), "map50": map50}

    def evaluate(self, run: Run, split: str = "test", batch_size: int = 1024,
                 coverage: float | None = None) -> dict[str, Any]:
        """Boxes: mean average precision at IoU 0.5."""
        return {"split": split, "n": self.info.splits[split], "task": "detection",
                **evaluate_detection(run.load_model(), run.load_data(), split)}

    def prepare(self, run: Run, model: nn.Module, coverage: float | None = None) -> None:
        self.stride, self.box_size = model.stride, model.box_size

    def decode(self, outputs: torch.Tensor, inputs: Any = None) -> list[dict[str, Any]]:
        """``objects``: each with its ``label``, ``score`` and ``box`` (x1, y1, x2, y2 in pixels)."""
        names = self.info.class_names
        return [{"objects": [{"label": names[int(c)], "score": round(float(sc), 4),
                              "box": [round(float(v), 1) for v in b]}
                             for b, sc, c in zip(d["boxes"], d["scores"], d["classes"])]}
                for d in decode(outputs, self.stride, self.box_size, threshold=0.3)]

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "fashion_scenes", "scenes": 64, "test_scenes": 16},
                "model": {"name": "detector", "channels": [4, 8, 8]}, "train": {"epochs": 1}}


def evaluate_detection(model: nn.Module, data: Any, split: str) -> dict[str, Any]:
    """mAP@0.5 (per class and class-agnostic) of the detector on a split."""
    part = data.split(split)
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(part.x[i:i + 512]) for i in range(0, len(part), 512)])
    dets = decode(out, model.stride, model.box_size)
    info = data.info
    map50, per_class = average_precision(dets, part.y, info.num_classes)
    agnostic, _ = average_precision(dets, part.y, info.num_classes, class_agnostic=True)
    objects = int((part.y[..., 0] >= 0).sum())
    return {"metrics": {"map50": map50, "ap50_class_agnostic": agnostic},
            "per_class_ap50": dict(zip(info.class_names, per_class)), "objects": objects,
            "detections": [{"boxes": d["boxes"].round().tolist(), "classes": [info.class_names[c] for c in d["classes"]],
                          "scores": [round(float(s), 3) for s in d["scores"]]} for d in dets[:3]]}
