"""The local KEDA stand-in: the worker ScaledObject applied to local worker processes.

`scaledobject` reads the same file the cluster applies (plus the local
profile's patch), `keda` and `hpa` decide as KEDA and the HorizontalPodAutoscaler
would (pure functions of the spec, their state and what was observed), and
`controller` reads Redis, asks them, and adds or retires worker processes.
"""
