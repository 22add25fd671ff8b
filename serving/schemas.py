"""Request and response schemas of the GemiRec service (pydantic; the OpenAPI document comes from them).

Limits bound the work one request can ask for, so a malformed or hostile request costs little and never
reaches the model with shapes it cannot take. Requests are strict (no "3" for 3, no unknown fields):
a client bug should fail loudly with a 422, not be guessed at.

    POST /recommend  {"history": [12, 40, 7], "n": 10}        explicit history (source item ids, oldest first)
    POST /recommend  {"user_id": 7, "n": 10}                  history from the Feast online store
    POST /events     {"events": [{"user_id": 7, "item_id": 12, "timestamp": 1767225600}]}

The JSON schemas say everything the validators check, so a client generated from the OpenAPI document
(serving/openapi.py) never sends what the service refuses: the "a user_id or a history" rule of the model
validator below is the `anyOf` that `source_rule` adds to the request schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

MAX_HISTORY = 1000  # items accepted per request; the model itself reads only its last `maxlen`
MAX_N = 500
MAX_K = 32
MAX_ID = 2**53  # ids stay exact in every JSON client (doubles) and in int64

MAX_EVENTS = 10_000  # events per POST /events
MAX_TIME = 2**33  # seconds since the epoch (year 2242): still a pandas nanosecond timestamp



def _integral(value):
    """2025.0 is the integer 2025 to JSON Schema (and to JavaScript clients), so it is one here too; strict
    mode still refuses 2025.5, "2025" and true."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def Int(low: int, high: int):  # noqa: N802 - a type
    """An integer in [low, high]. The bounds come before the validator: after it, pydantic would write them
    into the JSON schema as "ge"/"le", which no client reads."""
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(_integral)]


Id = Int(0, MAX_ID)


def source_rule(schema: dict, by_user: bool = True) -> dict:
    """The JSON-schema form of `_ByUser._one_source`: a non-null user_id or a non-null history (both null,
    or both missing, is refused). ``by_user=False`` (a service without a feature store, which cannot look a
    user up) leaves only the history branch, so the document promises no more than the service does."""
    history = {"required": ["history"], "properties": {"history": {"type": "array"}}}
    user = {"required": ["user_id"], "properties": {"user_id": {"type": "integer"}}}
    schema["anyOf"] = [user, history] if by_user else [history]
    return schema


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _ByUser(_Request):
    model_config = ConfigDict(json_schema_extra=source_rule)

    user_id: Id | None = Field(None, description="Read the history from the Feast online store "
                                                 "(when the service has one); logged either way.")
    history: list[Id] | None = Field(None, max_length=MAX_HISTORY,
                                     description="Source item ids, oldest first; overrides the stored one.")
    unknown_items: Literal["reject", "drop"] = Field(
        "reject", description="Item ids of an explicit history that the model does not know: 'reject' "
                              "answers 404 naming them, 'drop' ignores them and lists them in the response.")

    @model_validator(mode="after")
    def _one_source(self):
        if self.user_id is None and self.history is None:
            raise ValueError("give a user_id, a history, or both")
        return self


class RecommendRequest(_ByUser):
    n: Int(1, MAX_N) = Field(50, description="Items to return.")
    k: Int(1, MAX_K) | None = Field(None, description="Interests to generate (default: the model's K).")


class InterestsRequest(_ByUser):
    k: Int(1, MAX_K) | None = Field(None, description="Interests to generate (default: the model's K).")


class SimilarItemsRequest(_Request):
    item_id: Id
    n: Int(1, MAX_N) = 20


class Interest(BaseModel):
    index: int = Field(description="k: the rank of this interest among the generated ones.")
    code: list[int] = Field(description="The interest's code path in the dictionary (one entry per level).")
    prob: float = Field(description="Generator probability, renormalised over the interests returned.")
    label: str = Field(description="Readable name: the code's most common categories.")


class ItemInterest(BaseModel):
    index: int = Field(description="k of the interest that retrieved the item; -1: the user's general "
                                   "taste (the plain user vector), a cold start, or a model without "
                                   "interests.")
    code: list[int] | None = None
    prob: float | None = None
    label: str


class RecommendedItem(BaseModel):
    item_id: int
    score: float = Field(description="GemiRec's mixture merge: the mixture probability the list is ranked "
                                     "by. Other merges: the inner product with the query the item came from "
                                     "(the quota merge interleaves lists, so it need not decrease). Cold "
                                     "start: the item's share of training interactions.")
    interest: ItemInterest


class _Answer(BaseModel):
    request_id: str
    model_version: str
    user_id: int | None
    cold_start: bool = Field(description="No usable history (unknown user, empty history, or every item "
                                         "unknown): most popular items, no interests.")
    history_len: int = Field(description="History items the model used.")
    unknown_items: list[int] = Field(description="History items the model does not know (ignored).")


class InterestsResponse(_Answer):
    interests: list[Interest]


class RecommendResponse(InterestsResponse):
    items: list[RecommendedItem]


class SimilarItem(BaseModel):
    item_id: int
    score: float = Field(description="Inner product of the two items' scoring vectors.")
    interest: ItemInterest = Field(description="The item's own interest code (index -1: not generated).")


class SimilarItemsResponse(BaseModel):
    model_version: str
    item_id: int
    items: list[SimilarItem]


class Event(_Request):
    user_id: Id
    item_id: Id = Field(description="Source item id (any item: ones the model does not know yet are kept "
                                    "for the next training).")
    timestamp: Int(0, MAX_TIME) = Field(description="When it happened: seconds since the epoch, UTC.")


class EventsRequest(_Request):
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    received: int
    accepted: int = Field(description="New events: in the users' online histories and the pushed-event log.")
    duplicates: int = Field(description="Already pushed (same user, item and time): nothing written.")
    rejected: int = Field(description="Malformed rows the store refused; none was written.")
    late: int = Field(description="Accepted, but older than the user's online history: in the log only.")
    users_updated: int
    malformed_examples: list[str]
    seconds: float


class Problem(BaseModel):
    """Body of every error the service writes (4xx, and 503 while it cannot answer)."""

    error: str = Field(description="What was wrong, in words.")
    detail: Any = Field(None, description="Machine-readable specifics: pydantic's errors for an invalid "
                                          "body, the unknown ids, the reload state.")
