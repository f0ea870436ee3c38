"""The model card's machinery: what each stage left in a run (``collect``), the page (``html``),
a study's card and the comparison page (the ``report`` and ``compare`` stages compose them)."""
