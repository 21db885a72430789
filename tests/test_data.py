"""Tokenizer (JSON round trip, post-padding) and dataset readers (real formats, bad rows)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import shared_data

from rnnzoo.data.readers import load_text_classification, read_delimited, read_mr
from rnnzoo.data.tokenizer import WordTokenizer, check_post_padded
from rnnzoo.errors import ConfigError, DataError
from rnnzoo.io import atomic_write_text


def test_tokenizer_fit_is_deterministic_and_round_trips_json(tmp_path):
    texts = ["It 's a charming film .", "a dull , tedious film", "co-writer don't care"]
    tok = WordTokenizer().fit(texts, max_size=100)
    assert tok.vocab[:2] == ["<pad>", "<unk>"]
    assert tok.vocab[2:4] == ["a", "film"]  # most frequent first; ties alphabetical
    assert tok.split("Co-writer DON'T care!") == ["co-writer", "don't", "care", "!"]
    assert tok.split("it 's") == ["it", "'s"]
    tok.save(tmp_path / "tok.json")
    again = WordTokenizer.load(tmp_path / "tok.json")
    assert again.vocab == tok.vocab
    ids = again.encode("a charming unseenword film")
    assert ids[2] == again.unk_id
    assert again.decode(ids) == "a charming <unk> film"


def test_max_size_caps_vocabulary():
    tok = WordTokenizer().fit(["a b c d e f g"], max_size=5)
    assert tok.vocab_size == 5


def test_encode_batch_post_pads_and_truncates():
    tok = WordTokenizer().fit(["a b c d e"], max_size=10)
    batch = tok.encode_batch(["a b c d e", "a", ""], max_length=4)
    assert batch.dtype == np.int32 and batch.shape == (3, 4)
    assert (batch[1, 1:] == 0).all() and batch[1, 0] != 0  # padding at the END
    assert (batch[2] == 0).all()
    np.testing.assert_array_equal(check_post_padded(batch), [4, 1, 0])


def test_pre_padded_input_is_rejected():
    with pytest.raises(DataError, match="row 1 is not post-padded"):
        check_post_padded(np.array([[3, 4, 0], [0, 5, 6]]))
    with pytest.raises(DataError, match="2-D array"):
        check_post_padded(np.array([1, 2, 3]))


def test_bad_tokenizer_files_give_clear_errors(tmp_path):
    bad = tmp_path / "tok.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="tok.json: invalid JSON at line 1"):
        WordTokenizer.load(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="expected format 'rnnzoo.word_tokenizer.v1'"):
        WordTokenizer.load(bad)
    with pytest.raises(DataError, match="tokenizer file not found"):
        WordTokenizer.load(tmp_path / "missing.json")


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.json"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "x" * 1000)
    assert list(tmp_path.iterdir()) == []


# -- readers --------------------------------------------------------------------------------------
def test_mr_reader_and_holdout(tmp_path):
    (tmp_path / "rt-polarity.pos").write_bytes("a fine film\nsimply great \xe9\n".encode("latin-1"))
    (tmp_path / "rt-polarity.neg").write_bytes(b"dull\nbad\nawful\n")
    data = load_text_classification(tmp_path, dev_fraction=0.34)
    assert data.label_names == ["negative", "positive"]
    assert len(data.train_texts) + len(data.dev_texts) == 5
    assert set(data.dev_labels) == {0, 1}  # stratified
    texts, labels = read_mr(tmp_path)
    assert "simply great \xe9" in texts and labels.count(1) == 2


def test_mr_blank_line_names_file_and_line(tmp_path):
    (tmp_path / "rt-polarity.pos").write_text("good\n\nfine\n")
    (tmp_path / "rt-polarity.neg").write_text("bad\n")
    with pytest.raises(DataError, match=r"rt-polarity\.pos, line 2: empty snippet"):
        read_mr(tmp_path)


def test_glue_tsv_reader(tmp_path):
    (tmp_path / "train.tsv").write_text('sentence\tlabel\nit \'s " great " \t1\nbad \t0\n')
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nfine \t1\n")
    data = load_text_classification(tmp_path)
    assert data.train_texts == ['it \'s " great "', "bad"] and data.train_labels == [1, 0]
    assert data.dev_texts == ["fine"]


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("sentence\tlabel\ngood\t1\nbad\t2\n", r"train\.tsv, line 3: expected label '0' or '1'"),
        ("sentence\tlabel\ngood\t1\nno label here\n",
         r"train\.tsv, line 3: expected 2 fields \('\\t'-separated\), found 1"),
        ("text\tlabel\ngood\t1\n", r"train\.tsv, line 1: expected a header with columns"),
        ("sentence\tlabel\n\t1\n", r"train\.tsv, line 2: empty 'sentence' field"),
    ],
)
def test_malformed_glue_rows(tmp_path, content, pattern):
    (tmp_path / "train.tsv").write_text(content)
    with pytest.raises(DataError, match=pattern):
        load_text_classification(tmp_path)


def test_generic_csv_and_non_utf8(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('id,text,label\n1,"great, really",pos\n2,awful,neg\n3,fine,pos\n')
    texts, labels = read_delimited(path)
    assert texts[0] == "great, really" and labels == ["pos", "neg", "pos"]
    data = load_text_classification(path, dev_fraction=0.3)
    assert data.label_names == ["neg", "pos"]
    path.write_bytes(b"text,label\ncaf\xe9,pos\n")
    with pytest.raises(DataError, match=r"mine\.csv, line 2: not valid utf-8-sig"):
        read_delimited(path)


# -- one delimited file: GLUE's header or text,label, read wherever text data is read --------------
GLUE_ROWS = [("a gorgeous , witty , seductive movie .", "1"), ("it 's a dull , tedious film", "0"),
             ("the acting is superb", "1"), ("bad plot and worse dialogue", "0"),
             ("a charming , funny story", "1"), ("i wanted to leave after an hour", "0")]


def test_glue_header_tsv_file_is_read_and_evaluated_with_split_all(tmp_path, capsys):
    import rnnzoo
    from rnnzoo.cli import main

    path = tmp_path / "heldout.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in GLUE_ROWS))
    data = load_text_classification(path)
    # Read as the SST-2 folder is: the model trained on the folder knows these classes.
    assert data.label_names == ["negative", "positive"]
    texts, labels = data.split("all")
    assert sorted(zip(texts, labels)) == sorted((t, int(y)) for t, y in GLUE_ROWS)
    code = main(["evaluate", "sentiment_bilstm.sst2", "--data", str(path), "--split", "all",
                 "--backend", "onnx", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_examples"] == len(GLUE_ROWS) and report["split"] == "all"
    model = rnnzoo.from_preset("sentiment_bilstm.sst2", backend="onnx")
    want = model.evaluate([t for t, _ in GLUE_ROWS], [int(y) for _, y in GLUE_ROWS])
    assert report["accuracy"] == want["accuracy"]


def test_text_label_csv_file(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("text,label\n" + "".join(f'"{t}",{"pos" if y == "1" else "neg"}\n'
                                             for t, y in GLUE_ROWS))
    data = load_text_classification(path)
    assert data.label_names == ["neg", "pos"]
    texts, labels = data.split("all")
    assert sorted(texts) == sorted(t for t, _ in GLUE_ROWS) and len(labels) == len(GLUE_ROWS)
    with pytest.raises(ConfigError, match="has the splits dev, train and all"):
        data.split("test")


@pytest.mark.parametrize("suffix, header", [(".tsv", "review\tstars"), (".csv", "review,stars")])
def test_bad_header_names_the_columns_found(tmp_path, capsys, suffix, header):
    from rnnzoo.cli import main

    path = tmp_path / f"heldout{suffix}"
    path.write_text(f"{header}\n" + "great" + header[6] + "1\n")
    found = r"found the columns \['review', 'stars'\]"
    with pytest.raises(DataError, match=rf"heldout\{suffix}, line 1: expected a header with "
                                        rf"columns 'text' or 'sentence' .*'label', {found}"):
        load_text_classification(path)
    assert main(["evaluate", "sentiment_bilstm.sst2", "--data", str(path), "--split", "all",
                 "--backend", "onnx"]) == 2
    assert "found the columns ['review', 'stars']" in capsys.readouterr().err


def test_class_folder_layout(tmp_path):
    for split, cls, text in [("train", "pos", "great"), ("train", "neg", "awful"),
                             ("train", "pos", "lovely"), ("test", "neg", "bad"),
                             ("train", "unsup", "ignored")]:
        d = tmp_path / split / cls
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{len(list(d.iterdir()))}.txt").write_text(text + "<br />")
    data = load_text_classification(tmp_path)
    assert data.label_names == ["neg", "pos"]
    assert sorted(data.train_texts) == ["awful", "great", "lovely"]
    assert data.dev_texts == ["bad"] and data.dev_labels == [0]


def test_unknown_layout_explains_what_is_expected(tmp_path):
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(DataError, match="unrecognised data layout; expected an MR folder"):
        load_text_classification(tmp_path / "data.json")
    with pytest.raises(DataError, match="data path not found"):
        load_text_classification(tmp_path / "nope")


def test_real_sst2_and_mr_counts():
    sst = load_text_classification(shared_data("sentiment", "SST-2"))
    assert (len(sst.train_texts), len(sst.dev_texts)) == (67349, 872)
    assert sum(sst.dev_labels) == 444
    mr = load_text_classification(shared_data("sentiment", "MR"))
    assert len(mr.train_texts) + len(mr.dev_texts) == 10662
