from lmem.data.sentences import split_sentences


def test_split_basic_and_deterministic():
    text = "Ada was born in 1850. She painted.  Dr. Bo Renn met J. R. Smith in the U.S. Army! Did he? Yes."
    out = split_sentences(text)
    assert out == ["Ada was born in 1850.", "She painted.", "Dr. Bo Renn met J. R. Smith in the U.S. Army!",
                   "Did he?", "Yes."]
    assert split_sentences(text) == out


def test_split_quotes_and_numbers():
    assert split_sentences('He said "go." Then 3 men left. Pi is 3.14 exactly.') == [
        'He said "go."', "Then 3 men left.", "Pi is 3.14 exactly."]
    assert split_sentences("") == []
    assert split_sentences("no final stop") == ["no final stop"]
