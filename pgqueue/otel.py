"""OpenTelemetry tracing: a span per enqueue and per attempt (``pip install 'pgqueue[otel]'``).

Built on pgqueue's middleware::

    from pgqueue.otel import instrument
    instrument(app)                    # before workers start; the global tracer provider

Spans follow the OpenTelemetry messaging semantic conventions
(``messaging.system = "pgqueue"``, destination = the queue, message id = the
job id):

* ``send <queue>`` (PRODUCER) around each enqueue. A batch
  (``enqueue_many``) is one ``send`` span (CLIENT,
  ``messaging.batch.message_count``) with a ``create <queue>`` span
  (PRODUCER) per job (``batch_spans=False``: none; the jobs carry the
  ``send`` span's context).
* The producer span's context travels in the job's meta as W3C Trace Context
  (``meta["traceparent"]``, and ``meta["tracestate"]`` when set), so any
  process that runs the job can continue the trace.
* ``process <queue>`` (CONSUMER) around each attempt: linked to the producer
  span and, by default (``parent=True``), its child, so the attempt shows in
  the enqueue's trace; ``parent=False`` starts a trace of its own, with the
  link only. Attributes ``messaging.pgqueue.task``, ``.attempt``,
  ``.max_attempts`` and ``.outcome`` (``succeeded``, ``failed`` when a retry
  follows, ``dead``, ``cancelled``); a failed attempt records its exception,
  ``error.type`` and an ERROR status.

Spans the task opens are children of its ``process`` span, and jobs it
enqueues continue the same trace. Cron fires carry no producer context: their
``process`` spans start new traces.

.. versionadded:: 0.1
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pgqueue import App, Attempt, Job, JobSpec, Middleware, __version__

__all__ = ["OpenTelemetryMiddleware", "instrument"]

SYSTEM = "pgqueue"
CARRIER_KEYS = ("traceparent", "tracestate")
_propagator = TraceContextTextMapPropagator()


class OpenTelemetryMiddleware(Middleware):
    """Spans for enqueues and attempts (see the module's docstring)."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        parent: bool = True,
        batch_spans: bool = True,
    ) -> None:
        self._tracer = trace.get_tracer("pgqueue", __version__, tracer_provider)
        self._parent = parent
        self._batch_spans = batch_spans  # False: no create span per job of a batch

    # -- enqueue -------------------------------------------------------------------

    def around_enqueue(
        self, specs: list[JobSpec], call_next: Callable[[list[JobSpec]], list[Job]]
    ) -> list[Job]:
        send, creates, specs = self._start_send(specs)
        with self._current(send, creates) as done:
            jobs = call_next(specs)
            done(jobs)
        return jobs

    async def around_enqueue_async(
        self, specs: list[JobSpec], call_next: Callable[[list[JobSpec]], Awaitable[list[Job]]]
    ) -> list[Job]:
        send, creates, specs = self._start_send(specs)
        with self._current(send, creates) as done:
            jobs = await call_next(specs)
            done(jobs)
        return jobs

    def _start_send(self, specs: list[JobSpec]) -> tuple[Span, list[Span], list[JobSpec]]:
        queues = sorted({s.queue for s in specs})
        where = f" {queues[0]}" if len(queues) == 1 else ""
        common = {"messaging.system": SYSTEM, "messaging.operation.type": "send",
                  "messaging.operation.name": "send"}  # fmt: skip
        if len(queues) == 1:
            common["messaging.destination.name"] = queues[0]
        if len(specs) == 1:
            spec = specs[0]
            send = self._tracer.start_span(
                "send" + where, kind=SpanKind.PRODUCER,
                attributes={**common, "messaging.pgqueue.task": spec.task},
            )  # fmt: skip
            return send, [send], [_with_context(spec, send)]
        send = self._tracer.start_span(
            "send" + where, kind=SpanKind.CLIENT,
            attributes={**common, "messaging.batch.message_count": len(specs)},
        )  # fmt: skip
        if not self._batch_spans:  # every job carries the send span's context
            return send, [], [_with_context(s, send) for s in specs]
        parent = trace.set_span_in_context(send)
        creates = [
            self._tracer.start_span(
                f"create {s.queue}", context=parent, kind=SpanKind.PRODUCER,
                attributes={"messaging.system": SYSTEM, "messaging.operation.type": "create",
                            "messaging.operation.name": "create",
                            "messaging.destination.name": s.queue,
                            "messaging.pgqueue.task": s.task},
            )
            for s in specs
        ]  # fmt: skip
        return send, creates, [_with_context(s, c) for s, c in zip(specs, creates, strict=True)]

    @contextmanager
    def _current(self, send: Span, creates: list[Span]) -> Iterator[Callable[[list[Job]], None]]:
        """``send`` current around the insert; every span ended, with the job ids
        (given to ``done``) or the error."""

        def done(jobs: list[Job]) -> None:
            for span, job in zip(creates, jobs, strict=False):
                span.set_attribute("messaging.message.id", str(job.id))

        spans = creates if creates and creates[0] is send else [*creates, send]
        try:
            with trace.use_span(send, record_exception=False, set_status_on_exception=False):
                yield done
        except BaseException as exc:
            for span in spans:
                _failed(span, exc)
            raise
        finally:
            for span in spans:
                span.end()

    # -- execution -----------------------------------------------------------------

    def around_execute(self, attempt: Attempt, call_next: Callable[[], Any]) -> Any:
        with self._process(attempt):
            return call_next()

    async def around_execute_async(
        self, attempt: Attempt, call_next: Callable[[], Awaitable[Any]]
    ) -> Any:
        with self._process(attempt):
            return await call_next()

    @contextmanager
    def _process(self, attempt: Attempt) -> Iterator[Span]:
        carrier = {k: v for k in CARRIER_KEYS if isinstance(v := attempt.meta.get(k), str)}
        sent = _propagator.extract(carrier, context=Context())
        producer = trace.get_current_span(sent).get_span_context()
        links = [Link(producer)] if producer.is_valid else []
        span = self._tracer.start_span(
            f"process {attempt.queue}",
            context=sent if self._parent else Context(),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": attempt.queue,
                "messaging.message.id": str(attempt.id),
                "messaging.pgqueue.task": attempt.task,
                "messaging.pgqueue.attempt": attempt.attempt,
                "messaging.pgqueue.max_attempts": attempt.max_attempts,
            },
        )
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                yield span
        except BaseException as exc:
            outcome = attempt.outcome(exc)
            span.set_attribute("messaging.pgqueue.outcome", outcome)
            if outcome != "suspended":  # a workflow that sleeps or waits did not fail
                _failed(span, exc)
            raise
        else:
            span.set_attribute("messaging.pgqueue.outcome", attempt.outcome(None))
        finally:
            span.end()


def _with_context(spec: JobSpec, span: Span) -> JobSpec:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span, Context()))
    meta = {k: v for k, v in spec.meta.items() if k not in CARRIER_KEYS}
    return dataclasses.replace(spec, meta={**meta, **carrier})


def _failed(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))


def instrument(
    app: App,
    tracer_provider: TracerProvider | None = None,
    *,
    parent: bool = True,
    batch_spans: bool = True,
) -> OpenTelemetryMiddleware:
    """Add tracing to ``app`` (before workers start); returns the middleware
    (``app.remove_middleware`` takes it out again). ``batch_spans=False``:
    a batch is one ``send`` span, whose context every job of it carries."""
    middleware = OpenTelemetryMiddleware(tracer_provider, parent=parent, batch_spans=batch_spans)
    app.add_middleware(middleware)
    return middleware
