"""Dead letters: rejected MQTT messages with their reason, for people to inspect."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from api.deps import ServicesDep, require
from ingest.dead_letters import DeadLetter
from ingest.model import RejectReason
from people.models import Role

# Ids are 64-bit: a larger number is a bad request, not a database overflow (a 500).
MAX_ID = 2**63 - 1
DeadLetterIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="A dead letter's id")]

router = APIRouter(
    prefix="/dead-letters", tags=["dead letters"], dependencies=[require(Role.VIEWER)]
)


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: RejectReason
    detail: str
    content_type: str | None
    payload_size: int = Field(description="Size of the original payload, bytes")
    payload_text: str | None = Field(description="The payload as UTF-8 text, when it is text")
    payload_base64: str = Field(description="The stored payload (capped), base64")
    replay_count: int
    replayed_at: datetime | None

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterOut:
        try:
            text: str | None = letter.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return cls(
            id=letter.id,
            received_at=letter.received_at,
            topic=letter.topic,
            device_id=letter.device_id,
            reason=RejectReason(letter.reason),
            detail=letter.detail,
            content_type=letter.content_type,
            payload_size=letter.payload_size,
            payload_text=text,
            payload_base64=base64.b64encode(letter.payload).decode("ascii"),
            replay_count=letter.replay_count,
            replayed_at=letter.replayed_at,
        )


@router.get("", response_model=list[DeadLetterOut], summary="Dead letters, newest first")
def list_dead_letters(
    services: ServicesDep,
    device_id: Annotated[str | None, Query(max_length=128)] = None,
    reason: Annotated[RejectReason | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Page: ids below this")
    ] = None,
) -> list[DeadLetterOut]:
    letters = services.dead_letters.list(
        device_id=device_id,
        reason=reason.value if reason else None,
        limit=limit,
        before_id=before_id,
    )
    return [DeadLetterOut.of(letter) for letter in letters]


class ReplayOut(BaseModel):
    replayed: DeadLetterOut
    topic: str = Field(description="Where the payload was published again (QoS 1)")


# Replaying changes what is stored, so it takes a technician, not a viewer.
replay_router = APIRouter(
    prefix="/dead-letters", tags=["dead letters"], dependencies=[require(Role.TECHNICIAN)]
)


@replay_router.post(
    "/{dead_letter_id}/replay",
    response_model=ReplayOut,
    status_code=202,
    summary="Publish a dead letter's payload again, after the cause was fixed",
    description="The payload goes back to its original topic with QoS 1 and passes the whole "
    "pipeline again; if it is still bad, a new dead letter records why. Payloads that were "
    "stored truncated cannot be replayed (409).",
)
def replay_dead_letter(services: ServicesDep, dead_letter_id: DeadLetterIdPath) -> ReplayOut:
    letter = services.dead_letters.get(dead_letter_id)
    if letter is None:
        raise HTTPException(404, f"no dead letter {dead_letter_id}")
    if letter.payload_size > len(letter.payload):
        raise HTTPException(
            409,
            f"payload was truncated to {len(letter.payload)} of "
            f"{letter.payload_size} bytes; it cannot be replayed",
        )
    if "+" in letter.topic or "#" in letter.topic or not letter.topic:
        raise HTTPException(409, "the original topic cannot be published to")
    try:
        publisher = services.publisher()
        publisher.publish(letter.topic, letter.payload, letter.content_type, timeout_s=10)
        if not publisher.wait_acked(10):
            raise HTTPException(503, "the broker did not acknowledge the replay")
    except (OSError, TimeoutError) as exc:
        raise HTTPException(503, f"broker unavailable: {exc}") from exc
    services.dead_letters.mark_replayed(letter.id)
    updated = services.dead_letters.get(letter.id)
    assert updated is not None
    return ReplayOut(replayed=DeadLetterOut.of(updated), topic=letter.topic)


@router.get("/{dead_letter_id}", response_model=DeadLetterOut)
def get_dead_letter(services: ServicesDep, dead_letter_id: DeadLetterIdPath) -> DeadLetterOut:
    letter = services.dead_letters.get(dead_letter_id)
    if letter is None:
        raise HTTPException(404, f"no dead letter {dead_letter_id}")
    return DeadLetterOut.of(letter)
