"""pgqueue.otel: spans per enqueue and attempt, checked with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import pgqueue
from pgqueue import testing
from pgqueue.otel import instrument


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def make_app(dsn: str, provider: TracerProvider, **options: Any) -> pgqueue.App:
    app = pgqueue.App(dsn, retry=pgqueue.RetryPolicy(base=0, cap=0), max_connections=4)

    @app.task(name="work", queue="mail")
    def work(n: int) -> int:
        with provider.get_tracer("user").start_as_current_span("inside"):
            return n + 1

    @app.task(name="parent")
    def parent() -> int:
        return work.enqueue(1).id

    @app.task(name="flaky", max_attempts=2)
    def flaky() -> None:
        raise ValueError("nope")

    @app.task(name="awork")
    async def awork(n: int) -> int:
        return n * 2

    instrument(app, provider, **options)
    return app


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def attr(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


def traceparent(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def test_enqueue_and_attempt_spans_share_the_trace(
    clean_db: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with make_app(clean_db, provider) as app:
        with provider.get_tracer("user").start_as_current_span("request") as request:
            job = app.tasks["work"].enqueue(41)
        assert testing.drain(app) == 1
        stored = app.get_job(job.id)
    spans = exporter.get_finished_spans()
    (send,) = by_name(spans, "send mail")
    (process,) = by_name(spans, "process mail")
    (inside,) = by_name(spans, "inside")
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert send.parent is not None and send.parent.span_id == request.get_span_context().span_id
    assert stored.meta["traceparent"] == traceparent(send)  # W3C context in the job's meta
    assert send.attributes == {
        "messaging.system": "pgqueue", "messaging.operation.type": "send",
        "messaging.operation.name": "send", "messaging.destination.name": "mail",
        "messaging.pgqueue.task": "work", "messaging.message.id": str(job.id),
    }  # fmt: skip
    assert process.context.trace_id == send.context.trace_id
    assert child_of(process, send)
    assert [link.context.span_id for link in process.links] == [send.context.span_id]
    assert process.attributes == {
        "messaging.system": "pgqueue", "messaging.operation.type": "process",
        "messaging.operation.name": "process", "messaging.destination.name": "mail",
        "messaging.message.id": str(job.id), "messaging.pgqueue.task": "work",
        "messaging.pgqueue.attempt": 1, "messaging.pgqueue.max_attempts": 3,
        "messaging.pgqueue.outcome": "succeeded",
    }  # fmt: skip
    assert child_of(inside, process)
    assert process.status.status_code is StatusCode.UNSET


def test_failed_attempts_batches_and_nested_enqueues(
    clean_db: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with make_app(clean_db, provider) as app:
        flaky = app.tasks["flaky"].enqueue()
        batch = app.enqueue_many([app.tasks["work"].job(1), app.tasks["parent"].job()])
        assert testing.drain(app, include_scheduled=True) == 5
    spans = exporter.get_finished_spans()
    attempts = sorted(
        (
            s
            for s in by_name(spans, "process default")
            if attr(s, "messaging.pgqueue.task") == "flaky"
        ),
        key=lambda s: attr(s, "messaging.pgqueue.attempt"),
    )
    assert [attr(s, "messaging.message.id") for s in attempts] == [str(flaky.id)] * 2
    assert [attr(s, "messaging.pgqueue.outcome") for s in attempts] == ["failed", "dead"]
    assert all(s.status.status_code is StatusCode.ERROR for s in attempts)
    assert attr(attempts[0], "error.type") == "ValueError"
    assert attempts[0].events[0].name == "exception"
    (send_batch,) = by_name(spans, "send")  # two queues: no single destination
    assert send_batch.kind is SpanKind.CLIENT
    assert attr(send_batch, "messaging.batch.message_count") == 2
    creates = [s for s in spans if s.name.startswith("create ")]
    assert sorted(attr(s, "messaging.message.id") for s in creates) == sorted(
        str(j.id) for j in batch
    )
    assert all(child_of(s, send_batch) for s in creates)
    # The job `parent` enqueued from inside its attempt continues the batch's trace.
    (parent_run,) = [
        s
        for s in by_name(spans, "process default")
        if attr(s, "messaging.pgqueue.task") == "parent"
    ]
    nested_send = [s for s in by_name(spans, "send mail") if child_of(s, parent_run)]
    assert len(nested_send) == 1 and nested_send[0].context.trace_id == send_batch.context.trace_id


async def test_async_enqueue_and_tasks_without_parenting(
    clean_db: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = make_app(clean_db, provider, parent=False)
    try:
        job = await app.tasks["awork"].enqueue_async(2)
        assert await testing.drain_async(app) == 1
    finally:
        await app.close_async()
    spans = exporter.get_finished_spans()
    (send,) = by_name(spans, "send default")
    (process,) = by_name(spans, "process default")
    assert attr(process, "messaging.message.id") == str(job.id)
    assert process.parent is None and process.context.trace_id != send.context.trace_id
    assert [link.context.span_id for link in process.links] == [send.context.span_id]


def test_eager_mode_traces_too(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    app = make_app("postgresql://nobody@127.0.0.1:1/none", provider)
    with testing.eager(app):
        assert app.tasks["work"].enqueue(1).result == 2
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["inside", "process mail", "send mail"]


def test_batches_without_a_span_per_job(
    clean_db: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with make_app(clean_db, provider, batch_spans=False) as app:
        jobs = app.enqueue_many([app.tasks["work"].job(i) for i in range(3)])
        assert testing.drain(app) == 3
    spans = exporter.get_finished_spans()
    (send,) = by_name(spans, "send mail")
    assert not [s for s in spans if s.name.startswith("create")]
    assert {j.meta["traceparent"] for j in jobs} == {traceparent(send)}
    assert all(child_of(s, send) for s in by_name(spans, "process mail"))
