"""report.py, the one report writer: the table every command prints, its CSV and strict JSON."""
import csv
import json

from minikd.experiments.report import table_lines, write_csv, write_json


def test_table_pads_aligns_and_rules_its_columns():
    lines = table_lines([("model", "errors"), ("teacher", 7), ("distilled student", 123)], align="<>")
    assert lines == ["-----------------  ------",
                     "model              errors",
                     "-----------------  ------",
                     "teacher                 7",
                     "distilled student     123",
                     "-----------------  ------"]


def test_no_table_line_ends_in_spaces():
    lines = table_lines([("a", "b", "note"), ("1", "2", ""), ("333", "", "x")])   # left-aligned, empty cells
    assert lines[3] == "1    2" and lines[4] == "333     x"
    assert all(line == line.rstrip() for line in lines)


def test_csv_and_json(tmp_path):
    write_csv(tmp_path / "t.csv", ["width", "note"], [[30, "a,b"], [300, ""]])
    assert list(csv.reader((tmp_path / "t.csv").open())) == [["width", "note"], ["30", "a,b"], ["300", ""]]
    write_json(tmp_path / "r.json", {"ok": 1.5, "bad": [float("nan"), float("inf")]})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"ok": 1.5, "bad": [None, None],
                                "null_because_not_finite": {"bad[0]": "nan", "bad[1]": "inf"}}
