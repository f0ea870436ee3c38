"""The verbs: one module per verb, one public function per module, ``verb(run, ...) -> result``.

A stage composes the domain packages (``data``, ``models``, ``tasks``, ``training``, ``explain``,
``fairness``, ``compress``, ``deploy``, ``report``, ``text``) and asks the run's task about
anything that depends on the kind of run; the domain packages never import a stage.
"""
