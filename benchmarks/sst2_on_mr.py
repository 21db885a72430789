"""Does an SST-2 classifier generalise beyond SST? Accuracy on the MR movie-review snippets
(Pang & Lee 2005) that are NOT in SST-2's training set (SST was built from the same Rotten
Tomatoes snippets, so the overlap is removed first: lower-cased, punctuation stripped).

    python benchmarks/sst2_on_mr.py sentiment_bilstm.sst2 [--data ../shared/data/sentiment]

Prints the number of held-out snippets and the accuracy (labels matched by name), for the Keras
model and, with --runtime, for its ONNX bundle as well.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())  # tokenisation differs: "doesn't", "does n't"


def held_out_mr(data: Path) -> tuple[list[str], list[str]]:
    """MR snippets (texts, label names) whose normalised text is not an SST-2 train row."""
    from rnnzoo.data.readers import read_delimited, read_mr

    texts, labels = read_mr(data / "MR")
    sst, _ = read_delimited(data / "SST-2" / "train.tsv", text_column="sentence",
                            allowed_labels=("0", "1"))
    seen = {_key(t) for t in sst}
    names = ["negative", "positive"]
    keep = [(t, names[y]) for t, y in zip(texts, labels) if _key(t) not in seen]
    return [t for t, _ in keep], [y for _, y in keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", help="a text-classification preset trained on SST-2")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "sentiment"))
    args = parser.parse_args()

    import rnnzoo

    texts, labels = held_out_mr(Path(args.data))
    task = rnnzoo.from_preset(args.preset)
    report = task.evaluate(texts, labels)
    print(f"{args.preset} on MR snippets not in SST-2 train: n={len(texts)}, "
          f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}")


if __name__ == "__main__":
    main()
