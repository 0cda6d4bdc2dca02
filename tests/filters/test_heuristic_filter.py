"""Rule-based filters on planted cases: each rule fires on its case and only there."""

from __future__ import annotations

from tunesmith.filters.heuristic_filter import (
    SELF_INSTRUCT_BLACKLIST,
    HeuristicFilter,
    is_english,
    phrase_pattern,
)
from tunesmith.records import Record

GOOD = Record("good", "Give three tips for staying healthy.", output="Eat well, sleep and move.")


def rules(stage: HeuristicFilter, record: Record) -> list[str]:
    result = stage.run([record])
    return [] if result.kept else result.rejected[0].record.scores["heuristics"]


def test_clean_row_passes_and_gets_an_empty_rule_list() -> None:
    result = HeuristicFilter().run([GOOD])
    assert result.kept[0].scores["heuristics"] == []


def test_each_planted_case_hits_its_rule() -> None:
    stage = HeuristicFilter(
        max_instruction_words=20, max_output_words=10, blacklist=SELF_INSTRUCT_BLACKLIST
    )
    cases = {
        "empty_output": GOOD.evolve(output="   "),
        "instruction_too_long": GOOD.evolve(instruction="Explain " + "this " * 25),
        "output_too_long": GOOD.evolve(output="word " * 11),
        "blacklisted_keyword": GOOD.evolve(instruction="Describe the image attached below."),
        "identity_string": GOOD.evolve(output="As an AI language model, I cannot eat."),
        "assistant_name": GOOD.evolve(output="Hi! I'm ChatGPT and I can help."),
        "non_english": GOOD.evolve(
            instruction="Напишите три совета о здоровье.", output="Ешьте овощи и спите."
        ),
        "output_repeats_instruction": GOOD.evolve(output="give three tips for staying  HEALTHY."),
        "empty_output ": GOOD.evolve(output="<nooutput>"),
    }
    for rule, record in cases.items():
        assert rules(stage, record)[:1] == [rule.strip()], rule


def test_blacklist_matches_words_not_substrings() -> None:
    stage = HeuristicFilter(blacklist=["file", "go to"])
    assert rules(stage, GOOD.evolve(instruction="Explain the profile of a good leader.")) == []
    assert rules(stage, GOOD.evolve(instruction="Go to the store.")) == ["blacklisted_keyword"]
    assert phrase_pattern([]) is None


def test_duplicate_outputs_are_dropped_after_the_first() -> None:
    rows = [
        Record("a", "Say hi.", output="Hello there, how are you today?"),
        Record("b", "Greet me.", output="hello   there, how are you TODAY?"),
        Record("c", "Say bye.", output="Goodbye, see you again soon."),
        Record("d", "Sentiment of 'great film'?", output="Positive"),
        Record("e", "Sentiment of 'loved it'?", output="Positive"),  # labels may repeat
    ]
    result = HeuristicFilter().run(rows)
    assert [r.id for r in result.kept] == ["a", "c", "d", "e"]
    (rej,) = result.rejected
    assert rej.reason == "duplicate_output: same as a" and rej.score == 1
    assert len(HeuristicFilter(drop_duplicate_outputs=False).run(rows).kept) == 5


def test_options_for_instruction_only_sets_and_other_languages() -> None:
    bare = Record("x", "Write a limerick about a cat.")
    assert rules(HeuristicFilter(), bare) == ["empty_output"]
    assert rules(HeuristicFilter(require_output=False), bare) == []
    spanish = Record(
        "s",
        "Escribe una lista de frutas que se pueden comer en verano y explica por qué.",
        output="Sandía, melón, fresas y duraznos porque son frescas y dulces.",
    )
    assert rules(HeuristicFilter(), spanish) == ["non_english"]
    assert rules(HeuristicFilter(english_only=False), spanish) == []
    assert (
        rules(
            HeuristicFilter(identity_strings=(), assistant_names=()),
            GOOD.evolve(output="As an AI language model I say hi."),
        )
        == []
    )


def test_english_detector() -> None:
    assert is_english("What is the capital of France?")
    assert is_english("def f(x): return x * 2")  # short code: judged by ASCII share
    assert is_english("")
    assert not is_english("日本の首都はどこですか")
    assert not is_english("Der schnelle braune Fuchs springt über den faulen Hund und läuft weg")


def test_per_record_unless_duplicates_are_checked() -> None:
    assert not HeuristicFilter().per_record
    assert HeuristicFilter(drop_duplicate_outputs=False).per_record


def test_assistant_names_only_when_the_model_names_itself_unless_strict() -> None:
    stage = HeuristicFilter()
    for text in (
        "I am Claude, an AI assistant.",
        "This model was trained by OpenAI.",
        "My name is Bard.",
    ):
        assert rules(stage, GOOD.evolve(output=text)) == ["assistant_name"], text
    for text in ("The Sunrise was painted by Claude Monet.", "GPT-4 is a language model."):
        assert rules(stage, GOOD.evolve(output=text)) == [], text
    strict = HeuristicFilter(drop_name_mentions=True)
    assert rules(strict, GOOD.evolve(output="GPT-4 is a language model.")) == ["assistant_name"]


def test_language_check_looks_at_the_prompt_unless_told_otherwise() -> None:
    translation = Record(
        "t", "Translate 'good morning' into Japanese.", output="おはようございます"
    )
    assert rules(HeuristicFilter(), translation) == []
    assert rules(HeuristicFilter(language_field="text"), translation) == ["non_english"]
    # a list answer has no stopwords, and short imperative prompts are judged by ASCII share
    names = Record(
        "n", "Name two widely used open-source software programs.", output="Linux, Firefox"
    )
    assert rules(HeuristicFilter(language_field="text"), names) == []
