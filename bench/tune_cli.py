"""``python -m bench tune``: Optuna studies (filled in with the tuning issue)."""


def add_tune_parser(sub) -> None:
    pass
