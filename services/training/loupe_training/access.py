"""Who may call which training RPC (loupe_common.internal_auth): the gateway only."""
from __future__ import annotations

from loupe.v1 import training_pb2
from loupe_common.internal_auth import GATEWAY, table

SERVICE_NAME = training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name

ALLOW = {SERVICE_NAME: table(
    DescribeTrainer=(GATEWAY,),
    ExportIteration=(GATEWAY,),
)}
