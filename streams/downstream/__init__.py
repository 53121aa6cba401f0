"""Reference downstream decision and KPI functions (import paths for the experiments file).

:mod:`streams.downstream.delivery`: a delivery-time model feeding a planner that promises a
time slot, judged by late deliveries and idle minutes.
"""
