"""Classification with a published iteration: backbone embedding from TorchServe + the head."""
from __future__ import annotations

import collections
import threading
import uuid

from loupe.v1 import prediction_pb2 as pb
from loupe.v1 import storage_pb2 as spb
from loupe_common.timeutil import to_proto, utcnow
from loupe_model.head import Head


class HeadCache:
    """Iteration heads by iteration id, least recently used evicted."""

    def __init__(self, storage, capacity: int):
        self.storage = storage
        self.capacity = capacity
        self._heads: collections.OrderedDict[str, Head] = collections.OrderedDict()
        self._lock = threading.Lock()

    def load(self, iteration_id: str, artifact_key: str) -> Head:
        with self._lock:
            head = self._heads.get(iteration_id)
            if head is not None:
                self._heads.move_to_end(iteration_id)
                return head
        data = self.storage.GetObject(spb.GetObjectRequest(key=artifact_key)).data
        head = Head.from_bytes(data)
        with self._lock:
            self._heads[iteration_id] = head
            while len(self._heads) > self.capacity:
                self._heads.popitem(last=False)
        return head

    def drop(self, iteration_id: str) -> None:
        with self._lock:
            self._heads.pop(iteration_id, None)


class Predictor:
    def __init__(self, heads: HeadCache, torchserve, record=None):
        self.heads = heads
        self.torchserve = torchserve
        self.record = record  # callable(PredictionRecord) -> None, asynchronous

    def classify(self, request: pb.ClassifyRequest) -> pb.ClassifyResponse:
        head = self.heads.load(request.iteration_id, request.artifact_key)
        embedding = self.torchserve.embed(request.image)
        probs = head.predict_proba(embedding[None, :])[0]
        order = sorted(range(len(probs)), key=lambda i: -float(probs[i]))
        predictions = [
            pb.TagProbability(tag_id=head.tag_ids[i], tag_name=head.tag_names[i], probability=float(probs[i]))
            for i in order
        ]
        response = pb.ClassifyResponse(
            prediction_id=str(uuid.uuid4()), project_id=request.project_id,
            iteration_id=request.iteration_id, created=to_proto(utcnow()), predictions=predictions,
        )
        if request.store and self.record is not None:
            self.record(pb.PredictionRecord(
                prediction_id=response.prediction_id, project_id=request.project_id,
                iteration_id=request.iteration_id, image=request.image,
                application=request.application, created=response.created, predictions=predictions,
            ))
        return response
