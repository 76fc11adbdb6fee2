"""Protocol-neutral pieces used by the MCP adapter: safe static files and prompt rendering."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from naftiko.adapters.mcp.prompts import (
    CompiledPrompt,
    MissingArgument,
    PromptFileError,
    render_text,
)
from naftiko.engine import static_files
from naftiko.spec.models import McpPrompt


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "guide.md").write_text("# Guide\n")
    (root / "sub" / "data.json").write_text('{"a": 1}')
    (root / "bad name.txt").write_text("unreadable by URI")
    (tmp_path / "secrets.txt").write_text("TOP SECRET")
    (root / "escape.txt").symlink_to(tmp_path / "secrets.txt")
    (root / "outdir").symlink_to(tmp_path, target_is_directory=True)
    return root


def test_resolve_under_accepts_nested_files(tree: Path) -> None:
    assert (
        static_files.resolve_under(tree, "sub/data.json") == (tree / "sub" / "data.json").resolve()
    )


@pytest.mark.parametrize(
    "relative",
    [
        "../secrets.txt",
        "sub/../../secrets.txt",
        "./guide.md",
        "sub//data.json",
        "/etc/passwd",
        "%2e%2e/secrets.txt",
        "sub\\data.json",
        "",
        "bad name.txt",
    ],
)
def test_resolve_under_rejects_malformed_or_escaping_paths(tree: Path, relative: str) -> None:
    with pytest.raises(static_files.PathRejected):
        static_files.resolve_under(tree, relative)


def test_symlinks_leading_outside_are_rejected(tree: Path) -> None:
    with pytest.raises(static_files.PathRejected):
        static_files.resolve_under(tree, "escape.txt")
    with pytest.raises(static_files.PathRejected):
        static_files.resolve_under(tree, "outdir/secrets.txt")


def test_missing_files_and_directories_are_not_files(tree: Path) -> None:
    with pytest.raises(static_files.FileMissing):
        static_files.resolve_under(tree, "nope.md")
    with pytest.raises(static_files.FileMissing):
        static_files.resolve_under(tree, "sub")


def test_listing_is_recursive_sorted_and_only_what_can_be_read(tree: Path) -> None:
    assert static_files.list_files(tree) == ["guide.md", "sub/data.json"]


def test_media_types_by_extension() -> None:
    assert static_files.guess_media_type("a/guide.md") == "text/markdown"
    assert static_files.guess_media_type("x.yml") == "application/yaml"
    assert static_files.guess_media_type("x.png") == "image/png"
    assert static_files.guess_media_type("x.unknownext") == "application/octet-stream"
    assert static_files.is_text_media_type("application/vnd.api+json; charset=utf-8")
    assert not static_files.is_text_media_type("image/png")


def test_file_locations_relative_to_the_capability_stay_inside(tmp_path: Path) -> None:
    base = tmp_path / "cap"
    base.mkdir()
    assert static_files.resolve_file_location("file://prompts/a.md", base) == base / "prompts/a.md"
    assert static_files.resolve_file_location("file:./a.md", base) == base / "a.md"
    assert static_files.resolve_file_location("file:///abs/a.md", base) == Path("/abs/a.md")
    with pytest.raises(static_files.PathRejected):
        static_files.resolve_file_location("file://../outside.md", base)
    with pytest.raises(static_files.PathRejected):
        static_files.resolve_file_location("https://example.com/a.md", base)


def test_render_is_single_pass_and_leaves_unknown_placeholders() -> None:
    text = render_text("Hi {{ name }}, format {{format}}", {"name": "{{format}}"})
    assert text == "Hi {{format}}, format {{format}}"


def _prompt(**fields: object) -> McpPrompt:
    return McpPrompt.model_validate(fields)


def test_required_arguments_default_to_true_and_are_enforced() -> None:
    prompt = CompiledPrompt.compile(
        _prompt(
            name="greet",
            arguments=[{"name": "who"}, {"name": "tone", "required": False}],
            template=[
                {"role": "user", "content": "Greet {{who}} {{tone}}"},
                {"role": "assistant", "content": "OK"},
            ],
        ),
        ".",
    )
    assert [a.required for a in prompt.arguments] == [True, False]
    with pytest.raises(MissingArgument) as caught:
        prompt.render({"tone": "warm"})
    assert caught.value.argument == "who"
    messages = prompt.render({"who": "Ada"})
    assert [(m.role, m.text) for m in messages] == [
        ("user", "Greet Ada {{tone}}"),
        ("assistant", "OK"),
    ]


def test_file_prompt_reads_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "review.md").write_text("Review {{topic}}.")
    prompt = CompiledPrompt.compile(
        _prompt(name="review", location="file://prompts/review.md", arguments=[{"name": "topic"}]),
        os.fspath(tmp_path),
    )
    assert [(m.role, m.text) for m in prompt.render({"topic": "PR 7"})] == [
        ("user", "Review PR 7.")
    ]
    (tmp_path / "prompts" / "review.md").unlink()
    with pytest.raises(PromptFileError):
        prompt.render({"topic": "x"})
