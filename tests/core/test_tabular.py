"""The one tabular reader: delimiter rule, header handling, required columns, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipsuite.core.errors import InputError
from clipsuite.core.tabular import delimiter_for, iter_jsonl, read_table, write_table


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_delimiter_rule() -> None:
    assert delimiter_for("a.tsv") == "\t" and delimiter_for("a.TSV", "x,y") == "\t"
    assert delimiter_for("a.csv", "filepath\ttitle") == "\t"  # open_clip's tab-separated .csv
    assert delimiter_for("a.csv", "filepath,title") == ","
    assert delimiter_for("a.txt", "a;b") == ","  # no sniffing beyond tab-or-comma


def test_csv_tsv_and_jsonl_read_alike(tmp_path: Path) -> None:
    rows = [{"filepath": "a.png", "title": "a cat, sitting"}, {"filepath": "b.png", "title": 'say "hi"'}]
    paths = [write_table(tmp_path / name, rows) for name in ("t.csv", "t.tsv", "t.jsonl")]
    assert paths[1].read_text().splitlines()[0] == "filepath\ttitle"
    assert paths[0].read_text().splitlines()[1] == 'a.png,"a cat, sitting"'
    for path in paths:
        table = read_table(path, required=("filepath", "title"))
        assert table.columns == ["filepath", "title"]
        assert [dict(r.values) for r in table] == rows
        assert [r.line for r in table] == [2, 3] if path.suffix != ".jsonl" else [1, 2]


def test_header_handling(tmp_path: Path) -> None:
    # BOM, spaces around names, CRLF, a blank line and an unnamed pandas index column
    path = _write(tmp_path / "t.csv", "\ufeff, filepath , title\r\n0,a.png,first\r\n\r\n1,b.png,second\r\n".encode())
    table = read_table(path, required=("filepath",))
    assert table.columns == ["filepath", "title"]
    assert [(r.line, r.text("filepath"), r.values["title"]) for r in table] == [(2, "a.png", "first"),
                                                                                (4, "b.png", "second")]
    tabbed = _write(tmp_path / "open_clip.csv", "filepath\ttitle\na.png\ta, b and c\n")
    assert read_table(tabbed).records[0].values == {"filepath": "a.png", "title": "a, b and c"}
    with pytest.raises(InputError, match="line 2: 2 fields but the header has 1"):  # an explicit delimiter wins
        read_table(tabbed, delimiter=",")


def test_short_rows_read_empty_long_rows_fail(tmp_path: Path) -> None:
    short = read_table(_write(tmp_path / "s.csv", "object,split,mask\ncandle,train\n"))
    assert short.records[0].optional_text("mask") is None
    with pytest.raises(InputError) as info:
        short.records[0].text("mask")
    assert str(info.value) == f"{tmp_path / 's.csv'} line 2: empty 'mask'"
    long = _write(tmp_path / "l.csv", "filepath,title\na.png,a cat\nb.png,a dog, running\n")
    with pytest.raises(InputError) as info:
        read_table(long)
    assert str(info.value) == (f"{long} line 3: 3 fields but the header has 2 "
                               "(quote values that hold the delimiter ',')")


@pytest.mark.parametrize(("name", "text", "message"), [
    ("empty.csv", "", "{path}: empty file"),
    ("blank.tsv", "\n\n", "{path}: empty file"),
    ("header.csv", "filepath,title\n", "{path}: a header but no rows"),
    ("cols.csv", "filepath,caption\na.png,x\n", "{path} line 1: no column 'title' (columns: filepath, caption)"),
    ("twice.csv", "title,filepath,title\nx,a.png,y\n", "{path} line 1: column 'title' appears twice in the header"),
    ("bad.jsonl", '{"filepath": "a.png", "title": "x"}\n\n{"filepath": \n', "{path} line 3: malformed JSON ("),
    ("list.jsonl", '["a.png", "x"]\n', "{path} line 1: not a JSON object"),
    ("keys.jsonl", '{"filepath": "a.png", "title": "x"}\n{"image": "b.png"}\n',
     "{path} line 2: no key 'filepath' (keys: image)"),
    ("none.jsonl", "\n", "{path}: no records"),
    ("quote.csv", 'filepath,title\na.png,"x"y\n', "{path} line 2: malformed table (',' expected after '\"')"),
    ("open.csv", 'filepath,title\na.png,"x\nb.png,y\n', "{path} line 3: malformed table (unexpected end of data)"),
])
def test_one_line_errors_name_file_line_and_problem(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = _write(tmp_path / name, text)
    with pytest.raises(InputError) as info:
        read_table(path, required=("filepath", "title"))
    assert str(info.value).startswith(message.format(path=path))
    assert "\n" not in str(info.value)


def test_encoding_and_missing_file(tmp_path: Path) -> None:
    latin = _write(tmp_path / "latin.jsonl", b'{"title": "ok"}\n{"title": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"latin.jsonl line 2: not UTF-8 text"):
        read_table(latin)
    latin_csv = _write(tmp_path / "latin.csv", b"title\nok\ncaf\xe9\n")
    with pytest.raises(InputError, match=r"latin.csv line 3: not UTF-8 text"):
        read_table(latin_csv)
    with pytest.raises(InputError, match=r"absent.csv: file not found"):
        read_table(tmp_path / "absent.csv")


def test_jsonl_values_keep_their_types(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.jsonl", "\ufeff" + json.dumps({"id": 7, "path": "x.png", "tags": ["a"]}) + "\n")
    record = read_table(path).records[0]
    assert record.get("id") == 7 and record.get("tags") == ["a"] and record.get("absent", 3) == 3
    with pytest.raises(InputError, match=r"m.jsonl line 1: 'id' is not text \(int 7\)"):
        record.text("id")
    assert list(iter_jsonl(path)) == [(1, {"id": 7, "path": "x.png", "tags": ["a"]})]
    assert read_table(_write(tmp_path / "e.jsonl", ""), allow_empty=True).records == []


def test_write_table_columns_and_cells(tmp_path: Path) -> None:
    rows = [{"query": 0, "score": 0.5, "meta": {"k": 1}}, {"query": 1, "extra": None}]
    path = write_table(tmp_path / "r.csv", rows)
    assert path.read_text() == 'query,score,meta,extra\n0,0.5,"{""k"": 1}",\n1,,,\n'
    assert write_table(tmp_path / "c.csv", rows, columns=["query"]).read_text() == "query\n0\n1\n"
    assert [json.loads(line) for line in write_table(tmp_path / "r.jsonl", rows).read_text().splitlines()] == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "r.csv", "r.jsonl"]  # no temporaries left
