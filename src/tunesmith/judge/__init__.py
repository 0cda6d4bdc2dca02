"""Evaluation: LLM judges as data, both-order pairwise verdicts, win rates and annotator pools.

- :mod:`~tunesmith.judge.spec`: a judge is a YAML file plus a Jinja prompt and a named parser.
- :mod:`~tunesmith.judge.parsers`: the named parsers (verdicts, score pairs, grades, log-probs).
- :mod:`~tunesmith.judge.rules`: how per-order votes become one preference (MT-bench, SeDi).
- :mod:`~tunesmith.judge.pairwise`: align two outputs files, plan and read the judge calls.
- :mod:`~tunesmith.judge.evaluate`: ``eval compare``: judging through the LLM client into a run
  folder, resumably, and the summary.
- :mod:`~tunesmith.judge.winrate`: AlpacaEval win rates, standard error, position bias.
- :mod:`~tunesmith.judge.lc`: the length-controlled win rate (AlpacaEval 2's GLM).
- :mod:`~tunesmith.judge.pool`: AlpacaFarm's simulated annotator pool with label noise.
- :mod:`~tunesmith.judge.evalsets`, :mod:`~tunesmith.judge.generate`: evaluation sets and
  ``eval generate``; :mod:`~tunesmith.judge.store`: judgments as the run driver's kept rows;
  :mod:`~tunesmith.judge.leaderboard`: the HTML leaderboard and pair browser.
"""
