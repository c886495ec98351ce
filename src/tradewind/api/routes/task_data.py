"""What task tries leave behind: their logs (paged, readable while the try runs) and XComs."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tradewind.api.auth import requires
from tradewind.api.context import Principal, db_session, get_context
from tradewind.api.errors import BadRequest, responses
from tradewind.api.schemas import PageParams, pagination
from tradewind.db import pages
from tradewind.db import runs as db_runs
from tradewind.db import task_instances as db_tis
from tradewind.db import xcom as db_xcom
from tradewind.db.state_changes import TRY_IN_PROGRESS_STATES
from tradewind.errors import NotFound
from tradewind.executors.workload import TaskInstanceKey, default_log_path
from tradewind.serialization import xcom as xcom_codec

__all__ = ["router"]

router = APIRouter(tags=["TaskInstance"])

_TI_PATH = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}"
#: Bytes of log one page holds unless the caller asks for fewer.
DEFAULT_LOG_PAGE = 256 * 1024
_MAX_LOG_PAGE = 4 * 1024 * 1024


class TaskLogPage(BaseModel):
    """A piece of a try's log and where the next piece starts."""

    content: str
    continuation_token: str = Field(description="Pass as ?token= to read on from here.")
    end_of_log: bool = Field(description="The try has finished and everything was read.")


def _encode_token(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"pos": position}).encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode("ascii"))
        position = json.loads(raw)["pos"]
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError):
        raise BadRequest("malformed continuation token", field="token") from None
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise BadRequest("malformed continuation token", field="token")
    return position


def _read(path: Path, position: int, limit: int | None) -> tuple[bytes, bool]:
    """Bytes from ``position`` (up to ``limit``) and whether the file's end was reached."""
    try:
        with path.open("rb") as fh:
            fh.seek(position)
            data = fh.read() if limit is None else fh.read(limit + 1)
    except FileNotFoundError:
        return b"", True
    if limit is not None and len(data) > limit:
        return data[:limit], False
    return data, True


@router.get(
    _TI_PATH + "/logs/{task_try_number:int}",
    response_model=TaskLogPage,
    responses={
        **responses(400, 401, 403, 404),
        200: {"content": {"text/plain": {}}, "description": "A page of the log"},
    },
)
def get_log(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    request: Request,
    task_try_number: int = PathParam(..., ge=1, le=100_000),
    map_index: int = Query(-1, ge=-1, le=2**31 - 1),
    token: str | None = Query(None, max_length=200, description="From the previous page."),
    full_content: bool = Query(False, description="The whole log, ignoring token."),
    max_bytes: int = Query(DEFAULT_LOG_PAGE, ge=1, le=_MAX_LOG_PAGE),
    principal: Principal = Depends(requires("task_logs", "read")),
    session: Session = Depends(db_session),
) -> Any:
    """Read a try's log, a page at a time: follow ``continuation_token`` until
    ``end_of_log`` (while the try runs, new lines appear on later calls)."""
    db_runs.get_run(session, dag_id, dag_run_id)
    ti = db_tis.get_ti_by_key(session, dag_id, dag_run_id, task_id, map_index)
    if task_try_number > max(ti.try_number, 0):
        raise NotFound("task try", f"{dag_id}/{dag_run_id}/{task_id} try {task_try_number}")
    key = TaskInstanceKey(dag_id, dag_run_id, task_id, map_index, task_try_number)
    path = default_log_path(get_context(request).settings.logging.base_log_folder, key)
    running = task_try_number == ti.try_number and ti.state in TRY_IN_PROGRESS_STATES
    position = 0 if full_content or token is None else _decode_token(token)
    data, at_end = _read(path, position, None if full_content else max_bytes)
    if (running or not at_end) and b"\n" in data and not data.endswith(b"\n"):
        # Hand out whole lines: the rest (maybe half a character) comes with the next page.
        data = data[: data.rindex(b"\n") + 1]
        at_end = False
    page = TaskLogPage(
        content=data.decode("utf-8", errors="replace"),
        continuation_token=_encode_token(position + len(data)),
        end_of_log=at_end and not running,
    )
    if "text/plain" in request.headers.get("accept", ""):
        return PlainTextResponse(
            page.content,
            headers={
                "X-Continuation-Token": page.continuation_token,
                "X-End-Of-Log": str(page.end_of_log).lower(),
            },
        )
    return page


class XComEntry(BaseModel):
    """An XCom value's key and where it came from."""

    key: str
    timestamp: datetime
    execution_date: datetime | None
    logical_date: datetime | None
    map_index: int
    task_id: str
    dag_id: str
    dag_run_id: str


class XComEntryWithValue(XComEntry):
    """An XCom with its value: the stored JSON (special types tagged), or a string with
    ``stringify``."""

    value: Any


class XComCollection(BaseModel):
    """A page of XComs."""

    xcom_entries: list[XComEntry]
    total_entries: int


_XCOM_ORDER = pages.order_fields("xcom_entries")


@router.get(
    _TI_PATH + "/xcomEntries",
    response_model=XComCollection,
    responses=responses(400, 401, 403, 404),
)
def get_xcom_entries(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    page: PageParams = Depends(pagination("key", _XCOM_ORDER)),
    map_index: int | None = Query(None, ge=-1, le=2**31 - 1),
    xcom_key: str | None = Query(None, max_length=512),
    principal: Principal = Depends(requires("xcoms", "read")),
    session: Session = Depends(db_session),
) -> XComCollection:
    """List the XComs of a task in a run."""
    run = db_runs.get_run(session, dag_id, dag_run_id)
    result = pages.xcom_page(
        session,
        dag_id,
        dag_run_id,
        task_id,
        limit=page.limit,
        offset=page.offset,
        order_by=page.order_by,
        map_index=map_index,
        key=xcom_key,
    )
    return XComCollection(
        xcom_entries=[
            XComEntry(
                key=x.key,
                timestamp=x.created_at,
                execution_date=run.logical_date,
                logical_date=run.logical_date,
                map_index=x.map_index,
                task_id=x.task_id,
                dag_id=x.dag_id,
                dag_run_id=x.run_id,
            )
            for x in result.rows
        ],
        total_entries=result.total,
    )


@router.get(
    _TI_PATH + "/xcomEntries/{xcom_key}",
    response_model=XComEntryWithValue,
    responses=responses(400, 401, 403, 404),
)
def get_xcom_entry(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    xcom_key: str,
    map_index: int = Query(-1, ge=-1, le=2**31 - 1),
    stringify: bool = Query(False, description="The value as Python would print it."),
    principal: Principal = Depends(requires("xcoms", "read")),
    session: Session = Depends(db_session),
) -> XComEntryWithValue:
    """Get one XCom with its value."""
    run = db_runs.get_run(session, dag_id, dag_run_id)
    rows = db_xcom.list_xcoms(
        session, dag_id, dag_run_id, task_id=task_id, map_index=map_index, key=xcom_key
    )
    if not rows:
        where = f"{dag_id}/{dag_run_id}/{task_id}" + (f"[{map_index}]" if map_index >= 0 else "")
        raise NotFound("XCom", f"{where} key {xcom_key!r}")
    row = rows[0]
    value: Any = json.loads(row.value)
    if stringify:
        value = str(xcom_codec.decode(row.value))
    return XComEntryWithValue(
        key=row.key,
        timestamp=row.created_at,
        execution_date=run.logical_date,
        logical_date=run.logical_date,
        map_index=row.map_index,
        task_id=row.task_id,
        dag_id=row.dag_id,
        dag_run_id=row.run_id,
        value=value,
    )
