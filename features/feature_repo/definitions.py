"""Feast objects of GemiRec: entities, parquet sources, feature views and versioned feature services.

Source paths are relative: Feast resolves them against the repo path, which features/store.py sets to a
run-specific store folder, so the same declarations serve the demo, the flow and every test's tmp dir.
Every view has ttl 0 (never expires): histories and catalogues stay valid however old the log is.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.types import Array, Int64, String, UnixTimestamp
from feast.value_type import ValueType

SOURCE_DIR = "data"
NEVER_EXPIRES = timedelta(0)

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64,
              description="a user of the event log (source id)")
item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64,
              description="an item of the catalogue (source id)")


def _source(name: str) -> FileSource:
    # `created` breaks ties between rows with the same event time (re-ingested or re-trained rows)
    return FileSource(name=f"{name}_source", path=f"{SOURCE_DIR}/{name}.parquet",
                      timestamp_field="event_timestamp", created_timestamp_column="created")


# Fresh events reach the online history through this push source (features/push.py) without a
# materialization; the parquet file stays the batch source that training and materialization read.
user_history_push = PushSource(name="user_history_push", batch_source=_source("user_history"))

user_history = FeatureView(
    name="user_history",
    entities=[user],
    ttl=NEVER_EXPIRES,
    schema=[
        # one row per event: the user's most recent items up to and including that event, oldest first
        Field(name="item_ids", dtype=Array(Int64)),
        Field(name="history_length", dtype=Int64, description="events so far, not capped"),
        Field(name="last_event_time", dtype=UnixTimestamp),
    ],
    source=user_history_push,
    online=True,
)

item_profile = FeatureView(
    name="item_profile",
    entities=[item],
    ttl=NEVER_EXPIRES,
    schema=[
        Field(name="category", dtype=Int64, description="-1 = unknown"),
        Field(name="attributes", dtype=Array(Int64)),
        # a statistic of the whole ingested log: serving/monitoring only, see gemirec_training_v1
        Field(name="popularity", dtype=Int64),
    ],
    source=_source("item_profile"),
    online=True,
)

item_interest = FeatureView(
    name="item_interest",
    entities=[item],
    ttl=NEVER_EXPIRES,
    schema=[
        Field(name="interest_code", dtype=Array(Int64), description="one code per dictionary level"),
        Field(name="model_version", dtype=String, description="registry tag of the model that wrote it"),
    ],
    source=_source("item_interest"),
    online=True,
)

# Training joins item side information onto every event as of the event's time. Popularity stays out:
# it counts the whole log, so it would leak later events into earlier training rows.
gemirec_training_v1 = FeatureService(
    name="gemirec_training_v1",
    features=[item_profile[["category", "attributes"]]],
    description="point-in-time item side information for the training set",
)

gemirec_serving_v1 = FeatureService(
    name="gemirec_serving_v1",
    features=[user_history],
    description="what the online service reads per request: the user's recent history",
)
