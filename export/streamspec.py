"""The ``stream`` object of ``bundle.json``: which inputs of a graph are recurrent state, and how a
caller outside rnnzoo (onnxruntime-node, C++) carries it (TF-free, numpy-free).

Derived generically from each graph's inputs and outputs: an input ``state_<i>`` that the same
graph returns as ``new_state_<i>`` is state; its initial value is ``"zeros"``, or the output
``state_<i>`` of another graph of the bundle (a translator's encoder gives its decoder's first
state). Any other input that another graph outputs (``encoder_outputs``) is fed from there,
unchanged at every step. A task type may add per-graph facts the names cannot tell (how to
start, which output positions are real symbols) through ``Task._stream_manifest()``.

Example (the char LM's one-step ``decoder``, abridged)::

    "stream": {"about": "...", "graphs": {"decoder": {
      "state": [{"input": "state_0", "output": "new_state_0", "dtype": "float32",
                 "shape": ["batch", 512], "initial": "zeros"}, ...],
      "inputs": [{"name": "char", "dtype": "int32", "shape": ["batch"]}],
      "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 128]}],
      "start": {"input": "char", "feed": 1, "symbol": "\\n", ...},
      "symbols": {"input": "char", "output": "logits", "count": 66,
                  "vocabulary": "assets/charlm.json", "key": "symbols"}}}}
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rnnzoo.export.errors import BundleError

from rnnzoo.errors import short_repr

STATE_INPUT = re.compile(r"state_(\d+)")
ABOUT = ("Graphs listed here carry recurrent state. Call one step (or chunk) at a time: feed "
         "each 'state' input (zeros of its shape with 'batch' set to your batch size, or the "
         "named output of another graph when 'initial' says so) and feed its 'output' back as "
         "that input on the next call. Inputs with 'from' are another graph's outputs, fed "
         "unchanged at every step.")
_DERIVED = ("state", "inputs", "outputs")
FIX = "re-export the bundle (or run python -m rnnzoo.export.migrate on it)"


def _tensor(spec: Mapping[str, Any]) -> dict:
    return {"name": spec["name"], "dtype": spec["dtype"], "shape": list(spec["shape"])}


def describe_stream(graphs: Mapping[str, Any],
                    hints: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
    """The ``stream`` object for a manifest's ``graphs`` (each with ``inputs``/``outputs`` of
    ``{"name", "dtype", "shape"}``), with the task's per-graph ``hints`` added. A graph with no
    state is not listed; ``graphs`` is then empty (the bundle carries no state)."""
    producers: dict[str, list[str]] = {}
    for name, g in graphs.items():
        for out in g["outputs"]:
            producers.setdefault(out["name"], []).append(name)

    def source(tensor: str, graph: str) -> str | None:
        return next((p for p in producers.get(tensor, ()) if p != graph), None)

    described: dict[str, dict] = {}
    for name, g in graphs.items():
        returned = {o["name"] for o in g["outputs"]}
        state = [i for i in g["inputs"] if STATE_INPUT.fullmatch(i["name"])
                 and f"new_{i['name']}" in returned]
        if not state:
            continue
        state.sort(key=lambda i: int(STATE_INPUT.fullmatch(i["name"]).group(1)))
        carried = {i["name"] for i in state} | {f"new_{i['name']}" for i in state}
        entries = []
        for i in state:
            src = source(i["name"], name)
            entries.append({"input": i["name"], "output": f"new_{i['name']}",
                            "dtype": i["dtype"], "shape": list(i["shape"]),
                            "initial": {"graph": src, "output": i["name"]} if src else "zeros"})
        inputs = []
        for i in g["inputs"]:
            if i["name"] in carried:
                continue
            entry = _tensor(i)
            src = source(i["name"], name)
            if src:
                entry["from"] = {"graph": src, "output": i["name"]}
            inputs.append(entry)
        outputs = [_tensor(o) for o in g["outputs"] if o["name"] not in carried]
        described[name] = {"state": entries, "inputs": inputs, "outputs": outputs}
    for name, extra in (hints or {}).items():
        if name not in described:
            raise ValueError(f"stream hints for graph {name!r}, which carries no state "
                             f"(stateful graphs: {', '.join(described) or 'none'})")
        clash = sorted(set(extra) & set(_DERIVED))
        if clash:
            raise ValueError(f"stream hints for {name!r} may not replace {clash}")
        described[name].update(copy.deepcopy(dict(extra)))
    return {"about": ABOUT, "graphs": described}


def token_decoder_facts(*, words: Sequence[str], vocabulary: str, start: int, end: int,
                        max_steps: int, never: Sequence[int] = (), what: str = "words",
                        context: str = "the encoder") -> dict:
    """The ``start``, ``end`` and ``symbols`` facts of a one-step token decoder (translator,
    captioner): ``words`` is the output vocabulary (``vocabulary``'s ``vocab`` list, id 0
    padding, id 1 unknown), ``start``/``end`` the ids of ``<s>``/``</s>``, ``max_steps`` the
    decoder calls rnnzoo makes at most per output, ``never`` the ids rnnzoo never chooses.
    For a ``Task._stream_manifest`` hook."""
    return {
        "start": {"input": "token", "feed": int(start), "symbol": words[start],
                  "note": f"once {context} has run: feed this id first, then at each step the "
                          "id chosen from the previous step's logits"},
        "end": {"output": "logits", "id": int(end), "symbol": words[end],
                "max_steps": int(max_steps),
                "note": "stop when this id is chosen (it is not part of the text), or after "
                        "max_steps decoder calls"},
        "symbols": {"input": "token", "output": "logits", "count": len(words),
                    "vocabulary": vocabulary, "key": "vocab", "pad_id": 0, "unknown_id": 1,
                    "never": sorted(int(i) for i in never),
                    "note": f"ids in and output positions index vocabulary[key]; positions "
                            f"from count on are never {what} (the graph is sized by a cap); "
                            "rnnzoo never chooses the ids in 'never'; the text is the chosen "
                            "ids' words before the end id"},
    }


def check_stream(manifest: Mapping[str, Any], where: str) -> dict:
    """The manifest's ``stream`` graphs, checked against its ``graphs`` (a bundle exported
    before ``stream`` existed gets the derived description). Raises ``BundleError`` when the
    description does not match the graphs' inputs and outputs, or a hint is malformed."""
    try:
        derived = describe_stream(manifest["graphs"])["graphs"]
    except (KeyError, TypeError, AttributeError, ValueError):
        raise BundleError(f"{where}: 'graphs' must list each graph's inputs and outputs "
                          f"(name, dtype, shape); {FIX}") from None
    stream = manifest.get("stream")
    if stream is None:
        return derived
    graphs = stream.get("graphs") if isinstance(stream, Mapping) else None
    if not isinstance(graphs, Mapping):
        raise BundleError(f"{where}: 'stream' must be an object with 'graphs', found "
                          f"{short_repr(stream)}; {FIX}")
    if set(graphs) != set(derived):
        raise BundleError(f"{where}: stream.graphs lists {sorted(graphs)}, but the graphs that "
                          f"carry state (state_<i> in, new_state_<i> out) are "
                          f"{sorted(derived)}; {FIX}")
    files = manifest.get("files") or {}
    for name, spec in graphs.items():
        if not isinstance(spec, Mapping):
            raise BundleError(f"{where}: stream.graphs.{name} must be an object; {FIX}")
        for key in _DERIVED:
            if spec.get(key) != derived[name][key]:
                raise BundleError(f"{where}: stream.graphs.{name}.{key} does not match the "
                                  f"graph's inputs and outputs; {FIX}")
        symbols = spec.get("symbols")
        if symbols is not None:
            _check_symbols(symbols, spec, files, f"{where}: stream.graphs.{name}.symbols")
    return {name: copy.deepcopy(dict(spec)) for name, spec in graphs.items()}


def _check_symbols(symbols: Any, spec: Mapping[str, Any], files: Mapping[str, Any],
                   where: str) -> None:
    """``symbols``: an output of the graph, a count within its last dimension, a listed
    vocabulary file."""
    outputs = {o["name"]: o for o in spec["outputs"]}
    ok = isinstance(symbols, Mapping) and symbols.get("output") in outputs
    count = symbols.get("count") if ok else None
    if ok:
        last = outputs[symbols["output"]]["shape"][-1]
        ok = (isinstance(count, int) and not isinstance(count, bool) and count >= 1
              and (not isinstance(last, int) or count <= last))
    vocabulary = symbols.get("vocabulary") if ok else None
    if ok and vocabulary is not None and vocabulary not in files:
        ok = False
    if not ok:
        raise BundleError(f"{where}: expected {{'output': <an output>, 'count': <1..its last "
                          f"dimension>, 'vocabulary': <a listed file>}}, found "
                          f"{short_repr(symbols)}; {FIX}")
