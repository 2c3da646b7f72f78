"""gRPC servicer of the prediction service: protobuf in, predictor call, protobuf out."""
from __future__ import annotations

from loupe.v1 import prediction_pb2 as pb
from loupe.v1 import prediction_pb2_grpc as pbg
from loupe_common.errors import BadRequest


class PredictionServicer(pbg.PredictionServiceServicer):
    def __init__(self, predictor, backbone: str):
        self.predictor = predictor
        self.backbone = backbone

    def LoadIteration(self, request, context):
        if not request.artifact_key:
            raise BadRequest("iteration has no model artifact", "BadRequestIterationIsNotTrained")
        self.predictor.heads.load(request.iteration_id, request.artifact_key)
        return pb.LoadIterationResponse(backbone=self.backbone)

    def UnloadIteration(self, request, context):
        self.predictor.heads.drop(request.iteration_id)
        return pb.UnloadIterationResponse()

    def Classify(self, request, context):
        if not request.image:
            raise BadRequest("no image data", "BadRequestImageFormat")
        return self.predictor.classify(request)
