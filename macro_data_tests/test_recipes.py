"""Recipes: the shipped ones load; bad ones fail naming the file, the field and the rule."""

import pytest
import yaml

from macro_data.errors import RecipeError
from macro_data.recipes import check_resources, load_recipe, parse_recipe

GOOD = {
    "name": "tiny",
    "version": "1.0.0",
    "seed": 1,
    "T": 10,
    "H": 4,
    "worlds": {"nk": {"n_samples": 10, "priors": {"phi_pi": {"low": 1.2, "high": 3.0}}}},
}


def _write(tmp_path, doc, text=None):
    path = tmp_path / "r.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("name,n", [("default", 10_000), ("paper", 100_000)])
def test_shipped_recipes(name, n):
    r = load_recipe(name)
    assert r.world_ids == ["lss", "var", "nk", "rbc", "switching", "zlb"]
    assert {w.n_samples for w in r.worlds.values()} == {n}
    assert (r.seed, r.T, r.H, r.chunk_samples) == (42, 200, 40, 1024)


def test_hash_is_canonical_and_defaults_are_filled(tmp_path):
    a = parse_recipe(GOOD)
    b = parse_recipe({**GOOD, "storage": {"chunk_samples": 1024, "clevel": 3}})
    assert a.sha256 == b.sha256 and a.document["storage"] == {"chunk_samples": 1024, "clevel": 3}
    assert parse_recipe({**GOOD, "seed": 2}).sha256 != a.sha256
    assert a.worlds["nk"].priors["phi_pi"] == (1.2, 3.0)
    assert a.worlds["nk"].priors["beta"] == (0.985, 0.995)


def test_world_settings_top_level_then_world_entry_then_defaults():
    from macro_data.recipes import resolve_settings, world_settings

    doc = {
        **GOOD,
        "burn_in": 50,
        "irfs": {"states": 2},
        "worlds": {"nk": {"n_samples": 5, "burn_in": 10}, "lss": {"n_samples": 5, "irfs": {"states": 0}}},
    }
    assert world_settings(doc, "nk") == {"design": "random", "burn_in": 10, "noise": {}, "irfs": {"states": 2}}
    assert world_settings(doc, "lss") == {"design": "random", "burn_in": 50, "noise": {}, "irfs": {"states": 0}}
    plain = parse_recipe(GOOD).worlds["nk"]
    assert (plain.design, plain.burn_in, plain.noise, plain.irf_states) == ("random", 0, {}, 0)
    # the hash follows the resolved settings: explicit defaults change nothing (old recipes keep their
    # hash), and a top-level key equals the same key in every world's entry
    explicit = {**GOOD, "design": "random", "worlds": {"nk": {**GOOD["worlds"]["nk"], "irfs": {"states": 0}}}}
    assert parse_recipe(explicit).sha256 == parse_recipe(GOOD).sha256
    assert parse_recipe(explicit).document == parse_recipe(GOOD).document
    top = {**doc, "worlds": {"nk": {"n_samples": 5}}}
    inside = {**GOOD, "worlds": {"nk": {"n_samples": 5, "burn_in": 50, "irfs": {"states": 2}}}}
    assert (
        resolve_settings(top)
        == resolve_settings(inside)
        == {
            **GOOD,
            "worlds": {"nk": {"n_samples": 5, "burn_in": 50, "irfs": {"states": 2}}},
        }
    )


@pytest.mark.parametrize(
    "change,field,rule",
    [
        ({"T": 0}, "T", "minimum"),
        ({"H": -1}, "H", "minimum"),
        ({"name": "../escape"}, "name", "pattern"),
        ({"name": "Has Space"}, "name", "pattern"),
        ({"version": "1.0"}, "version", "pattern"),
        ({"seed": -5}, "seed", "minimum"),
        ({"worlds": {"Not-An-Id": {"n_samples": 5}}}, "worlds", "pattern"),
        ({"worlds": {"nk": {"n_samples": 0}}}, "worlds/nk/n_samples", "minimum"),
        ({"worlds": {"nk": {"n_samples": 10**12}}}, "worlds/nk/n_samples", "maximum"),
        ({"worlds": {}}, "worlds", "minProperties"),
        ({"storage": {"chunk_samples": 0}}, "storage/chunk_samples", "minimum"),
        ({"extra_key": 1}, "(top level)", "additionalProperties"),
        ({"design": "grid"}, "design", "enum"),
        ({"burn_in": -1}, "burn_in", "minimum"),
        ({"noise": {"gdp": 0.1}}, "noise", "additionalProperties"),
        ({"worlds": {"nk": {"n_samples": 5, "noise": {"rate": -0.1}}}}, "worlds/nk/noise/rate", "minimum"),
        ({"worlds": {"nk": {"n_samples": 5, "irfs": {"states": 1001}}}}, "worlds/nk/irfs/states", "maximum"),
    ],
)
def test_schema_violations_name_field_and_rule(tmp_path, change, field, rule):
    path = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    text = str(err.value)
    assert str(path) in text and f"field {field}" in text and f"rule: {rule}" in text


def test_unknown_world_names_the_field_and_the_known_worlds(tmp_path):
    path = _write(tmp_path, {**GOOD, "worlds": {"dsge": {"n_samples": 5}}})
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    text = str(err.value)
    assert str(path) in text and "field worlds/dsge: unknown world 'dsge'" in text
    assert "lss, var, nk, rbc, switching, zlb, nk_habit, rbc_iac" in text


@pytest.mark.parametrize(
    "prior,needle",
    [
        ({"phi_pi": {"low": 0.5, "high": 3.0}}, "1.05 <= low < high <= 3.5"),
        ({"phi_pi": {"low": 2.0, "high": 2.0}}, "low < high"),
        ({"no_such": {"low": 0.0, "high": 1.0}}, "not a drawn parameter"),
    ],
)
def test_prior_overrides_must_lie_inside_bounds(tmp_path, prior, needle):
    path = _write(tmp_path, {**GOOD, "worlds": {"nk": {"n_samples": 5, "priors": prior}}})
    with pytest.raises(RecipeError, match="worlds/nk/priors") as err:
        load_recipe(path)
    assert needle in str(err.value) and str(path) in str(err.value)


def test_nan_prior_is_refused(tmp_path):
    text = (
        "name: t\nversion: 1.0.0\nseed: 1\nT: 5\nH: 2\n"
        "worlds:\n  nk: {n_samples: 3, priors: {phi_pi: {low: .nan, high: 2.0}}}\n"
    )
    with pytest.raises(RecipeError, match="not finite|low < high"):
        load_recipe(_write(tmp_path, None, text))


def test_yaml_aliases_and_garbage_are_refused(tmp_path):
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(RecipeError, match="aliases are not allowed"):
        load_recipe(_write(tmp_path, None, bomb))
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(_write(tmp_path, None, "name: [unclosed\n"))
    # the second seed would silently win in plain YAML
    with pytest.raises(RecipeError, match="duplicate key 'seed'(.|\n)*line 4"):
        load_recipe(
            _write(
                tmp_path, None, "name: t\nversion: 1.0.0\nseed: 1\nseed: 2\nT: 5\nH: 2\nworlds: {nk: {n_samples: 3}}\n"
            )
        )
    with pytest.raises(RecipeError, match="top level must be a mapping"):
        load_recipe(_write(tmp_path, None, "- 1\n- 2\n"))
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(RecipeError, match="not UTF-8"):
        load_recipe(tmp_path / "bin.yaml")


def test_unknown_recipe_name_lists_shipped_ones():
    with pytest.raises(RecipeError, match="default, paper"):
        load_recipe("no_such_recipe")


def test_every_generator_setting_is_accepted_and_resolved_per_world():
    ok = parse_recipe({**GOOD, "design": "sobol", "noise": {"output": 0.5}, "burn_in": 5, "irfs": {"states": 2}})
    plan = ok.world("nk")
    assert (plan.design, plan.noise, plan.burn_in, plan.irf_states) == ("sobol", {"output": 0.5}, 5, 2)


def test_burn_in_counts_in_the_step_memory_limit():
    """A step simulates its burn-in too: 2,048 samples x 100,000 periods of nk is far above the limit."""
    with pytest.raises(RecipeError, match=r"field T: one compute step of world 'nk'.*burn_in"):
        check_resources(parse_recipe({**GOOD, "worlds": {"nk": {"n_samples": 10000}}, "burn_in": 100000}))
    assert check_resources(parse_recipe({**GOOD, "burn_in": 200})).world("nk").burn_in == 200


@pytest.mark.parametrize("spec", ["a\x00b.yaml", "nul\x00name"])
def test_a_nul_character_in_a_recipe_name_is_a_recipe_error(spec):
    with pytest.raises(RecipeError, match="NUL"):
        load_recipe(spec)


def test_state_irfs_count_in_the_resource_limits(tmp_path):
    """irfs_state holds K x shocks x (H + 1) x 3 values per sample: K = 1000 dates at H = 40 make one
    1,024-sample chunk of nk 1.5 GB decoded, beyond what Blosc takes, so the recipe is refused up front."""
    doc = {**GOOD, "H": 40, "worlds": {"nk": {"n_samples": 2048, "irfs": {"states": 1000}}}}
    with pytest.raises(RecipeError, match=r"array 'irfs_state'.*rule: chunk size"):
        load_recipe(_write(tmp_path, doc))
    load_recipe(_write(tmp_path, {**doc, "worlds": {"nk": {"n_samples": 2048, "irfs": {"states": 4}}}}))
