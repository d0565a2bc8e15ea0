"""build_report from cards: files, self-containment, figures, numbers, side by side, randomized, checks, errors."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import pytest
from PIL import Image
from report_helpers import PGD, analyses, curve, expected_mean_std, failing_checks

from advlab.errors import AdvlabError, InputError
from advlab.evaluate import build_card, load_card, perturbation_statistics, save_card
from advlab.report import build_report

PNG_SRC = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
FULL_SECTIONS = ("summary", "curves", "checks", "single-attacks", "perturbation-statistics", "pixel-histograms",
                 "average-adversarial-grid", "average-perturbations", "adversarial-examples", "gradient-norms",
                 "transfer", "accuracy-vs-steps", "accuracy-vs-noise", "other-curves", "reproduce")


class TableRows(HTMLParser):
    """Collects the text of every <td>/<th> row of the table with a given id."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def table_rows(html: str, table_id: str) -> list[list[str]]:
    parser = TableRows(table_id)
    parser.feed(html)
    return parser.rows


def markdown_rows(markdown: str, first_header: str) -> list[list[str]]:
    """Rows (without header and alignment line) of the markdown table whose first header cell is given."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_report_files_exist_atomically_and_are_self_contained(full_report) -> None:
    paths, html, markdown = full_report
    assert sorted(p.name for p in paths.html.parent.iterdir()) == ["report.html", "report.md"]  # no temp files
    assert html.startswith("<!DOCTYPE html>") and "<title>Two models</title>" in html and "# Two models" in markdown
    # No resource is fetched from anywhere: no remote src/href, no external stylesheets, scripts or fonts.
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', html, re.IGNORECASE)
    assert not re.search(r"<link\b|<script\b[^>]*\bsrc=|@import|url\(", html, re.IGNORECASE)
    for section in FULL_SECTIONS:
        assert f'id="{section}"' in html, section


def test_figures_are_embedded_decodable_nonblank_pngs(full_report) -> None:
    _, html, _ = full_report
    encoded = PNG_SRC.findall(html)
    # curves 1, perturbation 1, pixels 1, grid 2, mean perturbation 1, examples 1, gradients 1, transfer 1,
    # steps 1, noise 1, σ_N² curve 1
    assert len(encoded) == 12 == html.count("<img ")
    for data in encoded:
        raw = base64.b64decode(data, validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        image = Image.open(io.BytesIO(raw)).convert("L")
        assert image.width > 200 and image.height > 100
        low, high = image.getextrema()
        assert high - low > 100  # drawn content, not a blank canvas


def test_markdown_and_html_numbers_match_the_cards(full_report, deterministic_card, randomized_card) -> None:
    _, html, markdown = full_report
    rows = markdown_rows(markdown, "Model")
    assert [row[0] for row in rows] == ["mnist_cnn", "mnist_cnn_pni"]
    det = rows[0]
    assert det[4] == "98.00 %"
    assert det[6:9] == [f"{100 * r['robust_accuracy']:.2f} %" for r in deterministic_card.results]
    assert det[6:9] == ["81.73 %", "41.21 %", "5.25 %"] and det[5] == "3.00 % (2 attacks)"
    html_rows = table_rows(html, "summary-table")
    assert html_rows[0][:6] == ["Model", "Data", "n", "Trials", "Clean", "Worst case (cascade)"]
    assert html_rows[1][5:9] == det[5:9] and html_rows[2][5:8] == rows[1][5:8]
    cw = markdown_rows(markdown, "Model | Attack")
    assert cw[0][:4] == ["mnist_cnn", "cw", "100.00 %", "0.00 %"] and cw[0][4] == "2.5"


def test_randomized_card_shows_mean_and_std_over_trials(full_report, randomized_card) -> None:
    _, html, markdown = full_report
    row = markdown_rows(markdown, "Model")[1]
    trials = [[0.90, 0.70, 0.42], [0.88, 0.66, 0.40], [0.92, 0.71, 0.47]]
    for column, index in zip(row[6:9], range(3)):
        mean, std = expected_mean_std([t[index] for t in trials])
        assert column == f"{100 * mean:.2f} ± {100 * std:.2f} %"
    assert row[3] == "3 (randomized), EOT 10"
    assert "69.00 ± 2.65 %" in html and "(mean of 3 trials)" not in markdown


def test_failing_checks_show_warn_badges_and_explanations(full_report) -> None:
    _, html, markdown = full_report
    assert html.count('<span class="badge warn">') == 2
    assert html.count('<span class="badge pass">') == 2 and html.count('<span class="badge skip">') == 1
    assert "2 warnings" in html
    # The warn rows open their one-paragraph explanation from advlab/evaluate/checks.md.
    assert re.search(r"<details open><summary>Why this matters \(advlab/evaluate/checks.md#saturated-softmax\)", html)
    assert "saturated_fraction = 0.93" in html
    checks = markdown_rows(markdown, "Model | Check")
    assert [row[2] for row in checks] == ["PASS", "PASS", "WARN", "WARN", "SKIP"]


def test_two_cards_side_by_side_share_one_curve_per_attack(tmp_path, deterministic_card) -> None:
    square = dict(PGD, name="square", registry_name="square")
    other = build_card(model_card={"name": "mnist_cnn"}, data={"name": "mnist/test", "n": 200, "seed": 0},
                       curve=curve([[0.9, 0.8]], epsilons=(8 / 255, 0.2), attack=square))
    one = build_card(model_card={"name": "mnist_cnn"}, data={"name": "mnist/test", "n": 200, "seed": 0},
                     curve=curve([[0.5, 0.4, 0.3]]))
    paths = build_report([one, other, one], tmp_path)
    html = paths.html.read_text(encoding="utf-8")
    rows = table_rows(html, "summary-table")
    assert [row[0] for row in rows[1:]] == ["mnist_cnn", "mnist_cnn (2)", "mnist_cnn (3)"]  # unique labels
    header = rows[0]
    assert "square (L∞) ε=8/255" in header and "square (L∞) ε=0.2" in header and "pgd (L∞) ε=0.3" in header
    assert rows[2][header.index("pgd (L∞) ε=0.1")] == "—" and rows[2][header.index("square (L∞) ε=8/255")] == "90.00 %"
    assert len(re.findall(r'<figure id="curve-', html)) == 2  # pgd (two models) and square
    assert html.count("#0072B2") >= 2 and "#D55E00" in html and "#009E73" in html  # one color per model


def test_report_rebuilds_from_saved_card_files(tmp_path, randomized_card) -> None:
    light = build_card(model_card={"name": "plain"}, data={"name": "mnist/test", "n": 200, "seed": 0},
                       curve=curve([[0.6, 0.5, 0.1]]), checks=failing_checks())
    files = [tmp_path / "light.json", tmp_path / "rnd.json"]
    save_card(files[0], light)
    save_card(files[1], randomized_card)
    from_files = build_report([str(f) for f in files], tmp_path / "a")
    from_objects = build_report([light, randomized_card], tmp_path / "b")
    markdown = from_files.markdown.read_text(encoding="utf-8")
    assert f"advlab report {files[0]} {files[1]} --out {tmp_path / 'a'}" in markdown
    before_provenance = markdown.split("## Provenance")[0]  # the rebuild command differs, nothing else
    assert before_provenance == from_objects.markdown.read_text(encoding="utf-8").split("## Provenance")[0]
    # The same pixels: rendering is deterministic.
    assert PNG_SRC.findall(from_files.html.read_text(encoding="utf-8")) == PNG_SRC.findall(
        from_objects.html.read_text(encoding="utf-8"))


def test_analyses_stored_raw_are_recognised_and_unknown_ones_kept(tmp_path) -> None:
    import torch

    x = torch.rand(6, 1, 4, 4)
    adv = (x + 0.05).clamp(0, 1)
    card = build_card(model_card={"name": "raw"}, data={"name": "d", "n": 6, "seed": 0},
                      analyses={"perturbation_statistics": perturbation_statistics(x, adv),
                                "my_new_analysis": {"alpha": [1, 2, 3]}})
    html = build_report([card], tmp_path).html.read_text(encoding="utf-8")
    rows = table_rows(html, "perturbation-table")
    assert rows[4][1] == "L∞" and rows[4][2] == "0.05"  # summary table without histograms
    assert 'id="other-analyses"' in html and "my_new_analysis" in html and "alpha" in html


def test_extra_figures_are_embedded_and_bad_input_is_refused(tmp_path, randomized_card) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2))
    figure.subplots().plot([0, 1], [1, 0])
    paths = build_report([randomized_card], tmp_path / "ok", figures={"My figure": figure})
    html = paths.html.read_text(encoding="utf-8")
    assert 'id="additional-figures"' in html and "My figure" in html and len(PNG_SRC.findall(html)) == 2
    with pytest.raises(InputError, match="PNG"):
        build_report([randomized_card], tmp_path / "bad", figures={"x": b"not a png"})
    assert not (tmp_path / "bad").exists()  # nothing written when rendering fails
    with pytest.raises(InputError, match="at least one"):
        build_report([], tmp_path / "none")
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(AdvlabError, match="corrupt"):
        build_report([broken], tmp_path / "broken")
    with pytest.raises(AdvlabError, match="format tag"):
        build_report([{"model": {}}], tmp_path / "foreign")


def test_card_with_analyses_stays_small_and_round_trips(tmp_path) -> None:
    card = build_card(model_card={"name": "m"}, data={"name": "d", "n": 1, "seed": 0}, curve=curve([[0.5, 0.4, 0.3]]),
                      checks=failing_checks(), analyses=analyses(1))
    path = tmp_path / "card.json"
    save_card(path, card)
    assert load_card(path) == card
    assert path.stat().st_size < 60_000  # encoded images, not one indented JSON line per pixel
    grid = json.loads(path.read_text())["analyses"]["average_adversarial_grid"]["images"]
    assert grid["encoding"] == "uint8-base64" and grid["shape"] == [10, 10, 1, 8, 8]


def test_images_stored_as_lists_render_like_encoded_ones(tmp_path) -> None:
    import torch

    from advlab.evaluate import AverageAdversarialGrid
    from advlab.evaluate.payloads import grid_payload

    grid = AverageAdversarialGrid(torch.rand(3, 3, 1, 6, 6, generator=torch.Generator().manual_seed(0)),
                                  torch.full((3, 3), 2), torch.rand(3, 3, generator=torch.Generator().manual_seed(1)))
    pages = []
    for encoding in ("uint8", "lists"):
        card = build_card(model_card={"name": "g"}, data={"name": "d", "n": 6, "seed": 0},
                          analyses={"average_adversarial_grid": grid_payload(grid, encoding=encoding,
                                                                             classes=["a", "b", "c"])})
        pages.append(build_report([card], tmp_path / encoding).html.read_text(encoding="utf-8"))
    for html in pages:
        assert 'id="grid-0"' in html and 'id="grid-success-0"' in html and 'id="other-analyses"' not in html
