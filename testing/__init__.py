"""What the job is checked against, kept apart from the job and the user commands.

``testing.reference``: plain-Python computations of every flow's rows (json
parsing and dict aggregation, nothing from ``transforms/``), the independent
oracle the tests and the benchmarks compare the job's output with.
``testing.datagen``: seeded generators of the input streams (calls, Data
Actions, the vendor formats, agent events, a live floor on Kafka) with the
disorder, duplicates, late and malformed records the job must handle; the
tests, the benchmarks and scripts/demo.sh feed the job from them.

Neither is part of the installed job (setup.py lists the job's packages
only); both run from the source tree, e.g.
``python -m testing.datagen.calls --out calls.jsonl``.
"""
