"""`edge bench`: the device loop measured stage by stage, beside the reference pipeline.

Every configuration runs in a fresh process (`python -m edge.bench.worker`) so that its peak
RSS is its own; `runner` starts them, `report` prints the table. Nothing here runs on a
device in service: the loop itself only ever sees a `StageTimer` when this package gives it one.
"""
