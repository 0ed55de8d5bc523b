"""The spec language: parsing, canonical printing, and one-line errors for bad specs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrcontrol
from lrcontrol.errors import SpecError
from lrcontrol.registry import entries
from lrcontrol.spec import parse, with_lr


def test_parse_and_print_canonically():
    s = parse("adamw(lr=1e-3, weight_decay=0.01) + warmup(0.05) + cosine() + plateau(patience=3)")
    assert str(s) == "adamw(lr=0.001) + warmup() + cosine() + plateau(patience=3)"
    assert s.optimizer.name == "adamw" and [t.name for t in s.factors] == ["warmup", "cosine", "plateau"]
    assert parse(str(s)) == s


def test_positional_keyword_and_bare_names_mean_the_same():
    assert parse("sgd(0.1, 0.9) + warmup(100)") == parse("sgd(lr=0.1, momentum=0.9) + warmup(steps=100)")
    assert parse("adamw + cosine") == parse("adamw() + cosine()")
    assert parse("step(every=10, gamma=0.5)") == parse("step(10, 0.5)")


def test_ints_and_floats_are_normalised_where_the_type_says_so():
    assert parse("sgd(lr=1)") == parse("sgd(lr=1.0)")
    assert str(parse("warmup(100)")) == "warmup(steps=100)"  # int: steps
    assert str(parse("warmup(0.5)")) == "warmup(steps=0.5)"  # float: fraction of the run


@settings(max_examples=60, deadline=None)
@given(entry=st.sampled_from(entries()), data=st.data())
def test_canonical_print_round_trips_for_every_method(entry, data):
    kwargs = {}
    for p in entry.params:
        if p.required or data.draw(st.booleans()):
            if p.type == "float" and not p.choices:
                lo = p.low if p.low is not None else -10.0
                hi = p.high if p.high is not None else lo + 10.0
                v = data.draw(st.floats(lo, hi, exclude_min=p.low_open, exclude_max=p.high_open or p.high is None))
                kwargs[p.name] = v
            elif p.type == "bool":
                kwargs[p.name] = data.draw(st.booleans())
            elif p.type == "str" and p.choices:
                kwargs[p.name] = data.draw(st.sampled_from(p.choices))
            elif p.type == "horizon":
                kwargs[p.name] = data.draw(st.integers(1, 1000))
    try:
        term = lrcontrol.spec.make_term(entry, kwargs)
    except SpecError:
        return  # cross-parameter constraint (e.g. nesterov without momentum): rejected, fine
    text = str(term)
    assert str(parse(text)) == text
    assert parse(text).terms[0] == term


def test_with_lr_sets_the_optimizer_lr():
    assert str(with_lr("sgd(momentum=0.9) + cosine()", 0.3)) == "sgd(lr=0.3, momentum=0.9) + cosine()"
    with pytest.raises(SpecError, match="starts with an optimizer"):
        with_lr("cosine()", 0.1)


BAD_SPECS = {
    "unknown name": ("cosin()", "did you mean 'cosine'"),
    "unknown argument": ("cosine(min_scal=0.1)", "did you mean 'min_scale'"),
    "out of range": ("cosine(min_scale=2.0)", "must be in [0, 1)"),
    "negative lr": ("adamw(lr=-1e-3)", "lr must be in"),
    "wrong type": ('sgd(momentum="high")', "momentum must be"),
    "not a literal": ("cosine(min_scale=__import__('os'))", "not a literal"),
    "operator other than +": ("cosine() * 2", "combined with '+'"),
    "optimizer not first": ("cosine() + adamw()", "must come first"),
    "two optimizers": ("adamw() + sgd()", "must come first"),
    "syntax": ("adamw(lr=1e-3", "cannot parse"),
    "missing required": ("step(gamma=0.5)", "needs every"),
    "fraction above one": ("warmup(1.5)", "fraction of the run"),
    "too many positional": ("step(30, 0.5, 3)", "at most 2 positional"),
    "duplicate argument": ("cosine(0.1, min_scale=0.2)", "twice"),
    "inconsistent arguments": ("sgd(nesterov=True)", None),
    "bad milestones": ("multistep(milestones=[30, 10])", "strictly increasing"),
    "bad choice": ('wsd(shape="cosin")', "did you mean 'cosine'"),
    "empty": ("  ", "empty spec"),
    "every without monitor loss": ("plateau(every=10)", 'monitor="loss"'),
    "star args": ("cosine(*[1])", "not allowed"),
    "not a call": ("cosine()[0]", "not a method"),
    "attribute call": ("os.system('x')", "not a method"),
    "non-finite": ('cosine(min_scale=float("nan"))', "not a literal"),
}


@pytest.mark.parametrize("kind", list(BAD_SPECS), ids=list(BAD_SPECS))
def test_bad_specs_give_a_one_line_error_naming_the_problem(kind):
    text, expected = BAD_SPECS[kind]
    if kind == "inconsistent arguments":
        with pytest.raises(SpecError, match="nesterov"):
            lrcontrol.build([torch.nn.Parameter(torch.zeros(1))], text)
        return
    with pytest.raises(SpecError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert expected in message


def test_control_and_build_refuse_the_wrong_kind_of_spec():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(SpecError, match="use lrcontrol.build"):
        lrcontrol.control(opt, "adamw() + cosine()", total_steps=10)
    with pytest.raises(SpecError, match="starts with an optimizer"):
        lrcontrol.build([torch.nn.Parameter(torch.zeros(1))], "cosine()")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(SpecError) as info:
        parse("madeup()")
    assert "optimizers: " in str(info.value) and "cosine" in str(info.value)


@pytest.mark.parametrize("text", ["cosin()", "adamw(lr=-1)", "cosine() * 2", "adamw(lr=1e-3"])
def test_cli_rejects_bad_specs_with_exit_status_2(text):
    proc = subprocess.run([sys.executable, "-m", "lrcontrol", "spec", text], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:")
    assert proc.stdout == ""


def test_cli_prints_the_canonical_spec():
    proc = subprocess.run(
        [sys.executable, "-m", "lrcontrol", "spec", "sgd(0.1) + warmup(10) + cosine()"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "sgd(lr=0.1) + warmup(steps=10) + cosine()"
