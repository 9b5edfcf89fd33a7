"""Every malformed-input kind gets a clear error naming the file, the record and the field, or a counted repair or
skip; none is loaded silently. The files are the repository's schema fixtures with one defect each."""

import copy
import json
import os
import stat

import pytest

from lmem.data import RecordError, load_examples
from lmem.io import InputError
from lmem.prepare import meta_path, prepare

from conftest import FIXTURES

HOTPOT = json.loads((FIXTURES / "hotpotqa_hub.jsonl").read_text().splitlines()[0])
MUSIQUE = json.loads((FIXTURES / "musique_dev.jsonl").read_text().splitlines()[0])
WICE = json.loads((FIXTURES / "wice_claim.jsonl").read_text().splitlines()[0])
TWOWIKI = json.loads((FIXTURES / "2wiki_dev.json").read_text())[0]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def load(loader, path, **kw):
    return load_examples(loader, {"loader": loader, "source": {"path": str(path)}, **kw})


def changed(record, edit):
    r = copy.deepcopy(record)
    edit(r)
    return r


def second_record_fails(tmp_path, loader, base, edit, *needles):
    """A file of a good record and a bad one: loading fails naming the file, line 2 and each needle; with
    on_bad_record: skip, the good record loads and the bad one is counted."""
    bad = changed(base, edit)
    if "id" in bad:
        bad["id"] = "other"
    path = write_jsonl(tmp_path / f"{loader}.jsonl", [base, bad])
    with pytest.raises(RecordError) as e:
        load(loader, path)
    msg = str(e.value)
    for needle in (str(path), "line 2", *needles):
        assert needle in msg, f"{needle!r} not in {msg!r}"
    skipped = load(loader, path, on_bad_record="skip")
    assert len(skipped.examples) == 1 and skipped.n_skipped == 1
    return msg


def test_empty_pool(tmp_path):
    second_record_fails(tmp_path, "hotpotqa", HOTPOT, lambda r: r.update(
        context={"title": [], "sentences": []}, supporting_facts={"title": [], "sent_id": []}), "evidence pool",
        "empty")


def test_gold_pointer_past_the_paragraph(tmp_path):
    second_record_fails(tmp_path, "hotpotqa", HOTPOT, lambda r: r["supporting_facts"]["sent_id"].__setitem__(0, 7),
                        "supporting fact 1", "sent_id", "is 7")


def test_gold_pointer_to_a_title_not_in_the_context(tmp_path):
    second_record_fails(tmp_path, "hotpotqa", HOTPOT,
                        lambda r: r["supporting_facts"]["title"].__setitem__(0, "Nowhere"), "'Nowhere'",
                        "not in the context")


@pytest.mark.parametrize("question", ["", "   \n"])
def test_empty_question(tmp_path, question):
    second_record_fails(tmp_path, "hotpotqa", HOTPOT, lambda r: r.update(question=question), "question is empty")


def test_missing_and_empty_answers(tmp_path):
    second_record_fails(tmp_path, "musique", MUSIQUE, lambda r: r.update(answer="", answer_aliases=[]),
                        "reference answer", "empty")
    second_record_fails(tmp_path, "musique", MUSIQUE, lambda r: r.pop("answer"), "no field 'answer'")


def test_duplicate_ids(tmp_path):
    path = write_jsonl(tmp_path / "dup.jsonl", [HOTPOT, HOTPOT])
    with pytest.raises(RecordError, match=r"line 2: duplicate example id 'hp1' \(first at .*line 1\)"):
        load("hotpotqa", path)
    assert load("hotpotqa", path, on_bad_record="skip").n_skipped == 1


def test_string_for_a_boolean(tmp_path):
    msg = second_record_fails(tmp_path, "musique", MUSIQUE,
                              lambda r: r["paragraphs"][2].update(is_supporting="false"), "is_supporting",
                              "paragraph 3", "true or false")
    assert "'false'" in msg


def test_gold_index_far_out_of_range(tmp_path):
    second_record_fails(tmp_path, "wice", WICE, lambda r: r["supporting_sentences"].append([10 ** 6]),
                        "supporting_sentences", "1000000", "outside 0..2")


def test_malformed_shapes_name_the_part(tmp_path):
    # a context paragraph that is not [title, [sentences]] (original schema)
    path = tmp_path / "orig.json"
    rec = json.loads((FIXTURES / "hotpotqa_original.json").read_text())[0]
    rec["context"][1] = "Quill Museum"
    path.write_text(json.dumps([rec]))
    with pytest.raises(RecordError, match=r"record 1: context paragraph 2 should be \[title, \[sentences\]\]"):
        load("hotpotqa", path)
    # a field of the wrong type: the message names the field, the expected type and what came
    second_record_fails(tmp_path, "hotpotqa", HOTPOT, lambda r: r.update(question=["q?"]),
                        "field 'question'", "should be a string", "got list")
    second_record_fails(tmp_path, "hotpotqa", HOTPOT, lambda r: r.update(context="Ada Quill"),
                        "field 'context'", "an object or a list", "got str")


def test_tsv_line_with_too_few_columns(tmp_path):
    text = (FIXTURES / "webqa_val_queries.tsv").read_text().splitlines()
    path = tmp_path / "val.tsv"
    path.write_text("\n".join(text + ["d5bb0004\tcolor\tWhat colour?"]) + "\n")
    with pytest.raises(RecordError) as e:
        load("webqa", path)
    msg = str(e.value)
    assert f"{path}: line {len(text) + 1}" in msg and "3 tab-separated columns where the header has 7" in msg
    assert load("webqa", path, on_bad_record="skip").n_skipped == 1


def test_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = json.dumps(HOTPOT).encode()
    bad = json.dumps(changed(HOTPOT, lambda r: r.update(id="b", question="Caf\u00e9?")), ensure_ascii=False).encode("latin-1")
    path.write_bytes(good + b"\n" + bad + b"\n")
    with pytest.raises(RecordError) as e:
        load("hotpotqa", path)
    assert f"{path}:2: not UTF-8 (byte 0xe9" in str(e.value) and "iconv" in str(e.value)
    skipped = load("hotpotqa", path, on_bad_record="skip")
    assert len(skipped.examples) == 1 and skipped.n_skipped == 1


def test_bad_json_line_is_skippable(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_text(json.dumps(HOTPOT) + "\n" + json.dumps(HOTPOT)[:40] + "\n")
    with pytest.raises(RecordError, match=r"cut.jsonl:2: not valid JSON"):
        load("hotpotqa", path)
    assert load("hotpotqa", path, on_bad_record="skip").n_skipped == 1


def test_over_long_item_is_cut_and_counted(tmp_path):
    long = changed(HOTPOT, lambda r: r["context"]["sentences"][0].__setitem__(0, "word " * 200_000))
    result = load("hotpotqa", write_jsonl(tmp_path / "long.jsonl", [long]), max_item_chars=500)
    (ex,) = result.examples
    assert len(ex.pool[0].text) == 500 and result.repairs.n_truncated_items == 1
    assert "cut from 999,999 to 500" in result.repairs.examples[0]


def test_control_characters_are_removed_and_counted(tmp_path):
    dirty = changed(HOTPOT, lambda r: (r.update(question="Where\x00 is\x1b it?"),
                                       r["context"]["sentences"][0].__setitem__(0, "Ada\x07 Quill was a painter.")))
    result = load("hotpotqa", write_jsonl(tmp_path / "ctl.jsonl", [dirty]))
    (ex,) = result.examples
    assert ex.question == "Where is it?" and ex.pool[0].text == "Ada Quill was a painter."
    assert result.repairs.n_control_chars == 3


def test_json_file_holding_one_object_per_line_loads(tmp_path):
    path = write_jsonl(tmp_path / "hotpot_dev_distractor_v1.json", [HOTPOT, changed(HOTPOT, lambda r: r.update(id="b"))])
    assert [ex.id for ex in load("hotpotqa", path).examples] == ["hp1", "b"]
    one = tmp_path / "one.json"
    one.write_text(json.dumps(HOTPOT))  # a single record as a JSON document
    assert [ex.id for ex in load("hotpotqa", one).examples] == ["hp1"]


def test_wice_recall_is_against_the_best_alternative_set():
    (ex,) = load("wice", FIXTURES / "wice_claim.jsonl").examples
    assert ex.gold_ids == ["s1", "s2"] and ex.metadata["gold_sets"] == [["s1"], ["s1", "s2"]]


def test_2wiki_aliases_join_the_references(tmp_path):
    aliases = write_jsonl(tmp_path / "id_aliases.json", [
        {"Q_id": "Q3", "aliases": ["Ostmark City", "Ostmark"], "demonyms": ["Ostmarker"]},
        {"Q_id": "Q9", "aliases": ["Elsewhere"], "demonyms": []}])
    spec = {"loader": "2wikimultihopqa", "source": {"path": str(FIXTURES / "2wiki_dev.json")},
            "options": {"aliases": str(aliases)}}
    (ex,) = load_examples("2wikimultihopqa", spec).examples
    assert ex.answers == ["Ostmark", "Ostmark City", "Ostmarker"]
    with pytest.raises(InputError, match="no such file"):
        load_examples("2wikimultihopqa", {**spec, "options": {"aliases": str(tmp_path / "nope.json")}})


def test_prepare_makes_its_folder_writes_the_usual_mode_and_nothing_on_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LMEM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "new" / "folder" / "hotpotqa.jsonl"
    spec = {"loader": "hotpotqa", "source": {"path": str(FIXTURES / "hotpotqa_hub.jsonl")}}
    meta = prepare("hotpotqa", spec, str(out))
    assert out.exists() and meta["metric"] == "hotpotqa"
    umask = os.umask(0)
    os.umask(umask)
    for f in (out, meta_path(str(out))):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o666 & ~umask
    bad = write_jsonl(tmp_path / "bad.jsonl", [changed(HOTPOT, lambda r: r.update(question=""))])
    out2 = tmp_path / "other" / "bad.jsonl"
    with pytest.raises(RecordError):
        prepare("hotpotqa", {"loader": "hotpotqa", "source": {"path": str(bad)}}, str(out2))
    assert not out2.exists() and not os.path.exists(meta_path(str(out2)))
