"""Who may call which metadata RPC: the one table (loupe_common.internal_auth).

The gateway acts for end users (it has resolved their API key to an account); a trainer reads
the training set of its job and reports on it; the prediction service's recorder stores
predictions. An RPC missing here is refused to everyone.
"""
from __future__ import annotations

from loupe.v1 import metadata_pb2
from loupe_common.internal_auth import GATEWAY, PREDICTION, TRAINING, table

SERVICE_NAME = metadata_pb2.DESCRIPTOR.services_by_name["MetadataService"].full_name

G = (GATEWAY,)
ALLOW = {SERVICE_NAME: table(
    CreateAccount=G, ResolveKey=G,
    CreateProject=G, GetProject=G, ListProjects=G, UpdateProject=G, DeleteProject=G,
    CreateTag=G, GetTag=G, ListTags=G, DeleteTag=G, UpdateTag=G,
    AddImages=G, ListImages=G, DeleteImages=G, AddImageTags=G, DeleteImageTags=G,
    UpdateImageMetadata=G,
    CreateIteration=G, GetIteration=G, ListIterations=G, DeleteIteration=G, UpdateIteration=G,
    GetTrainingSet=(TRAINING,),
    StartTrainingAttempt=(TRAINING,),  # counts a job's starts, so one that crashes 3 times fails
    ReportProgress=(TRAINING,),
    # The gateway fails an iteration whose job Kafka refused; the trainer finishes the rest.
    FinishIteration=(GATEWAY, TRAINING),
    # The training hand-off: the gateway produces jobs, and its reconciler the ones left unsent.
    MarkTrainingJobSent=G, ClaimTrainingJobs=G, FailStaleIterations=G,
    PublishIteration=G, UnpublishIteration=G, GetPublishedIteration=G,
    RecordPrediction=(PREDICTION,),
    ExpirePredictions=(PREDICTION,),  # retention, run by every prediction replica
    ListPredictions=G, QueryPredictions=G, DeletePredictions=G, StoredPredictionQuota=G,
    ExistingProjects=G, ReferencedImages=G, ExistingIterations=G,  # the gateway's orphan sweep
    ImageHashes=G, DeleteImagesByHash=G,
)}
