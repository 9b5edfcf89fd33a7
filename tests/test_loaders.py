import gzip
import json

import pytest

from lmem.data import RecordError, load_examples
from lmem.io import InputError

from conftest import FIXTURES


def load(loader, path, **kw):
    return load_examples(loader, {"loader": loader, "source": {"path": str(path)}, **kw})


def test_hotpotqa_hub_schema():
    (ex,) = load("hotpotqa", FIXTURES / "hotpotqa_hub.jsonl").examples
    assert ex.id == "hp1" and ex.answers == ["Norbridge"]
    assert [e.text for e in ex.pool] == ["Ada Quill was a painter.", "She founded the Quill Museum.",
                                         "The Quill Museum is in Norbridge.", "It opened in 1901."]
    assert ex.gold_ids == ["p0s1", "p1s0"]
    assert ex.pool[2].title == "Quill Museum"


def test_hotpotqa_original_download_schema():
    (ex,) = load("hotpotqa", FIXTURES / "hotpotqa_original.json").examples
    assert ex.id == "hp2" and ex.gold_ids == ["p0s0", "p1s0"] and len(ex.pool) == 3


def test_2wiki():
    (ex,) = load("2wikimultihopqa", FIXTURES / "2wiki_dev.json").examples
    assert ex.answers == ["Ostmark"] and ex.gold_ids == ["p0s1", "p1s0"]


def test_musique_paragraph_gold_and_answer_sentence_option():
    (ex,) = load("musique", FIXTURES / "musique_dev.jsonl").examples
    assert ex.answers == ["Pell", "Pell City"]
    assert [e.text for e in ex.pool][:4] == ["Lake Venn is in Arland.", "It is deep.", "Arland's capital is Pell.",
                                             "Dr. Ray Stone lived there."]
    assert len(ex.gold_ids) == 4  # every sentence of both supporting paragraphs
    (ex,) = load("musique", FIXTURES / "musique_dev.jsonl", options={"gold": "answer_sentences"}).examples
    assert [e.text for e in ex.pool if e.gold] == ["Arland's capital is Pell."]


def test_nq_gzipped_ctxs(tmp_path):
    gz = tmp_path / "nq.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.write((FIXTURES / "nq_open_ctxs.jsonl").read_text())
    (ex,) = load("nq", gz).examples
    assert [e.text for e in ex.pool if e.gold] == ["They were written by Ada Quill in 1890."]


def test_triviaqa_rc_schema():
    (ex,) = load("triviaqa", FIXTURES / "triviaqa_rc.jsonl").examples
    assert ex.id == "tc_1" and ex.answers == ["Ada Quill", "Ada Q."]
    assert [e.text for e in ex.pool if e.gold] == ["It was founded by Ada Quill."]


def test_qasper_longbench():
    (ex,) = load("qasper", FIXTURES / "qasper_longbench.jsonl").examples
    assert ex.question == "What dataset do they use?" and len(ex.pool) == 3 and ex.gold_ids == []


def test_wice_label_as_answer():
    (ex,) = load("wice", FIXTURES / "wice_claim.jsonl").examples
    assert ex.answers == ["partially supported"] and ex.gold_ids == ["s1", "s2"]
    assert "Ada Quill founded a museum in 1890." in ex.question


def test_webqa_official_json_split_and_images():
    (ex,) = load("webqa", FIXTURES / "webqa_train_val.json", options={"split": "val"}).examples
    assert ex.id == "d5bb0001" and ex.question == "What color is the roof of the Quill Museum?"
    assert ex.answers == ["The roof of the Quill Museum is red."] and ex.metadata["qcate"] == "color"
    images = [e for e in ex.pool if e.kind == "image"]
    assert [e.image for e in images] == ["imgs.tsv:3001", "imgs.tsv:3002"] and images[0].gold
    assert len(load("webqa", FIXTURES / "webqa_train_val.json").examples) == 2


def test_webqa_val_query_tsv():
    (ex,) = load("webqa", FIXTURES / "webqa_val_queries.tsv").examples
    assert ex.answers == ["Yes, the Quill Museum roof is red."] and ex.metadata["qcate"] == "YesNo"


def test_a_second_loader_under_a_taken_name_is_refused():
    from lmem.data import LOADERS, _discover, register_loader

    _discover()
    hotpotqa = LOADERS["hotpotqa"]
    with pytest.raises(ValueError, match="two loaders are named 'hotpotqa': lmem.data.hotpotqa.convert and "):
        @register_loader("hotpotqa")
        def convert(record, loc, spec):
            return None

    assert LOADERS["hotpotqa"] is hotpotqa


def test_bad_record_error_names_file_and_record(tmp_path):
    bad = tmp_path / "hp.jsonl"
    good = (FIXTURES / "hotpotqa_hub.jsonl").read_text().strip()
    bad.write_text(good + "\n" + json.dumps({"id": "x", "question": "q?", "answer": "a"}) + "\n")
    with pytest.raises(RecordError) as e:
        load("hotpotqa", bad)
    msg = str(e.value)
    assert str(bad) in msg and "line 2" in msg and "context" in msg and "on_bad_record" in msg
    res = load("hotpotqa", bad, on_bad_record="skip")
    assert len(res.examples) == 1 and res.n_skipped == 1


def test_invalid_json_line_and_missing_file(tmp_path):
    bad = tmp_path / "hp.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(InputError, match=r"hp.jsonl:1: not valid JSON"):
        load("hotpotqa", bad)
    with pytest.raises(InputError, match="no such file"):
        load("hotpotqa", tmp_path / "missing.jsonl")


def test_hub_source_offline_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    with pytest.raises(InputError, match="Point the benchmark's source.path"):
        load_examples("hotpotqa", {"loader": "hotpotqa",
                                   "source": {"hub": {"id": "hotpotqa/hotpot_qa", "config": "distractor"}}})


# The real slices in ../shared/data, read by the same loaders.
@pytest.mark.parametrize("loader,rel,n_gold_min", [
    ("hotpotqa", "hotpotqa/test500.jsonl", 2),
    ("2wikimultihopqa", "2wikimultihopqa/dev500.jsonl", 2),
    ("musique", "musique/dev200.jsonl", 2),
    ("nq", "nq/nq_open_oracle.jsonl.gz", 0),
    ("wice", "wice/claim_dev.jsonl", 0),
])
def test_shared_slices(shared_data, loader, rel, n_gold_min):
    res = load(loader, shared_data / rel, limit=20)
    assert len(res.examples) == 20 and res.n_skipped == 0
    for ex in res.examples:
        assert ex.question and ex.answers and ex.pool
        assert len(ex.gold_ids) >= n_gold_min
        assert len({e.id for e in ex.pool}) == len(ex.pool)


def test_offset_skips_examples_before_the_limit(shared_data):
    path = shared_data / "hotpotqa/test500.jsonl"
    first = [ex.id for ex in load("hotpotqa", path, limit=8).examples]
    held_out = [ex.id for ex in load("hotpotqa", path, offset=5, limit=3).examples]
    assert held_out == first[5:8]


def test_shared_triviaqa_and_webqa_queries(shared_data):
    trivia = load("triviaqa", shared_data / "triviaqa/test1000_noctx.jsonl")
    assert len(trivia.examples) == 1000 and all(not ex.pool and ex.answers for ex in trivia.examples)
    web = load("webqa", shared_data / "webqa/val_img_queries.tsv")
    assert len(web.examples) == 2511
    assert {ex.metadata["qcate"] for ex in web.examples} >= {"YesNo", "color", "shape", "number"}


def test_hotpotqa_gold_sentences_match_supporting_facts(shared_data):
    raw = json.loads((shared_data / "hotpotqa/test500.jsonl").open().readline())
    (ex,) = load("hotpotqa", shared_data / "hotpotqa/test500.jsonl", limit=1).examples
    titles = raw["context"]["title"]
    expected = {raw["context"]["sentences"][titles.index(t)][i].strip()
                for t, i in zip(raw["supporting_facts"]["title"], raw["supporting_facts"]["sent_id"])}
    assert {e.text for e in ex.pool if e.gold} == expected


def write_webqa_images(folder, images: dict[int, tuple[int, int, int]]):
    """imgs.tsv + imgs.lineidx in the official layout, with solid-colour JPEGs made here."""
    import base64
    import io

    from PIL import Image

    offsets, lines = [], b""
    for image_id, color in images.items():
        buf = io.BytesIO()
        Image.new("RGB", (8, 6), color).save(buf, format="JPEG")
        offsets.append(len(lines))
        lines += f"{image_id}\t".encode() + base64.b64encode(buf.getvalue()) + b"\n"
    (folder / "imgs.tsv").write_bytes(lines)
    (folder / "imgs.lineidx").write_text("".join(f"{o}\n" for o in offsets))


def test_webqa_images_decode_lazily_by_offset(tmp_path):
    from lmem.data.webqa import ImageStore

    write_webqa_images(tmp_path, {30000000: (255, 0, 0), 30000001: (0, 0, 255)})
    store = ImageStore(tmp_path / "imgs.tsv")
    red, blue = store.image(30000000), store.resolve("imgs.tsv:30000001")
    assert red.size == (8, 6) and red.getpixel((4, 3))[0] > 200 and blue.getpixel((4, 3))[2] > 200
    with pytest.raises(InputError, match="past the end"):
        store.image(30000005)
    write_webqa_images(tmp_path, {30000001: (0, 0, 255), 30000000: (255, 0, 0)})  # lines swapped, ids kept
    (tmp_path / "imgs.lineidx").write_text("0\n0\n")
    with pytest.raises(InputError, match="does not belong to this imgs.tsv"):
        ImageStore(tmp_path / "imgs.tsv").image(30000000)
    with pytest.raises(InputError, match="not found"):
        ImageStore(tmp_path / "nope.tsv")
