"""gRPC servicer of the training service (status, exports): protobuf in, trainer or exporter call, protobuf out."""
from __future__ import annotations

from loupe.v1 import training_pb2 as pb
from loupe.v1 import training_pb2_grpc as pbg


class TrainingServicer(pbg.TrainingServiceServicer):
    def __init__(self, trainer, device: str, exporter=None, assigned_partitions=lambda: 0):
        self.trainer = trainer
        self.device = device
        self.exporter = exporter
        self.assigned_partitions = assigned_partitions

    def DescribeTrainer(self, request, context):
        return pb.DescribeTrainerResponse(
            trainer_id=self.trainer.trainer_id, device=self.device,
            current_iteration_id=self.trainer.current_iteration,
            jobs_completed=self.trainer.jobs_completed,
            assigned_partitions=self.assigned_partitions(),
        )

    def ExportIteration(self, request, context):
        key, size = self.exporter.export(
            request.project_id, request.iteration_id, request.artifact_key, request.platform,
            request.flavor,
        )
        return pb.ExportIterationResponse(export_key=key, size_bytes=size)
