"""The application: the run configuration, whole runs, trained runs loaded back, the command line.

* :mod:`~lstmjax.app.config`: :class:`Config`, one frozen dataclass.
* :mod:`~lstmjax.app.stages` and :mod:`~lstmjax.app.run`: :func:`train` as named stages.
* :mod:`~lstmjax.app.predictor`: :class:`Predictor`, :func:`evaluate_run`.
* :mod:`~lstmjax.app.export`: a run's model as a ``jax.export`` file (:func:`~lstmjax.app.export.export_run`,
  :class:`~lstmjax.app.export.ExportedModel`).
* :mod:`~lstmjax.app.rundir`: the run directory's files.
* :mod:`~lstmjax.app.cli`: the ``lstmjax`` command.

Loaded lazily: ``lstmjax --help`` imports neither JAX nor the data libraries.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["cli", "config", "export", "predictor", "run", "rundir", "stages"],
    submod_attrs={"config": ["Config"], "run": ["RunResult", "train"],
                  "predictor": ["Predictor", "evaluate_run"],
                  "export": ["ExportedModel", "export_run"], "stages": ["build_model"]},
)
