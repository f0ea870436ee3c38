"""Regression: mean squared error on standardised targets; MAE, RMSE and R² in the target's
units beside the train mean; conformal intervals; predictions in the target's units."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..metrics import regression_metrics
from .registry import register_task
from .supervised import SupervisedTask

if TYPE_CHECKING:
    from ..run import Run


@register_task("regression", title="a regressor", plural="regressors")
class RegressionTask(SupervisedTask):
    """One value per example; the model sees the target standardised with train statistics."""

    metric_names = ["loss", "mae", "rmse", "r2"]
    headline = "r2"
    val_roles = {"select": 0.5, "conformal": 0.5}
    instead = {"calibrate": "a regressor's uncertainty is an interval instead: 'netwright evaluate {run} --coverage 0.9'"}

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out.squeeze(-1), y)

    def describe(self, info: Any) -> str:
        return f"predicts {info.target_name or 'the target'} of {info.name} examples"

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        out, y = outputs["output"], outputs["target"]
        pred = self.unscale(out.squeeze(-1))
        return {"loss": float(F.mse_loss(out.squeeze(-1), y)), **regression_metrics(pred, self.unscale(y))}

    def scores(self, run: Run, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"metrics": self.metrics(outputs)}

    def trivial_baseline(self, train_y: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """The train mean in the target's units (scikit-learn's ``DummyRegressor()``)."""
        mean = float(self.unscale(train_y).mean())
        true = self.unscale(target)
        return {"name": "train mean", "fitted_on": "train", "detail": f"always {mean:.6g}",
                "metrics": regression_metrics(torch.full_like(true, mean), true)}

    def ensemble_metrics(self, outputs: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
        """Several models' outputs on one split together: their predictions averaged."""
        return self.metrics({"output": torch.stack([o["output"] for o in outputs]).mean(0),
                             "target": outputs[0]["target"]})

    def plots(self, run: Run, result: dict[str, Any], folder: Path) -> None:
        from ..plots import scatter_plot

        out = self.outputs  # of the evaluation that made ``result``
        scatter_plot(self.unscale(out["target"]).numpy(), self.unscale(out["output"].squeeze(-1)).numpy(),
                     folder / "predictions.png", f"{result['split']}: R² {result['metrics']['r2']:.3f}")

    # ---- conformal intervals

    def conformal_threshold(self, out: torch.Tensor, y: torch.Tensor, coverage: float) -> tuple[dict[str, Any], str]:
        from ..conformal import regressor_intervals

        return (regressor_intervals(self.unscale(out[:, 0]).numpy(), self.unscale(y).numpy(), coverage),
                "split conformal, absolute residuals on the validation split's conformal rows (target units)")

    def score_conformal(self, outputs: dict[str, torch.Tensor], q: float) -> dict[str, float]:
        from ..conformal import score_intervals

        return score_intervals(self.unscale(outputs["output"].squeeze(-1)).numpy(), q,
                               self.unscale(outputs["target"]).numpy())

    # ---- predictions

    def decode(self, outputs: torch.Tensor, inputs: Any = None) -> list[dict[str, Any]]:
        """``prediction`` in the target's units; with conformal thresholds an ``interval``."""
        rows = [{"prediction": self.info.unscale(float(v))} for v in outputs[:, 0].tolist()]
        conformal = self.conformal
        if conformal is not None:
            for row in rows:
                row["interval"] = [row["prediction"] - conformal["q"], row["prediction"] + conformal["q"]]
        return rows

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "diabetes"}, "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}}
