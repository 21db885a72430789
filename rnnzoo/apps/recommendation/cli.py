"""Recommendation on the command line: ``rnnzoo recommend NAME --history 2858,1196,260 [--k 10]
[--include-seen] [--json]``, the report of ``rnnzoo evaluate --split last`` (full-ranking
HR@10, NDCG@10, MRR@20, Recall@20; the popularity ranker on the same users beside it; the legacy
sampled numbers labelled so), and the harness's example calls. TF-free.

The functions take the Keras task or the onnxruntime runtime alike and go through their public
calls (``recommend``, ``evaluate``), so both backends print the same thing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from rnnzoo.apps.recommendation.data import PUBLISHED, SequenceData, read_history
from rnnzoo.apps.recommendation.inference import DEFAULT_K, popularity_metrics
from rnnzoo.errors import DataError

VERB = "recommend"
#: The metric ``rnnzoo evaluate`` leads with (``report_metrics`` name) and its direction.
HEADLINE = ("ndcg@10", "max")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Recommending the next items for a user from the items they interacted with, "
                "in time order, within the catalogue it was trained on.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Ranks only the items of its training catalogue; new items need retraining.",
    "Learns from interaction order alone (no ratings, text or user features); popular items "
    "are favoured, and a user with few interactions gets close to the popularity ranking.",
    "Validated by leave-one-out on the training file's last interactions; offline ranking "
    "metrics are not a measure of what users would choose.",
)
#: int8 ships when its NDCG@10 is at most 0.005 (absolute) below fp32's.
INT8_TOLERANCE = {"absolute": 0.005}


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rnnzoo recommend``."""
    parser.add_argument("--history", required=True, metavar="IDS|FILE",
                        help="the user's item ids, oldest first (2858,1196,260), or a file "
                        "of them")
    parser.add_argument("--k", type=int, default=DEFAULT_K,
                        help=f"how many items to recommend (default {DEFAULT_K})")
    parser.add_argument("--include-seen", dest="include_seen", action="store_true",
                        help="also recommend items already in the history")
    parser.add_argument("--json", action="store_true", help="one JSON object")


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """The top-k as a table (rank, item id, score, title) or one JSON object."""
    history = read_history(args.history, "--history")
    out = model.recommend(history, k=args.k, exclude_seen=not args.include_seen)
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if out["skipped"]:
        print(f"(not in the catalogue, not read: {', '.join(map(str, out['skipped']))})")
    for rank, (item, score, title) in enumerate(zip(out["items"], out["scores"],
                                                    out["titles"]), 1):
        print(f"{rank:>3}  {item:>8}  {score:.4f}  {title or ''}".rstrip())
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of ``rnnzoo evaluate`` of its own (``--split last``: leave-one-out)."""


def evaluate_reports(model: Any, data: SequenceData, split: str,
                     options: Mapping[str, Any]) -> list[dict]:
    """Leave-one-out full-ranking metrics through ``model.evaluate`` on the first
    ``options["limit"]`` users (all by default): each user's last interaction in the file
    given the rest (``dev`` and ``last`` are this split); the popularity ranker's numbers on
    the same users, and the published full-ranking numbers on ML-1M (test items), beside."""
    if split == "train":
        raise DataError("evaluate: the train split has no held-out items; use --split last")
    loo = data.split(split)
    limit = options.get("limit")
    histories, targets = loo.histories[:limit], loo.targets[:limit]
    if not histories:
        raise DataError(f"{data.description}: no user with 2 or more interactions to score")
    scores = model.evaluate(histories, targets, progress=options.get("progress", False))
    report: dict[str, Any] = dict(scores)
    report.update(split=split, data=data.description, benchmark=data.benchmark,
                  catalogue=int(model.preprocessor.size - 1),
                  popularity=popularity_metrics(model.preprocessor, histories, targets))
    bench = PUBLISHED.get(data.benchmark or "")
    if bench:
        report["published"] = {"protocol": bench["protocol"], "split": "test",
                               "values": bench["values"]}
    return [report]


def format_report(report: dict) -> str:
    """The full-ranking headline, the popularity floor, the legacy numbers labelled so, and
    the published test-item numbers beside."""
    pop = report.get("popularity") or {}
    lines = [f"HR@10 {report['hr@10']:.4f}   NDCG@10 {report['ndcg@10']:.4f}   MRR@20 "
             f"{report['mrr@20']:.4f}   Recall@20 {report['recall@20']:.4f}   (full ranking over "
             f"{report['catalogue']:,} items, seen items filtered; {report['users']:,} users, "
             f"last interaction of each)"]
    if pop:
        lines.append(f"  popularity ranker, same users: HR@10 {pop['hr@10']:.4f}   NDCG@10 "
                     f"{pop['ndcg@10']:.4f}   MRR@20 {pop['mrr@20']:.4f}")
    if "sampled100_hr@10" in report:
        lines.append(f"  legacy, 100 sampled negatives (inflated; old tables only): HR@10 "
                     f"{report['sampled100_hr@10']:.4f}   NDCG@10 "
                     f"{report['sampled100_ndcg@10']:.4f}")
    if report.get("unknown_targets"):
        lines.append(f"  {report['unknown_targets']} held-out items outside the catalogue "
                     "(counted as misses)")
    published = report.get("published")
    if published:
        values = " · ".join(f"{name} {v['hr@10']:.3f}/{v['ndcg@10']:.3f}"
                            for name, v in published["values"].items())
        lines.append(f"  published HR@10/NDCG@10 on the held-out test items "
                     f"({published['protocol']}): {values}")
    return "\n".join(lines)


def example_inputs() -> list:
    """Histories (item ids of the synthetic cycle) and options for the lifecycle harness."""
    return [{"history": [1, 2, 3]}, {"history": [7], "k": 3},
            {"history": [4, 5, 6, 7], "k": 5, "exclude_seen": False}, {"history": []}]


def example_outputs(model: Any, inputs: list) -> Any:
    """Each recommendation (ids, scores rounded to 5 decimals), and one stream step."""
    out = []
    for item in inputs:
        got = model.recommend(item["history"], k=item.get("k", DEFAULT_K),
                              exclude_seen=item.get("exclude_seen", True))
        out.append({"items": got["items"], "scores": [round(s, 5) for s in got["scores"]]})
    s = model.stream(k=3)
    s.step(1)
    out.append({"stream": s.step(2)["items"]})
    return out
