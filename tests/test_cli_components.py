"""`recpoison components list|show`: every registered component, its parameters, one-line errors."""

import json

import pytest

from recpoison.attacks import ATTACKS
from recpoison.detectors import DETECTORS
from recpoison.registry import Parameter, constructor_parameters, summary
from recpoison.victims import VICTIMS


def test_list_names_every_registered_component(cli):
    code, out, _ = cli("components", "list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert {f: [c["name"] for c in rows] for f, rows in listed.items()} == {
        "victims": list(VICTIMS),
        "attacks": list(ATTACKS),
        "detectors": list(DETECTORS),
    }
    assert all(c["summary"] for rows in listed.values() for c in rows)  # every one is described


def test_list_tells_attack_kinds_and_victim_capabilities(cli):
    code, out, _ = cli("components", "list", "--json")
    assert code == 0
    rows = {c["name"]: c for family in json.loads(out).values() for c in family}
    assert rows["meta"]["needs"] == "edge flips, untargeted, differentiable"
    assert rows["poison-model"]["needs"] == "fake users, targeted, differentiable, surrogate"
    assert rows["pga"]["needs"].startswith('fake users, goal "availability" unless set')
    assert "explicit" in rows["als-mf"]["needs"] and "implicit" not in rows["als-mf"]["needs"]


def test_list_one_family_as_tables(cli):
    code, out, _ = cli("components", "list", "--family", "detectors")
    assert code == 0
    assert all(name in out for name in DETECTORS)
    assert "poison-model" not in out and "neumf" not in out


def test_show_gives_the_published_defaults(cli):
    """Huang et al.'s defaults (§V-A: 30 fillers, κ = 1, δ = 0.9, λ = 0.01, η = 100) as a spec
    writes them."""
    code, out, _ = cli("components", "show", "poison-model", "--json")
    assert code == 0
    shown = json.loads(out)
    defaults = {p["name"]: p["default"] for p in shown["parameters"]}
    assert defaults["n_fillers"] == "30" and defaults["schedule"] == '"authors"'
    assert (defaults["kappa"], defaults["delta"], defaults["lam"], defaults["eta"]) == (
        "1.0", "0.9", "0.01", "100.0",
    )  # fmt: skip
    assert shown["class"] == ATTACKS["poison-model"]


def test_show_prints_the_docstring_and_a_parameter_table(cli):
    code, out, _ = cli("components", "show", "neumf")
    assert code == 0
    assert "victim" in out and "Neural matrix factorization" in out
    assert "layers" in out and "[64, 32, 16, 8]" in out  # list defaults not eaten as markup


@pytest.mark.parametrize(
    "args, message",
    [
        (["show", "poison-modle"], "did you mean 'poison-model'?"),
        (["show", "mf", "--family", "victims"], "no component 'mf' in victims"),
        (["list", "--family", "nope"], "unknown family 'nope'; choose one of: victims"),
    ],
)
def test_bad_names_are_one_line_errors(cli, args, message):
    code, out, err = cli("components", *args)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


class Example:
    """First paragraph
    on two lines.

    Details."""

    def __init__(self, size, *args, scale: float = 1.5, ids=(1, 2), name=None, **kwargs):
        pass


def test_constructor_parameters_and_summary():
    assert summary(Example) == "First paragraph on two lines."
    assert constructor_parameters(Example) == [
        Parameter("size", None, ""),
        Parameter("scale", "1.5", "float"),
        Parameter("ids", "[1, 2]", ""),
        Parameter("name", "null", ""),
    ]
    assert constructor_parameters(Example)[0].required
