"""``python -m benchmarks.chaos``: fault injection against real worker processes (``make chaos``).

The harness owns a throwaway PostgreSQL cluster (its own port, durable settings),
starts real ``pgqueue worker`` and ``pgqueue scheduler`` processes against it and,
while they drain a paced stream of at-least-once and transactional jobs, injects
faults one scenario after the other: SIGKILL of workers and supervisor children,
crash and clean restarts of PostgreSQL, ``pg_terminate_backend`` storms, connection
exhaustion, a read-only server, a network partition (a worker in its own network
namespace whose lease lapses while another worker takes its job over) and random
kills of four cron schedulers. Every check reads the database and the effect
tables, never the logs (``checks.py``); the report goes to
``benchmarks/results/<date>-chaos.md`` and ``.json``.

Modules: ``tasks`` (the app the workers run), ``cluster`` (the server and the
network namespace), ``procs`` (worker and scheduler processes), ``producer`` (the
paced enqueue stream), ``scenarios`` (the faults), ``recovery`` (measuring
recovery), ``checks`` (the verdict), ``clock`` (the clock-skew argument, checked
against the source), ``report`` and ``runner``.
"""
