"""The items API: PostgreSQL is the truth, Redis a cache-aside copy of single items.

Reads of one item try Redis first and fill it on a miss; writes go to
PostgreSQL and then drop the cached copy. Item JSON is built once and the same
bytes are cached and served, so a cache hit costs one Redis round trip and no
serialisation. Lists always come from PostgreSQL (keyset pagination).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..errors import ApiError
from ..repository import MAX_ID, decode_cursor, encode_cursor, to_json
from ..services import Services, services

router = APIRouter(tags=["items"])

ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
Svc = Annotated[Services, Depends(services)]


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    value: str = Field(max_length=10_000)


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _not_found(item_id: int) -> ApiError:
    return ApiError(404, "not_found", f"item {item_id} not found")


@router.post("/items", status_code=201)
async def create_item(item: ItemIn, svc: Svc) -> Response:
    row = await svc.items.create(item.name, item.value)
    return _json(to_json(row), 201)


@router.get("/items/{item_id}")
async def get_item(item_id: ItemId, svc: Svc) -> Response:
    key = svc.cache.item_key(item_id)
    cached = await svc.cache.get(key)
    if cached is not None:
        return _json(cached)
    row = await svc.items.get(item_id)
    if row is None:
        raise _not_found(item_id)
    body = to_json(row)
    await svc.cache.set(key, body)
    return _json(body)


@router.put("/items/{item_id}")
async def update_item(item_id: ItemId, item: ItemIn, svc: Svc) -> Response:
    row = await svc.items.update(item_id, item.name, item.value)
    await svc.cache.invalidate(svc.cache.item_key(item_id))
    if row is None:
        raise _not_found(item_id)
    return _json(to_json(row))


@router.delete("/items/{item_id}", status_code=204)
async def delete_item(item_id: ItemId, svc: Svc) -> Response:
    deleted = await svc.items.delete(item_id)
    await svc.cache.invalidate(svc.cache.item_key(item_id))
    if not deleted:
        raise _not_found(item_id)
    return Response(status_code=204)


@router.get("/items")
async def list_items(
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> JSONResponse:
    after_id = 0
    if cursor:
        try:
            after_id = decode_cursor(cursor)
        except ValueError:
            raise ApiError(422, "validation_error", "cursor: invalid cursor") from None
    items, next_after = await svc.items.page(after_id, limit)
    next_cursor = encode_cursor(next_after) if next_after is not None else None
    return JSONResponse({"items": items, "next_cursor": next_cursor})
