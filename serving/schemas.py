"""Request and response schemas of the GemiRec service (pydantic; the OpenAPI document comes from them).

Limits bound the work one request can ask for, so a malformed or hostile request costs little and never
reaches the model with shapes it cannot take. Requests are strict (no "3" for 3, no unknown fields):
a client bug should fail loudly with a 422, not be guessed at.

    POST /recommend  {"history": [12, 40, 7], "n": 10}        explicit history (source item ids, oldest first)
    POST /recommend  {"user_id": 7, "n": 10}                  history from the Feast online store
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_HISTORY = 1000  # items accepted per request; the model itself reads only its last `maxlen`
MAX_N = 500
MAX_K = 32
MAX_ID = 2**53  # ids stay exact in every JSON client (doubles) and in int64

Id = Annotated[int, Field(ge=0, le=MAX_ID)]

RECOMMEND_EXAMPLE = {"history": [12, 40, 7], "n": 10}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _ByUser(_Request):
    user_id: Id | None = Field(None, description="Read the history from the Feast online store "
                                                 "(when the service has one); logged either way.")
    history: list[Id] | None = Field(None, max_length=MAX_HISTORY,
                                     description="Source item ids, oldest first; overrides the stored one.")
    unknown_items: Literal["reject", "drop"] = Field(
        "reject", description="Item ids of an explicit history that the model does not know: 'reject' "
                              "answers 422 naming them, 'drop' ignores them and lists them in the response.")

    @model_validator(mode="after")
    def _one_source(self):
        if self.user_id is None and self.history is None:
            raise ValueError("give a user_id, a history, or both")
        return self


class RecommendRequest(_ByUser):
    model_config = ConfigDict(json_schema_extra={"example": RECOMMEND_EXAMPLE})

    n: int = Field(50, ge=1, le=MAX_N, description="Items to return.")
    k: int | None = Field(None, ge=1, le=MAX_K, description="Interests to generate (default: the model's K).")


class InterestsRequest(_ByUser):
    model_config = ConfigDict(json_schema_extra={"example": {"history": [12, 40, 7], "k": 4}})

    k: int | None = Field(None, ge=1, le=MAX_K, description="Interests to generate (default: the model's K).")


class SimilarItemsRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"example": {"item_id": 12, "n": 10}})

    item_id: Id
    n: int = Field(20, ge=1, le=MAX_N)


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


class Problem(BaseModel):
    """Body of every 4xx answer the service itself writes."""

    error: str
    detail: dict | list | None = None
