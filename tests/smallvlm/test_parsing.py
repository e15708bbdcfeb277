"""Repair, schema validation and the status rule (pure functions; the end-to-end path is in test_detection)."""

from __future__ import annotations

import pytest

from slc.agent.detection_json import StructuredAnswer, parse_detection_output, validate_answer
from slc.agent.json_reply import parse_json_object
from slc.agent.recognition import YesNoScore
from slc.agent.small_vlm import derive_status


@pytest.mark.parametrize(
    ("text", "repairs"),
    [
        ('{"bo": {"present": true, "location-absolute": "top left"}}', []),
        ('Sure: {"bo": {"present": true, "location-absolute": "top left"}} Hope this helps.', ["surrounding text"]),
        ("{'bo': {'present': True, 'location-absolute': 'top left'}}", ["single quotes", "python literals"]),
        ('{"bo": {"present": true, "location-absolute": "top left",}}', ["trailing commas"]),
        ('{"bo": {"present": true, "location-absolute": "top left', ["unclosed brackets"]),
        ('```json\n{"bo": {"present": true, "location-absolute": "top left"}}\n```', ["code fence", "surrounding text"]),
    ],
)
def test_repairs_common_breakage(text, repairs):
    parsed = parse_json_object(text)
    assert parsed is not None and parsed.repairs == repairs
    answer = validate_answer(parsed.value, "bo")
    assert answer.present is True and answer.location_absolute == "top left"


def test_unreadable_and_invalid_replies_are_failures_with_reasons():
    assert parse_json_object("no json at all") is None
    assert parse_detection_output("no json at all", "bo").error == "no JSON object in the reply"
    bad = parse_detection_output('{"bo": {"present": "maybe"}}', "bo")
    assert bad.answer is None and "present" in bad.error
    missing = parse_detection_output('{"bo": {"location-absolute": "left"}}', "bo")
    assert missing.answer is None and "present" in missing.error


def test_schema_accepts_slc_and_flat_spellings():
    flat = validate_answer({"present": "yes", "location_absolute": ["top", "left"], "concept-info": " "}, "bo")
    assert flat == StructuredAnswer(present=True, location_absolute="top, left", concept_info=None)
    keyed = validate_answer({"<bo>": {"present": False}}, "bo")
    assert keyed.present is False


def test_status_rule():
    confident_yes = YesNoScore(p_yes=0.7, p_no=0.2)
    weak = YesNoScore(p_yes=0.01, p_no=0.001)
    json_no = StructuredAnswer(present=False)
    # meaningful Yes/No mass: the probabilities decide, even against the JSON
    assert derive_status(confident_yes, json_no, min_yes_no_mass=0.5) == ("present", "yes_no")
    assert derive_status(YesNoScore(p_yes=0.2, p_no=0.7), None, min_yes_no_mass=0.5) == ("absent", "yes_no")
    # too little mass: the JSON decides; neither -> unknown, never absent
    assert derive_status(weak, json_no, min_yes_no_mass=0.5) == ("absent", "json")
    assert derive_status(weak, None, min_yes_no_mass=0.5) == ("unknown", None)
    assert derive_status(YesNoScore(p_yes=0.0, p_no=0.0), None, min_yes_no_mass=0.0) == ("unknown", None)
    assert confident_yes.confidence == pytest.approx(0.7 / 0.9) and weak.mass == pytest.approx(0.011)
