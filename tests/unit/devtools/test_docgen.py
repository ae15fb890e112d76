"""The generated API reference: up to date with the models, and saying what the seed documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devtools.docgen import DEFAULT_OUTPUT, main, render
from drop_operator.api import KINDS

REPO = Path(__file__).resolve().parents[3]


def _rows(text: str, section: str) -> dict[str, list[str]]:
    """Field name -> cells (type, default, required, validation, description) of one section's table."""
    start = text.index(f"### `{section}`\n")
    end = text.find("\n### ", start + 1)
    rows: dict[str, list[str]] = {}
    for line in text[start : end if end != -1 else None].splitlines():
        match = re.match(r"^\| `([A-Za-z0-9]+)` \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = [c.strip() for c in re.split(r"(?<!\\)\|", match.group(2))]
    return rows


def test_committed_reference_is_current(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    status = main(["--check"])
    assert status == 0, (
        "docs/reference.md is stale; run `python -m devtools.docgen`\n" + capsys.readouterr().out
    )


def test_check_fails_on_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reference.md"
    assert main([str(out), "--check"]) == 1
    assert main([str(out)]) == 0
    assert main([str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("| `topX` | integer | `50` |", "| `topX` | integer | `40` |"))
    assert main([str(out), "--check"]) == 1
    assert "+| `topX` | integer | `50` |" in capsys.readouterr().out


def test_render_is_stable() -> None:
    assert render() == render()
    assert DEFAULT_OUTPUT == "docs/reference.md"


def test_every_kind_has_its_names_and_sections() -> None:
    text = render()
    for info in KINDS.values():
        assert f"\n## {info.kind}\n" in text
        assert f"| API version | `{info.api_version}` |" in text
        assert "| Scope | Cluster |" in text
        for short in info.short_names:
            assert f"`{short}`" in text
        for column in info.printer_columns:
            assert f"`{column['jsonPath']}`" in text
        assert f"### `{info.kind}.spec`" in text
        assert f"### `{info.kind}.status`" in text


def test_seed_fields_appear_with_their_defaults() -> None:
    text = render()
    spec = _rows(text, "DiscoveryPolicy.spec")
    assert spec["interval"][1] == "`1h`"
    assert "Go duration" in spec["interval"][3] and "between 30s and 168h" in spec["interval"][3]
    assert spec["topX"][1] == "`50`"
    assert "≥ 1" in spec["topX"][3] and "≤ 1000" in spec["topX"][3]
    assert "imageFilter" in spec and spec["imageFilter"][1] == ""
    assert spec["sources"][2] == "yes"
    assert "(#discoverypolicy-spec-sources)" in spec["sources"][0]

    prometheus = _rows(text, "DiscoveryPolicy.spec.sources[].prometheus")
    assert prometheus["endpoint"][2] == "yes"
    assert prometheus["queryType"][1] == "`instant`"
    assert prometheus["timeout"][1] == "`30s`"

    registry = _rows(text, "DiscoveryPolicy.spec.sources[].registry")
    assert registry["topX"][1] == "`10`"
    assert registry["maxScan"][1] == "`5000`"

    rules = text[text.index("### `DiscoveryPolicy.spec.sources[]`") :]
    assert "- type prometheus requires the prometheus block" in rules


def test_shared_objects_link_to_one_section() -> None:
    text = render()
    assert text.count("### `CachedImage.spec.tolerations[]`") == 0
    image_spec = _rows(text, "CachedImage.spec")
    assert "(#cachedimageset-spec-tolerations)" in image_spec["tolerations"][0]
    for anchor in re.findall(r"\]\(#([a-z0-9-]+)\)", text):
        assert f'<a id="{anchor}"></a>' in text
