"""The performance dict of `loupe_model.evaluate.performance` as the `loupe.v1.Performance`
message (the trainer stores it; the gateway recomputes it at other thresholds)."""
from __future__ import annotations

from loupe.v1 import metadata_pb2 as mpb


def performance_proto(perf: dict) -> mpb.Performance:
    return mpb.Performance(
        threshold=perf["threshold"],
        precision=perf["precision"],
        precision_std_deviation=perf["precision_std_deviation"],
        recall=perf["recall"],
        recall_std_deviation=perf["recall_std_deviation"],
        average_precision=perf["average_precision"],
        per_tag=[
            mpb.TagPerformance(
                tag_id=t["id"], name=t["name"], precision=t["precision"],
                precision_std_deviation=t["precision_std_deviation"], recall=t["recall"],
                recall_std_deviation=t["recall_std_deviation"],
                average_precision=t["average_precision"], image_count=t["image_count"],
            )
            for t in perf["per_tag"]
        ],
    )
