"""Who may call which prediction RPC (loupe_common.internal_auth): the gateway only."""
from __future__ import annotations

from loupe.v1 import prediction_pb2
from loupe_common.internal_auth import GATEWAY, table

SERVICE_NAME = prediction_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name

ALLOW = {SERVICE_NAME: table(
    LoadIteration=(GATEWAY,),
    UnloadIteration=(GATEWAY,),
    Classify=(GATEWAY,),
)}
