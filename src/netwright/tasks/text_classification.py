"""Text classification: a classifier of token sequences, scored beside a bag-of-words logistic
regression fitted on the same training texts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .classification import ClassificationTask
from .registry import register_task

if TYPE_CHECKING:
    from ..data.info import Dataset
    from ..run import Run


@register_task("text_classification", title="a text classifier", plural="text classifiers")
class TextClassificationTask(ClassificationTask):
    """A class per text; the baseline reads the same tokenised texts as words."""

    stages = ClassificationTask.stages - {"audit", "mitigate", "continual", "monitor"}  # monitor reads tables

    def baseline(self, run: Run, data: Dataset, split: str) -> dict[str, Any]:
        return bag_of_words_baseline(run, data, split)

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "rotten_tomatoes", "tokenizer": "char", "max_len": 24},
                "model": {"name": "transformer", "d_model": 16, "heads": 2, "layers": 1, "ff_dim": 32},
                "train": {"epochs": 1}}


def bag_of_words_baseline(run: Run, data: Dataset, split: str = "test") -> dict[str, Any]:
    """Logistic regression on word counts (scikit-learn), fitted on the run's training split of
    the same tokenised text (``data``, the run's data): the baseline a text classifier has to beat."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from .language import load_tokenizer

    tok = load_tokenizer(run)

    def texts(part) -> list[str]:
        return [tok.decode(row) for row in part.x.tolist()]

    words = CountVectorizer()
    fitted = LogisticRegression(max_iter=2000).fit(words.fit_transform(texts(data.train)), data.train.y.numpy())
    part = data.split(split)
    return {"model": "bag-of-words logistic regression (scikit-learn CountVectorizer + LogisticRegression)",
            "fitted_on": "train", "accuracy": float(fitted.score(words.transform(texts(part)), part.y.numpy()))}
