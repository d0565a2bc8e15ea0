from __future__ import annotations

import json

import pytest

from advlab.cli_util import parse_eps, parse_eps_list, parse_kwargs
from advlab.errors import AdvlabError, InputError, UnknownNameError
from advlab.io import atomic_write, write_json
from advlab.registry import Registry


def test_registry_creates_lists_and_suggests() -> None:
    things: Registry[dict] = Registry("thing")

    @things.register("alpha", colour="red")
    def make_alpha(size: int = 1) -> dict:
        return {"size": size}

    assert things.create("alpha", size=3) == {"size": 3}
    assert things.names() == ["alpha"] and "alpha" in things and len(things) == 1
    assert things.entry("alpha").info == {"colour": "red"}
    with pytest.raises(UnknownNameError, match="Did you mean 'alpha'"):
        things.create("alpah")
    with pytest.raises(ValueError, match="twice"):
        things.register("alpha")(make_alpha)


def test_atomic_write_leaves_nothing_on_failure(tmp_path) -> None:
    target = tmp_path / "card.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write(b"{half")
            raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"a": 1}  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]  # no temp file left


def test_atomic_write_refuses_nan(tmp_path) -> None:
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"acc": float("nan")})
    assert not list(tmp_path.iterdir())


def test_unwritable_directory_gives_clear_error(tmp_path, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("advlab.io.tempfile.mkstemp", refuse)
    with pytest.raises(AdvlabError, match="writable output directory"):
        write_json(tmp_path / "x.json", {"a": 1})


def test_full_disk_during_write_leaves_nothing(tmp_path, monkeypatch) -> None:
    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("advlab.io.os.fsync", disk_full)
    with pytest.raises(AdvlabError, match="No space left.*Nothing was written"):
        write_json(tmp_path / "x.json", {"a": 1})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("text", "value"), [("0.3", 0.3), ("8/255", 8 / 255), ("2e-3", 2e-3), (" 1 / 4 ", 0.25)])
def test_parse_eps(text: str, value: float) -> None:
    assert parse_eps(text) == pytest.approx(value)


def test_parse_eps_errors_and_lists() -> None:
    assert parse_eps_list(["1/255,2/255", "0.1"]) == pytest.approx([1 / 255, 2 / 255, 0.1])
    for bad in ("abc", "1/0", "-0.1", "8//255"):
        with pytest.raises(InputError):
            parse_eps(bad)


def test_parse_kwargs_reads_literals_never_code() -> None:
    assert parse_kwargs(["width=2", "p=0.5", "flag=True", "name=foo"]) == {
        "width": 2, "p": 0.5, "flag": True, "name": "foo"}
    assert parse_kwargs(["x=__import__('os')"]) == {"x": "__import__('os')"}  # stays a string
    with pytest.raises(InputError):
        parse_kwargs(["novalue"])
