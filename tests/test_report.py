"""The main job's report: parts in order, a failing part reported while the others still run."""

from jaxnet import cli, report


def test_a_failing_part_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    def good(out_dir, quick):
        (out_dir / "figure.png").write_bytes(b"png")
        return f"good part, quick={quick} ![figure](figure.png)"

    def broken(out_dir, quick):
        raise FileNotFoundError("no data in /nowhere")

    monkeypatch.setattr(report, "PARTS", {"first": ("First part", good), "broken": ("Broken part", broken),
                                          "last": ("Last part", good)})
    path = report.write_report(tmp_path, quick=True)
    text = path.read_text()
    assert text.index("## First part") < text.index("## Broken part") < text.index("## Last part")
    assert "**This part failed:** `FileNotFoundError: no data in /nowhere`" in text
    assert text.count("good part, quick=True") == 2
    assert "_done in" in text and "_FAILED in" in text
    assert "s on cpu:0, 20" in text  # the devices it ran on, and when


def test_named_parts_only(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(report, "PARTS", {name: (name, lambda o, q, name=name: calls.append(name) or name)
                                          for name in ["a", "b", "c"]})
    assert cli.main(["report", "--out", str(tmp_path), "c", "a"]) == 0
    assert calls == ["c", "a"]


def test_no_names_runs_every_part(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(report, "PARTS", {name: (name, lambda o, q, name=name: calls.append(name) or name)
                                          for name in ["a", "b"]})
    assert cli.main(["report", "--out", str(tmp_path)]) == 0
    assert calls == ["a", "b"]


def test_one_part_again_keeps_the_others(tmp_path, monkeypatch):
    runs = {"a": 0, "b": 0}

    def part(name):
        def run(out_dir, quick):
            runs[name] += 1
            return f"{name} run {runs[name]}"
        return run

    monkeypatch.setattr(report, "PARTS", {"a": ("Part A", part("a")), "b": ("Part B", part("b"))})
    report.write_report(tmp_path)
    text = report.write_report(tmp_path, ["b"]).read_text()
    assert "a run 1" in text and "b run 2" in text and "b run 1" not in text
    assert text.index("## Part A") < text.index("## Part B")


def test_unknown_part_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["report", "--out", str(tmp_path), "cnn", "nope"]) == 2
    assert "unknown part(s) nope; choose from gradcheck, two_layer, cnn, pretrained" in capsys.readouterr().err
