"""Field maps: parsed from --map text, a recipe mapping or repeated options; mistakes are
one-line ConfigErrors that suggest the right field."""

from __future__ import annotations

import pytest

from tunesmith.errors import ConfigError
from tunesmith.fieldmap import FieldMap


def test_field_map_parses_and_rejects_mistakes() -> None:
    fmap = FieldMap.parse(" instruction = prompt , output=response")
    assert dict(fmap) == {"instruction": "prompt", "output": "response"}
    assert FieldMap.of({"instruction": "prompt"}) == FieldMap.parse("instruction=prompt")
    assert FieldMap.of(["instruction=q", "output=a"]) == FieldMap.parse("instruction=q,output=a")
    assert str(fmap) == "instruction=prompt,output=response"
    with pytest.raises(ConfigError, match="did you mean 'instruction'"):
        FieldMap.parse("instructon=prompt")
    with pytest.raises(ConfigError, match="TARGET=COLUMN"):
        FieldMap.parse("instruction")
    with pytest.raises(ConfigError, match="mapped twice"):
        FieldMap.parse("output=a,output=b")
