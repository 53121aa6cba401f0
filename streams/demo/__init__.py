"""``shadow-eval demo``: the whole story on one machine, in a few minutes.

A local Kafka broker, a serving app whose live model is a scikit-learn classifier trained
on the breast-cancer dataset that ships with scikit-learn, two candidates run by
``shadow-eval worker`` processes, the ``shadow-eval join`` agent, and labels that arrive
late and out of order; it ends with a summary table, the alerts raised, an HTML report
and a traffic log that ``shadow-eval replay`` can backtest.

The same app also serves delivery orders (model ``eta``, :mod:`streams.downstream.delivery`):
a live ETA regressor and an early-biased candidate in a third worker, judged by what the
planner does with their predictions -- promised slots (decision), late deliveries and
idle minutes (KPIs). The candidate has the lower MAE and is rejected on late deliveries.

Modules: :mod:`~streams.demo.models` (data and models), :mod:`~streams.demo.traffic`
(request stream), :mod:`~streams.demo.experiments` (the generated experiments file),
:mod:`~streams.demo.serving` (serving app and label feeder), :mod:`~streams.demo.processes`
(child processes), :mod:`~streams.demo.collect` (topic recorder), :mod:`~streams.demo.run`
(orchestration) and :mod:`~streams.demo.serve` (``demo serve`` for docker-compose).
"""

from streams.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
