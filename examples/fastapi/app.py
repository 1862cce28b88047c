"""FastAPI and pgqueue: enqueue in the request's SQLAlchemy session, a worker in the lifespan.

Run it (PostgreSQL migrated with ``pgqueue migrate --dsn "$DATABASE_URL"`` first)::

    export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/shop
    python examples/fastapi/app.py --port 8000       # exit status 0 after SIGTERM
    uvicorn app:api --app-dir examples/fastapi        # the same app; after a clean
                                                      # shutdown uvicorn re-raises the
                                                      # SIGTERM (status 143)

* ``POST /signups`` inserts a signup and enqueues its welcome e-mail in one
  transaction: if the request fails after the enqueue, neither exists.
* The worker runs inside the server process, on its event loop, started and
  stopped by the lifespan. It installs no signal handlers (the server owns
  SIGTERM and SIGINT); when the server stops, the lifespan stops the worker
  gracefully: it claims nothing more, lets running jobs finish (within
  ``shutdown_grace``), records their outcomes, then returns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel
from sqlalchemy import String, update
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import pgqueue

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/shop")


def sqlalchemy_url(dsn: str) -> URL:
    """The libpq DSN as SQLAlchemy's async psycopg URL."""
    p = conninfo_to_dict(dsn)
    return URL.create(
        "postgresql+psycopg",
        username=p.get("user"),
        password=p.get("password"),
        host=p.get("host"),
        port=int(p["port"]) if p.get("port") else None,
        database=p.get("dbname"),
    )


engine = create_async_engine(sqlalchemy_url(DATABASE_URL))
Session = async_sessionmaker(engine, expire_on_commit=False)
queue = pgqueue.App(DATABASE_URL)


class Base(DeclarativeBase):
    pass


class Signup(Base):
    __tablename__ = "signups"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200))
    welcomed: Mapped[bool] = mapped_column(default=False)


@queue.task(queue="emails")
async def send_welcome(signup_id: int, delay: float = 0.0) -> dict[str, Any]:
    await asyncio.sleep(delay)  # stands for the e-mail provider's API call
    async with Session() as session, session.begin():
        await session.execute(update(Signup).where(Signup.id == signup_id).values(welcomed=True))
    return {"signup": signup_id}


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)  # the example's own table
    # The server owns the process's signals: the worker must not take them over.
    worker = asyncio.create_task(
        queue.run_worker_async(concurrency=4, shutdown_grace=10, install_signal_handlers=False)
    )
    try:
        yield
    finally:
        # The server is stopping: cancelling the worker's task stops it gracefully
        # (running jobs finish and are recorded, claimed-but-unstarted ones go back).
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await queue.close_async()
        await engine.dispose()


api = FastAPI(lifespan=lifespan)


async def session() -> AsyncIterator[AsyncSession]:
    async with Session() as db:
        yield db


class SignupIn(BaseModel):
    email: str
    delay: float = 0.0


@api.post("/signups", status_code=201)
async def create_signup(body: SignupIn, db: AsyncSession = Depends(session)) -> dict[str, int]:
    async with db.begin():  # the signup and its job commit together, or neither
        signup = Signup(email=body.email)
        db.add(signup)
        await db.flush()
        job = await send_welcome.options(connection=db).enqueue_async(signup.id, delay=body.delay)
        if body.email.endswith(".invalid"):
            raise HTTPException(422, "undeliverable address")  # rolls back both
    return {"signup": signup.id, "job": job.id}


@api.get("/signups/{signup_id}")
async def get_signup(signup_id: int, db: AsyncSession = Depends(session)) -> dict[str, Any]:
    signup = await db.get(Signup, signup_id)
    if signup is None:
        raise HTTPException(404, "no such signup")
    return {"signup": signup.id, "email": signup.email, "welcomed": signup.welcomed}


@api.get("/jobs/{job_id}")
async def get_job(job_id: int) -> dict[str, Any]:
    try:
        job = await queue.get_job_async(job_id)
    except pgqueue.JobNotFound:
        raise HTTPException(404, "no such job") from None
    return {"job": job.id, "status": job.status, "result": job.result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    import uvicorn

    # uvicorn handles SIGTERM itself (graceful: requests, then the lifespan's
    # shutdown), then raises it again for the handler it found: this one, so a
    # clean stop exits with status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(api, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
