"""The benchmark suite behind ``make bench`` and ``pgqueue bench``.

One run measures pgqueue, PostgreSQL's own ceiling for the same SQL, and the
peers (procrastinate, PgQueuer) on one machine, in databases it creates, and
writes ``benchmarks/results/<date>.json``, a Markdown report and a PNG chart.

    profiles.py   sizes and time windows: default, quick, tiny (CI)
    stats.py      median/min/max of runs, percentiles, ratios
    db.py         the server, fresh databases, machine facts, statistics snapshots
    procs.py      worker subprocesses: start, bound in time, stop
    workers.py    ``python -m benchmarks.suite.workers KIND CONFIG``: every worker we time
    tasks.py      the pgqueue app and no-op tasks the workers run
    systems.py    one adapter per system: schema, enqueue, worker, rates from its tables
    workloads.py  enqueue, drain and latency, the same for every system
    pgq.py        pgqueue workloads: enqueue, drain, latency, backlog, mixed
    ceiling.py    the plain psycopg claim/complete loop (no framework)
    peers/        one adapter per peer, each in its own database
    profiling.py  py-spy (or pyinstrument) of the worker, PostgreSQL statistics
    targets.py    the issue's targets, met or missed and by how much
    report.py     JSON, Markdown (report_sections.py), console; chart.py: the PNG
    runner.py     the order of things, the printed table, the command line
"""
