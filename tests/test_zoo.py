"""The zoo: specs/ reached by network name, as `zoo:FILE.arch`, listed, and included from a
user's spec; network parameters from the command line (`-p NAME=VALUE`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import archdsl
from archdsl import zoo
from archdsl.cli import main
from archdsl.diagnostics import ArchError
from archdsl.spec import parse_params

from conftest import SPECS, spec_networks

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str, cwd: Path = ROOT):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        os.chdir(old)


# ---------------------------------------------------------------- the index


def test_the_zoo_of_a_checkout_is_specs():
    assert zoo.root() == SPECS.resolve()
    assert zoo.files() == sorted(p.relative_to(SPECS).as_posix() for p in SPECS.rglob("*.arch"))


def test_the_index_names_every_network_of_the_zoo_once():
    idx = zoo.index()
    seen: dict[str, Path] = {}
    for path, name in spec_networks():
        assert name not in seen, f"network {name} is in both {seen[name].name} and {path.name}: zoo names are unique"
        seen[name] = path
        assert idx[name] == path.relative_to(SPECS).as_posix()
    assert set(idx) == set(seen)  # and the scan finds nothing the parser does not


def test_the_index_is_quick():
    zoo.index()
    t0 = time.perf_counter()
    for _ in range(10):
        zoo.index()
    assert (time.perf_counter() - t0) / 10 < 0.05  # about 1 ms for 15 files


# ---------------------------------------------------------------- by name, from the API


def test_a_network_name_compiles_from_the_zoo():
    net = archdsl.compile("resnet50")
    ref = archdsl.compile(SPECS / "resnet.arch", "resnet50")
    assert (net.name, net.params, net.macs) == (ref.name, ref.params, ref.macs)
    assert net.file == "zoo:resnet.arch"
    assert archdsl.compile("resnet50", "resnet50").params == ref.params
    assert archdsl.compile("nin", classes=100).params == 984356
    spec = archdsl.load("resnet50")  # the file, with the named network as its default
    assert spec.default == "resnet50" and "resnet18" in spec.networks and spec.compile().name == "resnet50"
    with pytest.raises(ArchError) as info:
        archdsl.compile("resnet50", "resnet18")
    assert info.value.first.code == "E203" and "names a network of the zoo" in info.value.first.message


def test_zoo_files_by_their_prefix():
    spec = archdsl.load("zoo:resnet.arch")
    assert spec.file == "zoo:resnet.arch" and "resnet152" in spec.networks
    assert archdsl.compile("zoo:nin.arch", "nin").params == 966986
    for source, code, text in (("zoo:nope.arch", "E602", "no such file: zoo:nope.arch"),
                               ("zoo:../pyproject.arch", "E212", "leads outside the zoo"),
                               ("zoo:/etc/passwd.arch", "E212", "leads outside the zoo")):
        with pytest.raises(ArchError) as info:
            archdsl.load(source)
        assert (info.value.first.code, text in info.value.first.message) == (code, True), source


def test_a_file_wins_over_a_zoo_name(tmp_path, monkeypatch):
    (tmp_path / "resnet50").write_text("network mine { input 3x8x8; conv 3x3 -> 4 }\n")
    monkeypatch.chdir(tmp_path)
    assert archdsl.compile("resnet50").name == "mine"


def test_a_name_that_is_neither_a_file_nor_a_zoo_network():
    with pytest.raises(ArchError) as info:
        archdsl.compile("resnet5O")
    d = info.value.first
    assert (d.code, d.message) == ("E602", "no such file or zoo network: resnet5O")
    assert "'resnet50'" in d.hint
    with pytest.raises(ArchError) as info:
        archdsl.compile("no/such/file.arch")
    assert info.value.first.message == "no such file: no/such/file.arch" and info.value.first.hint is None


def test_build_by_name():
    pytest.importorskip("torch")
    model = archdsl.build("lenet5_modern")
    assert sum(p.numel() for p in model.parameters()) == archdsl.compile("lenet5_modern").params


# ---------------------------------------------------------------- include "zoo:FILE"


def test_a_user_spec_includes_a_zoo_file(tmp_path):
    (tmp_path / "mine.arch").write_text(
        'include "zoo:resnet.arch"\n'
        'include "zoo:inception_resnet.arch"   # which includes inception_v4.arch, inside the zoo\n'
        "network resnet26(classes=10) {\n"
        "  input 3x224x224; act relu; norm bn\n"
        "  resnet_imagenet(true, 2, 2, 2, 2, classes)\n"
        "  expect output = 10\n"
        "}\n")
    net = archdsl.compile(tmp_path / "mine.arch")
    assert net.output_shape.dims == (10,) and all(o.ok for o in net.check())
    assert "zoo:resnet.arch" in net.sources and "zoo:inception_v4.arch" in net.sources


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    """A zoo of its own under tmp_path/zoo, beside a folder outside it."""
    top = tmp_path / "zoo"
    (top / "sub").mkdir(parents=True)
    (tmp_path / "outside.arch").write_text("block secret() { relu }\n")
    (top / "ok.arch").write_text('include "sub/inner.arch"\nnetwork tiny { input 3x8x8; two() }\n')
    (top / "sub" / "inner.arch").write_text("block two() { relu; relu }\n")
    (top / "climbs.arch").write_text('include "../outside.arch"\nnetwork climbs { input 3x8x8; relu }\n')
    (top / "bad.arch").write_text("block broken() {\n  conv 3x3 g2 -> 8\n}\nnetwork bad { input 3x8x8; broken() }\n")
    try:
        (top / "link.arch").symlink_to(tmp_path / "outside.arch")
    except OSError:
        pass
    monkeypatch.setattr(zoo, "root", lambda: top.resolve())
    user = tmp_path / "user"
    user.mkdir()
    return user


def test_zoo_includes_are_confined_to_the_zoo(fake_zoo):
    def load(text: str):
        (fake_zoo / "u.arch").write_text(text + "\nnetwork u { input 3x8x8; relu }\n")
        return archdsl.load(fake_zoo / "u.arch")

    assert "two" in load('include "zoo:ok.arch"').unit.blocks  # a zoo file's includes within the zoo
    with pytest.raises(ArchError) as info:
        load('include "zoo:climbs.arch"')
    d = info.value.first
    assert (d.code, d.message) == ("E212", 'include "../outside.arch" leads outside the zoo')
    assert d.span.file == "zoo:climbs.arch"  # zoo files are named as zoo:FILE
    if (zoo.root() / "link.arch").is_symlink():
        with pytest.raises(ArchError) as info:
            load('include "zoo:link.arch"')
        assert info.value.first.code == "E212"
    with pytest.raises(ArchError) as info:
        load('include "zoo:sub/../../outside.arch"')
    assert info.value.first.code == "E212"


def test_a_mistake_in_a_zoo_file_is_shown_in_it(fake_zoo):
    (fake_zoo / "u.arch").write_text('include "zoo:bad.arch"\nnetwork u { input 3x8x8; broken() }\n')
    with pytest.raises(ArchError) as info:
        archdsl.compile(fake_zoo / "u.arch")
    text = info.value.render()
    assert "zoo:bad.arch:2:" in text and "conv 3x3 g2 -> 8" in text


# ---------------------------------------------------------------- listing


def test_list_networks_matches_like_timm():
    names = [n.name for n in archdsl.list_networks("resnet*")]
    assert names[:4] == ["resnet18", "resnet20", "resnet32", "resnet34"] and "resnet152_original" in names
    assert all(n.startswith("resnet") for n in names)
    assert [n.name for n in archdsl.list_networks(["vgg1?", "nin"])] == ["nin", "vgg11", "vgg13", "vgg16", "vgg19"]
    assert [n.name for n in archdsl.list_networks("RESNET1?")] == ["resnet18"]  # case-insensitive
    assert "resnet50_original" not in [n.name for n in archdsl.list_networks("resnet*", exclude="*_original")]
    assert archdsl.list_networks("nothing*") == []
    every = archdsl.list_networks()
    assert len(every) == len(spec_networks())
    r50 = next(n for n in every if n.name == "resnet50")
    assert (r50.file, r50.params, r50.macs, r50.input, r50.output) == (
        "zoo:resnet.arch", 25557032, 4089184256, "3x224x224", "1000")


def test_cli_list_table_golden(golden):
    r = invoke("list", "vgg*", "--exclude", "*_bn")
    assert r.exit_code == 0, r.output
    golden("zoo/list_vgg.txt", r.stdout)


def test_cli_list_json_and_names():
    r = invoke("list", "resnet1?", "lenet*", "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == [n.to_dict() for n in archdsl.list_networks(["resnet1?", "lenet*"])]
    assert invoke("list", "resnet1?", "--format", "json").stdout == invoke("list", "resnet1?", "--json").stdout
    r = invoke("list", "--names", "resnet1*")
    assert r.stdout.split() == ["resnet18", "resnet101", "resnet101_original", "resnet110", "resnet152",
                                "resnet152_original"]
    r = invoke("list", "resnt50")
    assert r.exit_code == 1 and r.stdout == ""
    assert "no network of the zoo matches resnt50 (did you mean 'resnet50'" in r.stderr


# ---------------------------------------------------------------- the command line by name


def test_cli_compile_by_name_equals_compile_by_file():
    by_name = invoke("compile", "resnet50")
    by_file = invoke("compile", "specs/resnet.arch", "-n", "resnet50")
    assert by_name.exit_code == by_file.exit_code == 0
    assert by_name.stdout.splitlines()[0] == "resnet50  (zoo:resnet.arch)"
    assert by_name.stdout.splitlines()[1:] == by_file.stdout.splitlines()[1:]
    assert invoke("compile", "zoo:resnet.arch", "-n", "resnet50").stdout == by_name.stdout
    # from anywhere
    assert invoke("compile", "resnet50", cwd=Path("/")).stdout == by_name.stdout


@pytest.mark.parametrize("args,text", [
    (["compile", "resnet5O"], "no such file or zoo network: resnet5O (did you mean "),
    (["compile", "resnet50", "-n", "resnet18"], "resnet50 is a network of the zoo (zoo:resnet.arch); -n resnet18"),
    (["compile", "nope/x.arch"], "no such file: nope/x.arch"),
    (["compile", "zoo:nope.arch"], "no such file: zoo:nope.arch"),
    (["render", "resnet5O", "-o", "x.dot"], "no such file or zoo network"),
    (["build", "resnet5O"], "no such file or zoo network"),
    (["diff", "resnet5O", "resnet50"], "no such file or zoo network"),
])
def test_cli_unknown_names_are_usage_errors(args, text):
    r = invoke(*args)
    assert r.exit_code == 2 and text in r.stderr, r.stderr
    assert isinstance(r.exception, SystemExit)


def test_cli_diff_and_render_by_name(tmp_path):
    r = invoke("diff", "resnet18", "resnet34")
    assert r.exit_code == 0 and r.stdout.startswith("--- zoo:resnet.arch:resnet18\n+++ zoo:resnet.arch:resnet34\n")
    assert invoke("diff", "zoo:resnet.arch:resnet18", "specs/resnet.arch:resnet34").exit_code == 0
    r = invoke("render", "nin", "-o", str(tmp_path / "nin.dot"))
    assert r.exit_code == 0 and (tmp_path / "nin.dot").read_text().startswith("digraph nin {")


# ---------------------------------------------------------------- -p NAME=VALUE


def test_parse_params_uses_the_language():
    assert parse_params(["classes=100", "w = 2 * 32", "flag=true", "rate=0.5", "n=1_000", "k=-3", "m=max(2, 3)"]) == {
        "classes": 100, "w": 64, "flag": True, "rate": 0.5, "n": 1000, "k": -3, "m": 3}
    for bad in ["classes", "=3", "1c=3", "c=", "c=ten", "c=__import__('os')", "c=1; let d = 2", "c=1\nnetwork x {}",
                "c=1/0", "c=10**20", 'c="x"', "c=in.c", "c=[1]"]:
        with pytest.raises(ArchError) as info:
            parse_params([bad])
        assert info.value.first.code == "E604", bad


def test_cli_params_equal_the_api():
    r = invoke("compile", "specs/nin.arch", "-n", "nin", "-p", "classes=100", "--format", "json")
    assert r.exit_code == 0
    api = archdsl.compile("specs/nin.arch", "nin", classes=100)
    assert json.loads(r.stdout)["params"] == api.params == 984356
    r = invoke("compile", "nin", "-p", "classes=2 * 50", "--format", "json")
    assert json.loads(r.stdout)["params"] == api.params
    # every network of the file, when none is named
    r = invoke("compile", "specs/nin.arch", "-p", "classes=100", "--format", "json")
    assert [n["output"] for n in json.loads(r.stdout)] == [[100, 1, 1], [100, 1, 1]]
    r = invoke("diff", "nin", "specs/nin.arch:nin", "-p", "classes=100", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["a"]["params"] == api.params


def test_a_misspelt_parameter_is_the_same_error_from_the_cli_and_the_api():
    r = invoke("compile", "specs/nin.arch", "-n", "nin", "-p", "clases=100")
    with pytest.raises(ArchError) as info:
        archdsl.compile("specs/nin.arch", "nin", clases=100)
    assert r.exit_code == 2
    assert r.stderr == info.value.render() + "\n"
    assert r.stderr == "archdsl: error[E603]: network 'nin' has no parameter 'clases'\n  hint: did you mean 'classes'?\n"
    r = invoke("compile", "specs/lenet5.arch", "-n", "lenet5", "-p", "classes=3")
    assert r.exit_code == 2 and "network 'lenet5' has no parameter 'classes'" in r.stderr
    assert "its parameters: none" in r.stderr
    for cmd in (["build", "nin"], ["render", "nin", "-o", "x.dot"], ["diff", "nin", "nin"]):
        r = invoke(*cmd, "-p", "clases=1")
        assert r.exit_code == 2 and "error[E603]" in r.stderr, cmd
    r = invoke("compile", "nin", "-p", "classes=ten")
    assert r.exit_code == 2 and "error[E604]: bad value for network parameter classes=: undefined name 'ten'" in r.stderr


def test_cli_build_with_params():
    pytest.importorskip("torch")
    r = invoke("build", "nin", "-p", "classes=100")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("nin: output (1, 100, 1, 1) on cpu\nparameters: 984,356 (analytic 984,356: equal)")


def test_build_takes_network_parameters_as_compile_does():
    pytest.importorskip("torch")
    model = archdsl.build("nin", classes=100, seed=0)
    assert model.output_shape == (100, 1, 1)
    assert sum(p.numel() for p in model.parameters()) == archdsl.compile("nin", classes=100).params
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.build("nin", clases=100)
    assert info.value.code == "E603" and info.value.first.hint == "did you mean 'classes'?"
    with pytest.raises(TypeError, match="compiled already"):
        archdsl.build(archdsl.compile("nin"), classes=100)
